package doctor

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brainhq/brain/services/kit/pgtest"
	"github.com/brainhq/brain/services/memory/pgconn"
	"github.com/brainhq/brain/services/memory/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// target is a database in the shared cluster, described the way an operator
// would configure it: split variables plus a password file.
type target struct {
	url  string
	cfg  pgconn.Config
	pass string
}

func newTarget(t *testing.T) target {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	port, _ := strconv.Atoi(u.Port())
	return target{
		url:  dbURL,
		pass: pw,
		cfg: pgconn.Config{
			Host: u.Hostname(), Port: port, User: u.User.Username(), Database: strings.TrimPrefix(u.Path, "/"),
			PasswordFile: writeFile(t, pw+"\n"), SSLMode: "prefer",
			Vars: []string{"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD_FILE"},
		},
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func execSQL(t *testing.T, dbURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// migrate applies the real schema, the way `memory migrate` does.
func migrate(t *testing.T, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := store.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
}

// insertEpisodes writes n episodes per namespace straight into the table; the
// schema's triggers keep namespace_stats.
func insertEpisodes(t *testing.T, dbURL string, perNamespace map[string]int) {
	t.Helper()
	for ns, n := range perNamespace {
		execSQL(t, dbURL, `INSERT INTO episodes (namespace, id, content, created_at)
			SELECT '`+ns+`', gen_random_uuid(), 'the deploy went fine ' || g, now() FROM generate_series(1, `+strconv.Itoa(n)+`) g`)
	}
}

func names(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Name)
	}
	return out
}

func stepNamed(t *testing.T, steps []Step, name string) Step {
	t.Helper()
	for _, s := range steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %q in %v", name, names(steps))
	return Step{}
}

// runDoctor runs the ladder and checks it ended within budget.
func runDoctor(t *testing.T, cfg pgconn.Config, opts Options, budget time.Duration) ([]Step, bool, string) {
	t.Helper()
	var out bytes.Buffer
	start := time.Now()
	steps, ok := Run(context.Background(), cfg, &out, opts)
	if took := time.Since(start); took > budget {
		t.Errorf("doctor took %s, budget %s", took, budget)
	}
	t.Logf("doctor output:\n%s", out.String())
	if lines := strings.Count(out.String(), "\n"); lines < len(steps) {
		t.Errorf("printed %d lines for %d steps", lines, len(steps))
	}
	return steps, ok, out.String()
}

var allSteps = []string{"config", "dns", "tcp", "tls", "auth", "select1", "server", "schema", "rows"}

// TestHealthyDatabase runs the ladder against a database migrated the way
// `memory migrate` does it, with the default schema reader.
func TestHealthyDatabase(t *testing.T) {
	tg := newTarget(t)
	migrate(t, tg.url)
	insertEpisodes(t, tg.url, map[string]int{"a": 2, "b": 1})

	steps, ok, out := runDoctor(t, tg.cfg, Options{ExpectedSchemaVersion: store.SchemaVersion}, 5*time.Second)
	if !ok || strings.Join(names(steps), ",") != strings.Join(allSteps, ",") {
		t.Fatalf("ok=%v steps=%v; want every step to pass", ok, names(steps))
	}
	for _, s := range steps {
		if !s.OK {
			t.Errorf("step %s failed: %s", s.Name, s.Detail)
		}
	}
	checks := map[string]string{
		"config": "password: POSTGRES_PASSWORD_FILE (",
		"dns":    "127.0.0.1 -> [127.0.0.1]",
		"tcp":    "connected to 127.0.0.1:" + strconv.Itoa(tg.cfg.Port),
		"tls":    "server does not offer TLS",
		"auth":   "authenticated as brain to database " + tg.cfg.Database + " over plaintext",
		"server": "127.0.0.1:" + strconv.Itoa(tg.cfg.Port) + ", PostgreSQL ",
		"schema": "schema version " + strconv.FormatInt(store.SchemaVersion, 10) + " (as expected)",
		"rows":   "3 episodes in 2 namespaces (from namespace_stats)",
	}
	for name, want := range checks {
		if got := stepNamed(t, steps, name).Detail; !strings.Contains(got, want) {
			t.Errorf("step %s detail %q, want it to contain %q", name, got, want)
		}
	}
	if strings.Contains(out, tg.pass) {
		t.Error("doctor output leaks the password")
	}
	if !strings.Contains(out, "ok   dns        127.0.0.1 -> [127.0.0.1] (") {
		t.Errorf("line format changed:\n%s", out)
	}
}

// TestRowsDoNotReadEpisodes holds an exclusive lock on episodes (as a long
// ALTER TABLE or VACUUM FULL would): a count(*) over the table would wait
// behind it until the step timed out; the kept statistics answer at once.
func TestRowsDoNotReadEpisodes(t *testing.T) {
	tg := newTarget(t)
	migrate(t, tg.url)
	insertEpisodes(t, tg.url, map[string]int{"a": 4})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	locker, err := pgx.Connect(ctx, tg.url)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(context.Background())
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "LOCK TABLE episodes IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	const stepTimeout = time.Second
	steps, _, _ := runDoctor(t, tg.cfg, Options{StepTimeout: stepTimeout}, 10*time.Second)
	rows := stepNamed(t, steps, "rows")
	if !rows.OK || rows.Detail != "4 episodes in 1 namespaces (from namespace_stats)" {
		t.Fatalf("rows step = %+v; want the count from namespace_stats while episodes is locked", rows)
	}
	if rows.Elapsed >= stepTimeout {
		t.Fatalf("rows step took %s: it waited on the lock", rows.Elapsed)
	}
}

// TestRowsWithoutStatsTable: an episodes table without namespace_stats (not
// this binary's schema) gets the planner's estimate, never a count(*).
func TestRowsWithoutStatsTable(t *testing.T) {
	tg := newTarget(t)
	execSQL(t, tg.url, `CREATE TABLE episodes (id int); INSERT INTO episodes SELECT generate_series(1, 50)`)
	steps, _, _ := runDoctor(t, tg.cfg, Options{}, 5*time.Second)
	if d := stepNamed(t, steps, "rows").Detail; d != "episodes table present, not yet analyzed (no row estimate)" {
		t.Fatalf("rows before ANALYZE: %q", d)
	}
	execSQL(t, tg.url, `ANALYZE episodes`)
	steps, _, _ = runDoctor(t, tg.cfg, Options{}, 5*time.Second)
	if d := stepNamed(t, steps, "rows").Detail; d != "about 50 episodes (planner estimate)" {
		t.Fatalf("rows after ANALYZE: %q", d)
	}
}

// TestPasswordInURLIsNeverPrinted: a URL read from DATABASE_URL_FILE may
// carry the password, in the userinfo or as ?password=; the ladder uses it
// and names its source, and no line shows it.
func TestPasswordInURLIsNeverPrinted(t *testing.T) {
	tg := newTarget(t)
	u, err := url.Parse(tg.url)
	if err != nil {
		t.Fatal(err)
	}
	inQuery := *u
	inQuery.User = url.User(u.User.Username())
	q := inQuery.Query()
	q.Set("password", tg.pass)
	inQuery.RawQuery = q.Encode()
	for name, dbURL := range map[string]string{"userinfo": u.String(), "query parameter": inQuery.String()} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(dbURL, tg.pass) {
				t.Fatalf("test URL %q lacks the password", dbURL)
			}
			file := writeFile(t, dbURL+"\n")
			cfg := pgconn.Config{URL: dbURL, URLFile: file, Vars: []string{"DATABASE_URL_FILE"}}
			steps, ok, out := runDoctor(t, cfg, Options{}, 5*time.Second)
			if strings.Contains(out, tg.pass) {
				t.Fatalf("doctor output shows the password:\n%s", out)
			}
			if auth := stepNamed(t, steps, "auth"); !auth.OK {
				t.Fatalf("auth with the URL's password failed: %+v (ok=%v)", auth, ok)
			}
			want := "password: DATABASE_URL_FILE (" + file + "); target: "
			if d := stepNamed(t, steps, "config").Detail; !strings.Contains(d, want) || !strings.Contains(d, "xxxxx") {
				t.Fatalf("config detail %q; want it to contain %q and a masked password", d, want)
			}
		})
	}
}

