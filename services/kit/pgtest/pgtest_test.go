package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// helperEnv makes the test binary act as a process that owns a cluster and
// then gets killed, to prove the server does not outlive it.
const helperEnv = "PGTEST_HELPER_HOLD_CLUSTER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		holdCluster()
		return
	}
	os.Exit(Main(m))
}

func holdCluster() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("DIRS", c.Dir(), c.sockDir)
	time.Sleep(time.Minute) // killed by the parent long before
}

func connect(t *testing.T, url string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}

func mustConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := connect(t, url)
	if err != nil {
		t.Fatalf("connect %s: %v", redact(url), err)
	}
	return conn
}

func selectOne(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	var one int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
}

func TestNewDatabaseIsolatedAndDropped(t *testing.T) {
	var urlA, urlB string
	t.Run("create", func(t *testing.T) {
		urlA, urlB = NewDatabase(t), NewDatabase(t)
		if urlA == urlB {
			t.Fatalf("two NewDatabase calls returned the same URL %s", redact(urlA))
		}
		a, b := mustConnect(t, urlA), mustConnect(t, urlB)
		selectOne(t, a)
		ctx := context.Background()
		if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := a.QueryRow(ctx, "SELECT count(*) FROM only_in_a").Scan(&n); err != nil || n != 1 {
			t.Fatalf("count in a = %d, %v", n, err)
		}
		var exists bool
		if err := b.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Fatal("table created in database A is visible in database B")
		}
		var enc, collate string
		if err := a.QueryRow(ctx, "SELECT pg_encoding_to_char(encoding), datcollate FROM pg_database WHERE datname = current_database()").Scan(&enc, &collate); err != nil {
			t.Fatal(err)
		}
		if enc != "UTF8" || collate != "C" {
			t.Fatalf("encoding %s, collate %s; want UTF8, C", enc, collate)
		}
	})
	// The subtest's cleanup dropped both databases (its connections closed first).
	for _, u := range []string{urlA, urlB} {
		if conn, err := connect(t, u); err == nil {
			conn.Close(context.Background())
			t.Fatalf("database %s still exists after cleanup", redact(u))
		} else if !strings.Contains(err.Error(), "3D000") {
			t.Fatalf("connect to dropped database: %v; want SQLSTATE 3D000", err)
		}
	}
}

func TestStopRestart(t *testing.T) {
	c := NewCluster(t)
	ctx := context.Background()
	url, err := c.CreateDatabase(ctx, "restart_me")
	if err != nil {
		t.Fatal(err)
	}
	conn := mustConnect(t, url)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	port := c.Port()

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("open connection still works after Stop")
	}
	if _, err := connect(t, url); err == nil {
		t.Fatal("new connection succeeded after Stop")
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Port() != port {
		t.Fatalf("port after Restart = %d, want %d", c.Port(), port)
	}
	var x int
	if err := mustConnect(t, url).QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 42 {
		t.Fatalf("data after Restart: x = %d, %v", x, err)
	}
}

func TestCloseRemovesTempDir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir, sock := c.Dir(), c.sockDir
	selectOne(t, mustConnect(t, c.URL("postgres")))
	pw, err := os.ReadFile(c.PasswordFile())
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(c.PasswordFile()); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	if !strings.Contains(c.URL("x"), ":"+strings.TrimSpace(string(pw))+"@") {
		t.Fatal("URL does not carry the password from the password file")
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, sock} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still exists after Close (stat err %v)", d, err)
		}
	}
	if _, err := connect(t, c.URL("postgres")); err == nil {
		t.Fatal("connection succeeded after Close")
	}
}

func TestPersistentDataDirIsReused(t *testing.T) {
	// Not t.TempDir: as root the server user must be able to traverse the parent.
	parent, err := os.MkdirTemp("", "pgtest-persist-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "missing", "parents", "cluster")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c1, err := Start(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	url1 := c1.URL("postgres")
	if _, err := mustConnect(t, url1).Exec(ctx, "CREATE TABLE survivor (x int)"); err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := mustConnect(t, url1).QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
		t.Fatalf("persistent cluster fsync = %q, %v; want on", fsync, err)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		t.Fatalf("Close removed a persistent cluster: %v", err)
	}

	c2, err := Start(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	if c2.PasswordFile() != c1.PasswordFile() || c2.password != c1.password {
		t.Fatal("reused cluster got a new password file or password")
	}
	var exists bool
	if err := mustConnect(t, c2.URL("postgres")).QueryRow(ctx, "SELECT to_regclass('survivor') IS NOT NULL").Scan(&exists); err != nil || !exists {
		t.Fatalf("table from the first run missing after reuse: %v, %v", exists, err)
	}
}

func TestExplicitPortInUseFails(t *testing.T) {
	c := NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Start(ctx, Options{Port: c.Port()})
	if err == nil {
		t.Fatal("second cluster on a taken port started")
	}
	if !errors.Is(err, errAddrInUse) || !strings.Contains(err.Error(), "server log") {
		t.Fatalf("error should say the address is in use and show the server log: %v", err)
	}
}

// TestServerDiesWithOwner kills a process that owns a cluster with SIGKILL (no
// cleanup runs) and checks that the postmaster goes too.
func TestServerDiesWithOwner(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	line, err := bufio.NewReader(out).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) != 3 || fields[0] != "DIRS" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	dir := fields[1]
	t.Cleanup(func() { os.RemoveAll(dir); os.RemoveAll(fields[2]) })
	pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatalf("postmaster %d not running before the kill", pid)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("postmaster %d outlived its owner by 10s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestDatabaseName(t *testing.T) {
	valid := regexp.MustCompile(`^t_[a-z0-9_]{1,40}_[0-9a-f]{8}$`)
	for _, name := range []string{"TestX", "TestRecall/empty query", "Test" + strings.Repeat("Long", 40), "Test/ünïcode/🙂"} {
		got := databaseName(name)
		if !valid.MatchString(got) || !identRE.MatchString(got) {
			t.Errorf("databaseName(%q) = %q, not a valid identifier", name, got)
		}
		if got == databaseName(name) {
			t.Errorf("databaseName(%q) twice gave the same name %q", name, got)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"postgres://u:p@h:5432/postgres?sslmode=disable", "postgres://u:p@h:5432/t_x?sslmode=disable", false},
		{"postgresql://u@h/", "postgresql://u@h/t_x", false},
		{"host=h dbname=x", "", true},
		{"mysql://u@h/db", "", true},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.in, "t_x")
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), ":p@") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

func TestCreateDatabaseRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "Upper", "x; DROP DATABASE postgres", "1abc", strings.Repeat("a", 64)} {
		if _, err := createDatabase(context.Background(), "postgres://u@127.0.0.1:1/postgres", name); err == nil {
			t.Errorf("createDatabase(%q) accepted an invalid name", name)
		}
	}
}
