package deploy

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// repoRoot is where the deployment files live, relative to this package.
const repoRoot = "../.."

// binary is what every deployment file must agree on about one service: the
// defaults and health names the binaries implement.
type binary struct {
	name         string // binary, compose service, image target, container name
	grpcPort     int
	httpPort     int
	readyService string // gRPC health service that gates traffic
}

func binaries() []binary {
	return []binary{
		{name: "memory", grpcPort: 9091, httpPort: 8081, readyService: "brain.memory.v1.MemoryService"},
		{name: "orchestrator", grpcPort: 9090, httpPort: 8080, readyService: "brain.orchestrator.v1.OrchestratorService"},
	}
}

// The binaries' own defaults (their config flags), used when a deployment
// file does not set the variable.
const (
	defaultShutdownDelay = 0 * time.Second
	defaultDrainTimeout  = 10 * time.Second
)

func rootPath(t testing.TB, rel string) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join(repoRoot, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("resolve %s: %v", rel, err)
	}
	return abs
}

func readRootFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(rootPath(t, rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return b
}

// portOf returns the port of a listen or dial address (":9091", "memory:9091").
func portOf(t testing.TB, addr string) int {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		t.Fatalf("address %q has no port", addr)
	}
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		t.Fatalf("address %q: port: %v", addr, err)
	}
	return p
}

// durationOr parses a duration variable, falling back to def when unset.
func durationOr(t testing.TB, name, value string, def time.Duration) time.Duration {
	t.Helper()
	if value == "" {
		return def
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, value, err)
	}
	return d
}

// flagValue returns the value of --name=value or --name value in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		a = "-" + strings.TrimLeft(a, "-")
		switch {
		case strings.HasPrefix(a, "-"+name+"="):
			return strings.TrimPrefix(a, "-"+name+"="), true
		case a == "-"+name && i+1 < len(args):
			return args[i+1], true
		}
	}
	return "", false
}

func TestFlagValue(t *testing.T) {
	args := []string{"/memory", "health", "--addr=127.0.0.1:9091", "-service", "x", "--timeout=2s"}
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"addr", "127.0.0.1:9091", true},
		{"service", "x", true},
		{"timeout", "2s", true},
		{"tls", "", false},
	} {
		got, ok := flagValue(args, tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("flagValue(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