// TestTLSStepUsesTheAddressTCPReached: the host resolves to ::1 first, where
// nothing listens, then to 127.0.0.1, where PostgreSQL does. tcp moves on to
// 127.0.0.1, and tls must probe that address, not the refusing first one.
func TestTLSStepUsesTheAddressTCPReached(t *testing.T) {
	tg := newTarget(t)
	v6 := net.JoinHostPort("::1", strconv.Itoa(tg.cfg.Port))
	if c, err := net.DialTimeout("tcp", v6, time.Second); err == nil {
		c.Close()
		t.Skipf("something listens on %s; the test needs it to refuse", v6)
	}
	cfg := tg.cfg
	cfg.Host = "pg.test"
	lookup := func(_ context.Context, host string) ([]net.IPAddr, error) {
		if host != "pg.test" {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return []net.IPAddr{{IP: net.IPv6loopback}, {IP: net.IPv4(127, 0, 0, 1)}}, nil
	}
	steps, ok, _ := runDoctor(t, cfg, Options{LookupIPAddr: lookup}, 5*time.Second)
	if !ok {
		t.Fatalf("steps %v did not all pass", names(steps))
	}
	v4 := "127.0.0.1:" + strconv.Itoa(tg.cfg.Port)
	if d := stepNamed(t, steps, "tcp").Detail; !strings.HasPrefix(d, "connected to "+v4+" ("+v6+": ") {
		t.Fatalf("tcp detail %q; want it to reach %s after %s failed", d, v4, v6)
	}
	if d := stepNamed(t, steps, "tls").Detail; !strings.Contains(d, "server does not offer TLS") {
		t.Fatalf("tls detail %q", d)
	}
}

func TestSchemaBehindIsReportedButRowsStillRun(t *testing.T) {
	tg := newTarget(t)
	steps, ok, _ := runDoctor(t, tg.cfg, Options{ExpectedSchemaVersion: 2}, 5*time.Second)
	if ok {
		t.Fatal("ok with an unmigrated database")
	}
	schema := stepNamed(t, steps, "schema")
	if schema.OK || schema.Detail != "schema version 0, this binary needs 2" || schema.Hint != "run `memory migrate`" {
		t.Fatalf("schema step = %+v", schema)
	}
	rows := stepNamed(t, steps, "rows")
	if !rows.OK || rows.Detail != "no episodes table yet" {
		t.Fatalf("rows step = %+v", rows)
	}
}

func TestCustomSchemaVersionFunc(t *testing.T) {
	tg := newTarget(t)
	steps, ok, _ := runDoctor(t, tg.cfg, Options{
		ExpectedSchemaVersion: 7,
		SchemaVersion:         func(context.Context, *pgx.Conn) (int64, error) { return 9, nil },
	}, 5*time.Second)
	schema := stepNamed(t, steps, "schema")
	if ok || schema.OK || !strings.Contains(schema.Detail, "schema version 9 is newer than this binary's 7") {
		t.Fatalf("ok=%v schema=%+v", ok, schema)
	}
}

func TestAuthFailures(t *testing.T) {
	tg := newTarget(t)
	wrongPW := tg.cfg
	wrongPW.PasswordFile = writeFile(t, "not-the-password\n")
	noPW := tg.cfg
	noPW.PasswordFile = ""
	noDB := tg.cfg
	noDB.Database = "no_such_db"
	noUser := tg.cfg
	noUser.User = "nobody"

	// A ~/.pgpass entry would supply a password the test means to leave out.
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "absent"))
	tests := []struct {
		name       string
		cfg        pgconn.Config
		wantDetail string
		wantHint   string
	}{
		{"wrong password", wrongPW, "SQLSTATE 28P01", "check the password file"},
		{"no password", noPW, "SQLSTATE 28P01", "none is configured: set POSTGRES_PASSWORD_FILE"},
		{"missing database", noDB, "SQLSTATE 3D000", `database "no_such_db" does not exist`},
		{"unknown role", noUser, "SQLSTATE 28P01", "check the password file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, ok, _ := runDoctor(t, tt.cfg, Options{}, 5*time.Second)
			last := steps[len(steps)-1]
			if ok || last.Name != "auth" || last.OK {
				t.Fatalf("ok=%v steps=%v; want the ladder to stop at a failed auth", ok, names(steps))
			}
			if !strings.Contains(last.Detail, tt.wantDetail) || !strings.Contains(last.Hint, tt.wantHint) {
				t.Fatalf("auth = %+v; want detail ~ %q, hint ~ %q", last, tt.wantDetail, tt.wantHint)
			}
		})
	}
}

