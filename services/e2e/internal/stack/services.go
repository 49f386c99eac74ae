package stack

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Postgres says where memory finds PostgreSQL: either URL (which may carry
// the password; it is handed over as a file, DATABASE_URL_FILE, because
// memory refuses a password in DATABASE_URL) or the POSTGRES_* fields with a
// password file, never both.
type Postgres struct {
	URL          string
	Host         string
	Port         int
	User         string
	Database     string
	PasswordFile string
}

func (pg Postgres) env(t testing.TB) []string {
	if pg.URL != "" {
		f := filepath.Join(t.TempDir(), "database-url")
		if err := os.WriteFile(f, []byte(pg.URL), 0o600); err != nil {
			t.Fatalf("stack: write the database URL file: %v", err)
		}
		return []string{"DATABASE_URL_FILE=" + f}
	}
	user := pg.User
	if user == "" {
		user = "brain"
	}
	return []string{
		"POSTGRES_HOST=" + pg.Host,
		"POSTGRES_PORT=" + strconv.Itoa(pg.Port),
		"POSTGRES_USER=" + user,
		"POSTGRES_DB=" + pg.Database,
		"POSTGRES_SSLMODE=disable",
		"POSTGRES_PASSWORD_FILE=" + pg.PasswordFile,
	}
}

// MemoryConfig configures StartMemory.
type MemoryConfig struct {
	Postgres Postgres
	// GRPCAddr and HTTPAddr default to free loopback ports. Pass the
	// addresses of a killed memory to restart it where clients expect it.
	GRPCAddr, HTTPAddr string
	// Env adds or overrides variables (KEY=VALUE), e.g. RECALL_TIMEOUT=1s.
	Env []string
}

// OrchestratorConfig configures StartOrchestrator.
type OrchestratorConfig struct {
	MemoryAddr         string
	GRPCAddr, HTTPAddr string
	Env                []string
}

// Defaults every process gets unless overridden: the documented defaults
// spelled out, so a change of default does not silently change the suites,
// and a drain period short enough for tests.
var commonDefaults = []string{
	"LOG_LEVEL=info",
	"DRAIN_TIMEOUT=5s",
	"SHUTDOWN_DELAY=0s",
	"PROBE_INTERVAL=500ms",
	"PROBE_TIMEOUT=1s",
}

// StartMemory starts `memory serve` with migrations on start.
func StartMemory(t testing.TB, bin string, cfg MemoryConfig) *Process {
	t.Helper()
	grpcAddr, httpAddr := addrOr(t, cfg.GRPCAddr), addrOr(t, cfg.HTTPAddr)
	env := append(append([]string{}, commonDefaults...), "MIGRATE_ON_START=true", "RECALL_TIMEOUT=300ms")
	env = append(env, cfg.Postgres.env(t)...)
	env = append(env, "GRPC_ADDR="+grpcAddr, "HTTP_ADDR="+httpAddr)
	return Start(t, Spec{
		Name: "memory", Bin: bin, Args: []string{"serve"},
		Env:      baseEnv(merge(env, cfg.Env)),
		GRPCAddr: grpcAddr, HTTPAddr: httpAddr,
	})
}

// StartOrchestrator starts `orchestrator serve` against memory at
// cfg.MemoryAddr.
func StartOrchestrator(t testing.TB, bin string, cfg OrchestratorConfig) *Process {
	t.Helper()
	grpcAddr, httpAddr := addrOr(t, cfg.GRPCAddr), addrOr(t, cfg.HTTPAddr)
	env := append(append([]string{}, commonDefaults...), "ORCHESTRATE_BUDGET=300ms", "MEMORY_ADDR="+cfg.MemoryAddr)
	env = append(env, "GRPC_ADDR="+grpcAddr, "HTTP_ADDR="+httpAddr)
	return Start(t, Spec{
		Name: "orchestrator", Bin: bin, Args: []string{"serve"},
		Env:      baseEnv(merge(env, cfg.Env)),
		GRPCAddr: grpcAddr, HTTPAddr: httpAddr,
	})
}

// baseEnv adds what any process needs from the test's environment (PATH,
// HOME, TMPDIR) to env.
func baseEnv(env []string) []string {
	out := append([]string{}, env...)
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// merge returns base with each KEY=VALUE of over replacing base's KEY.
func merge(base, over []string) []string {
	out := append([]string{}, base...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

func addrOr(t testing.TB, addr string) string {
	t.Helper()
	if addr != "" {
		return addr
	}
	a, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// FreeAddr returns a loopback address nobody listens on. Its port comes
// from below the kernel's ephemeral range, which outgoing connections draw
// from: a port the kernel picks for ":0" lies in that range, and any
// connection the machine opens (to PostgreSQL, between services) can take
// it before the process under test binds it ("address already in use").
func FreeAddr() (string, error) {
	if lo := ephemeralStart(); lo > lowestPort+1000 {
		for range 100 {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(lowestPort+rand.IntN(lo-lowestPort))))
			if err != nil {
				continue // taken: try another
			}
			addr := l.Addr().String()
			if err := l.Close(); err != nil {
				return "", err
			}
			return addr, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

// lowestPort is the bottom of the range FreeAddr picks from, above the
// well-known and most registered service ports.
const lowestPort = 20000

// ephemeralStart is the first port of the kernel's ephemeral range, 0 when
// it cannot be read.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// Port is the port of a host:port address.
func Port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