func TestUnixSocket(t *testing.T) {
	c := pgtest.NewCluster(t)
	cfg := pgconn.Config{Host: c.SocketDir(), Port: c.Port(), User: "brain", Database: "postgres", SSLMode: "prefer"}
	steps, ok, _ := runDoctor(t, cfg, Options{}, 5*time.Second)
	if !ok {
		t.Fatalf("steps %v failed over the unix socket", names(steps))
	}
	if d := stepNamed(t, steps, "dns").Detail; !strings.HasPrefix(d, "skipped: unix socket "+c.SocketDir()) {
		t.Errorf("dns detail %q", d)
	}
	if d := stepNamed(t, steps, "auth").Detail; !strings.Contains(d, "over unix socket (password: none)") {
		t.Errorf("auth detail %q", d)
	}
	if d := stepNamed(t, steps, "server").Detail; !strings.HasPrefix(d, "unix socket, PostgreSQL") {
		t.Errorf("server detail %q", d)
	}

	// The same socket after the server stops: nothing there.
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	steps, ok, _ = runDoctor(t, cfg, Options{}, 5*time.Second)
	last := steps[len(steps)-1]
	if ok || last.Name != "tcp" || !strings.Contains(last.Hint, "unix_socket_directories") {
		t.Fatalf("after Stop: ok=%v last=%+v", ok, last)
	}
}

func TestConfigFailureStopsFirst(t *testing.T) {
	steps, ok, out := runDoctor(t, pgconn.Config{PasswordFile: "/nonexistent/pw"}, Options{}, time.Second)
	if ok || len(steps) != 1 || steps[0].Name != "config" || !strings.Contains(steps[0].Detail, "/nonexistent/pw") {
		t.Fatalf("ok=%v steps=%+v", ok, steps)
	}
	if !strings.Contains(out, "stopped at config; not run: dns, tcp, tls, auth, select1, server, schema, rows") {
		t.Fatalf("output does not say what was skipped:\n%s", out)
	}
}

func TestUnresolvableHost(t *testing.T) {
	cfg := pgconn.Config{Host: "no-such-host.invalid", SSLMode: "disable"}
	steps, ok, _ := runDoctor(t, cfg, Options{StepTimeout: 500 * time.Millisecond}, 2*time.Second)
	last := steps[len(steps)-1]
	if ok || last.Name != "dns" || last.OK || !strings.Contains(last.Detail, "no-such-host.invalid") {
		t.Fatalf("ok=%v last=%+v", ok, last)
	}
}

func TestClosedPortIsRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now

	cfg := pgconn.Config{Host: "127.0.0.1", Port: port, SSLMode: "disable"}
	steps, ok, _ := runDoctor(t, cfg, Options{StepTimeout: time.Second}, 2*time.Second)
	last := steps[len(steps)-1]
	if ok || last.Name != "tcp" || !strings.Contains(last.Detail, "connection refused") ||
		!strings.Contains(last.Hint, "nothing listens on port "+strconv.Itoa(port)) {
		t.Fatalf("ok=%v last=%+v", ok, last)
	}
}

// TestDroppedPacketsTimeOut uses a listener whose accept queue is full: the
// kernel then drops further SYNs, exactly like a firewall that drops packets.
func TestDroppedPacketsTimeOut(t *testing.T) {
	port := blackHole(t)
	cfg := pgconn.Config{Host: "127.0.0.1", Port: port, SSLMode: "disable"}
	const stepTimeout = 400 * time.Millisecond
	steps, ok, _ := runDoctor(t, cfg, Options{StepTimeout: stepTimeout}, stepTimeout+time.Second)
	last := steps[len(steps)-1]
	if ok || last.Name != "tcp" || !strings.Contains(last.Detail, "no answer (timed out)") ||
		!strings.Contains(last.Hint, "silently dropped") {
		t.Fatalf("ok=%v last=%+v", ok, last)
	}
	if last.Elapsed < stepTimeout-50*time.Millisecond || last.Elapsed > stepTimeout+500*time.Millisecond {
		t.Errorf("tcp step took %s, want about the step timeout %s", last.Elapsed, stepTimeout)
	}
}

// blackHole returns a port whose listener never accepts and whose backlog is
// full, so new connection attempts hang.
func blackHole(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return port // the queue is full: SYNs are dropped from now on
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("could not fill the accept queue; kernel does not drop SYNs here")
	return 0
}

// silentListener accepts TCP connections and never says a word.
func silentListener(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return // listener closed at cleanup
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port
}

func TestSilentServer(t *testing.T) {
	port := silentListener(t)
	const stepTimeout = 300 * time.Millisecond
	tests := []struct {
		sslMode    string
		wantStep   string
		wantDetail string
	}{
		{"disable", "auth", "server accepted TCP but did not answer the PostgreSQL startup within 300ms"},
		{"prefer", "tls", "server accepted TCP but did not answer the PostgreSQL SSLRequest within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.sslMode, func(t *testing.T) {
			cfg := pgconn.Config{Host: "127.0.0.1", Port: port, SSLMode: tt.sslMode, ConnectTimeout: 5 * time.Second}
			steps, ok, _ := runDoctor(t, cfg, Options{StepTimeout: stepTimeout}, stepTimeout+time.Second)
			last := steps[len(steps)-1]
			if ok || last.Name != tt.wantStep || last.OK || last.Detail != tt.wantDetail {
				t.Fatalf("ok=%v steps=%v last=%+v; want %s to fail with %q", ok, names(steps), last, tt.wantStep, tt.wantDetail)
			}
			if tcp := stepNamed(t, steps, "tcp"); !tcp.OK {
				t.Fatalf("tcp step should pass against a listener: %+v", tcp)
			}
		})
	}
}

func TestRequiredTLSRefused(t *testing.T) {
	tg := newTarget(t)
	cfg := tg.cfg
	cfg.SSLMode = "require"
	steps, ok, _ := runDoctor(t, cfg, Options{}, 5*time.Second)
	last := steps[len(steps)-1]
	if ok || last.Name != "tls" || !strings.Contains(last.Detail, "server does not offer TLS but sslmode=require requires it") {
		t.Fatalf("ok=%v last=%+v", ok, last)
	}
}

func TestParentContextBoundsTheRun(t *testing.T) {
	port := silentListener(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	var out bytes.Buffer
	steps, ok := Run(ctx, pgconn.Config{Host: "127.0.0.1", Port: port, SSLMode: "disable"}, &out, Options{StepTimeout: 10 * time.Second})
	if took := time.Since(start); ok || took > 2*time.Second {
		t.Fatalf("ok=%v took %s with a 200ms parent deadline; steps %v", ok, took, names(steps))
	}
}

func TestFormatStep(t *testing.T) {
	tests := []struct {
		s    Step
		want string
	}{
		{Step{Name: "dns", OK: true, Detail: "127.0.0.1 -> [127.0.0.1]", Elapsed: 100 * time.Microsecond},
			"ok   dns        127.0.0.1 -> [127.0.0.1] (0.1ms)"},
		{Step{Name: "tcp", Detail: "127.0.0.1:1: connection refused", Hint: "start it", Elapsed: 1500 * time.Millisecond},
			"FAIL tcp        127.0.0.1:1: connection refused (1.50s) hint: start it"},
	}
	for _, tt := range tests {
		if got := formatStep(tt.s); got != tt.want {
			t.Errorf("formatStep = %q, want %q", got, tt.want)
		}
	}
}
