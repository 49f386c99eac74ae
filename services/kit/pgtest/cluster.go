// Package pgtest starts throwaway (or, for local development, persistent)
// PostgreSQL servers from the installed binaries, so tests run against the
// real database instead of a fake.
//
// A cluster lives in one directory:
//
//	<dir>/data        PGDATA
//	<dir>/pwfile      the password of the superuser "brain" (mode 0600)
//	<dir>/server.log  the server's log (appended to on every start)
//
// The unix socket goes to a separate short-lived directory under os.TempDir,
// because socket paths are limited to ~107 bytes and DataDir may be deep.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brainhq/brain/services/kit/child"
)

const (
	// superuser is the role initdb creates; every URL the harness hands out uses it.
	superuser = "brain"
	// readyTimeout bounds how long Start waits for the server to accept connections.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds a fast shutdown before the postmaster is killed.
	stopTimeout = 15 * time.Second
	// portAttempts is how often Start retries when a free port is taken between
	// choosing it and the server binding it.
	portAttempts = 5
)

// Options configures Start.
type Options struct {
	// DataDir makes the cluster persistent: it is created (initdb) on first use
	// and reused, with its password file, afterwards. Empty means a temporary
	// directory that Close removes.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Logf receives progress messages (initdb, start, stop). Nil discards them.
	Logf func(format string, args ...any)
}

// Cluster is a PostgreSQL server started from the installed binaries.
type Cluster struct {
	dir      string // cluster directory: data/, pwfile, server.log
	temp     bool   // dir is ours to remove on Close
	sockDir  string
	port     int
	password string
	bins     binaries
	owner    *osUser // non-nil when running as root: the server runs as this user
	logf     func(format string, args ...any)

	mu   sync.Mutex
	proc *child.Process // the running postmaster; nil while stopped
}

type binaries struct {
	initdb   string
	postgres string
}

type osUser struct {
	uid, gid uint32
	name     string
}

// Start creates (or, for an existing DataDir, reuses) a cluster and starts its
// server, returning once it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bins: bins, logf: opts.Logf, port: opts.Port}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		if c.owner, err = lookupUser("postgres"); err != nil {
			return nil, fmt.Errorf("pgtest: running as root, need the postgres OS user to run the server: %w", err)
		}
	}
	if err := c.prepare(opts.DataDir); err != nil {
		c.removeDirs()
		return nil, err
	}
	if err := c.startWithPortRetry(ctx, opts.Port == 0); err != nil {
		c.removeDirs()
		return nil, err
	}
	return c, nil
}

// prepare lays out the cluster directory and runs initdb unless a cluster exists.
func (c *Cluster) prepare(dataDir string) error {
	var err error
	if dataDir == "" {
		if c.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
			return fmt.Errorf("pgtest: create cluster dir: %w", err)
		}
		c.temp = true
	} else {
		if c.dir, err = filepath.Abs(dataDir); err != nil {
			return fmt.Errorf("pgtest: data dir %q: %w", dataDir, err)
		}
		// Missing parents get 0755 so that, as root, the server user can reach
		// the cluster; the cluster dir itself stays private.
		if err := os.MkdirAll(filepath.Dir(c.dir), 0o755); err != nil {
			return fmt.Errorf("pgtest: create data dir parent %q: %w", filepath.Dir(c.dir), err)
		}
		if err := os.Mkdir(c.dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("pgtest: create data dir %q: %w", c.dir, err)
		}
	}
	if c.sockDir, err = os.MkdirTemp("", "pgsock-"); err != nil {
		return fmt.Errorf("pgtest: create socket dir: %w", err)
	}
	for _, d := range []string{c.dir, c.sockDir} {
		if err := c.giveToOwner(d); err != nil {
			return err
		}
	}
	if c.owner != nil {
		if err := checkTraversable(c.dir, c.owner); err != nil {
			return err
		}
	}

	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); err == nil {
		pw, err := os.ReadFile(c.PasswordFile())
		if err != nil {
			return fmt.Errorf("pgtest: existing cluster in %s but no password file: %w", c.dir, err)
		}
		c.password = strings.TrimRight(string(pw), "\r\n")
		c.logf("pgtest: reusing cluster in %s", c.dir)
		return nil
	}
	return c.initdb()
}

func (c *Cluster) initdb() error {
	c.password = randomHex(16)
	if err := os.WriteFile(c.PasswordFile(), []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgtest: write password file: %w", err)
	}
	if err := c.giveToOwner(c.PasswordFile()); err != nil {
		return err
	}
	args := []string{
		"-D", c.dataDir(), "-U", superuser, "--pwfile=" + c.PasswordFile(),
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"--encoding=UTF8", "--locale=C",
	}
	if c.temp {
		args = append(args, "--no-sync")
	}
	start := time.Now()
	cmd := exec.Command(c.bins.initdb, args...)
	c.prepareCmd(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb %s: %w\n%s", c.dataDir(), err, tail(string(out), 2000))
	}
	c.logf("pgtest: initdb %s in %s", c.dataDir(), time.Since(start).Round(time.Millisecond))
	return nil
}

func (c *Cluster) startWithPortRetry(ctx context.Context, pickPort bool) error {
	var err error
	for attempt := 0; attempt < portAttempts; attempt++ {
		if pickPort {
			if c.port, err = freePort(); err != nil {
				return err
			}
		}
		err = c.startServer(ctx)
		if err == nil || !pickPort || !errors.Is(err, errAddrInUse) {
			return err
		}
		c.logf("pgtest: port %d was taken, retrying", c.port)
	}
	return err
}

var errAddrInUse = errors.New("address already in use")

// startServer runs the postmaster and waits until it accepts connections.
func (c *Cluster) startServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return fmt.Errorf("pgtest: server on port %d already running", c.port)
	}
	logFile, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: open server log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	logStart, _ := logFile.Seek(0, 2)

	settings := []string{
		"listen_addresses=127.0.0.1",
		"unix_socket_directories=" + c.sockDir,
		"max_connections=200",
		"shared_buffers=128MB",
	}
	if c.temp {
		// Durability is worthless for a cluster deleted after the tests.
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	args := []string{"-D", c.dataDir(), "-p", strconv.Itoa(c.port)}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	cmd := exec.Command(c.bins.postgres, args...)
	c.prepareCmd(cmd)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If this process dies without cleaning up (panic, SIGKILL, test timeout),
	// the kernel kills the postmaster too; its backends notice and exit.
	p, err := child.Start(cmd, syscall.SIGKILL)
	if err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	c.proc = p
	if err := c.waitReady(ctx, p); err != nil {
		c.stopLocked()
		logTail := c.logSince(logStart)
		if strings.Contains(logTail, "Address already in use") {
			err = fmt.Errorf("%w (port %d): %v", errAddrInUse, c.port, err)
		}
		return fmt.Errorf("pgtest: postgres on port %d did not become ready: %w\nserver log (%s):\n%s",
			c.port, err, c.logPath(), logTail)
	}
	c.logf("pgtest: postgres ready on 127.0.0.1:%d (dir %s)", c.port, c.dir)
	return nil
}

func (c *Cluster) waitReady(ctx context.Context, p *child.Process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attempt, c.URL("postgres"))
		if err == nil {
			err = conn.Ping(attempt)
			conn.Close(attempt)
		}
		cancelAttempt()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-p.Done():
			return fmt.Errorf("postgres exited: %v", p.Err())
		case <-ctx.Done():
			return fmt.Errorf("%w (last connect error: %v)", ctx.Err(), lastErr)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Stop shuts the server down (fast shutdown: connections are terminated) and
// keeps the data. Stopping a stopped cluster is a no-op.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked()
}

func (c *Cluster) stopLocked() error {
	p := c.proc
	if p == nil {
		return nil
	}
	c.proc = nil
	// SIGINT is PostgreSQL's "fast shutdown".
	if err := p.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.logf("pgtest: signal postgres: %v", err)
	}
	select {
	case <-p.Done():
		c.logf("pgtest: postgres on port %d stopped", c.port)
		return nil
	case <-time.After(stopTimeout):
	}
	_ = p.Signal(syscall.SIGKILL)
	<-p.Done()
	return fmt.Errorf("pgtest: postgres on port %d ignored fast shutdown for %s and was killed", c.port, stopTimeout)
}

// Restart starts the server again on the same port and data (stopping it first
// if it is running).
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.startServer(ctx)
}

// Close stops the server, removes its socket directory and, for a temporary
// cluster, its data.
func (c *Cluster) Close() error {
	err := c.Stop()
	if rmErr := c.removeDirs(); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

func (c *Cluster) removeDirs() error {
	var errs []error
	if c.sockDir != "" {
		errs = append(errs, os.RemoveAll(c.sockDir))
	}
	if c.temp && c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pgtest: remove cluster dirs: %w", err)
	}
	return nil
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// Host is the address the server listens on.
func (c *Cluster) Host() string { return "127.0.0.1" }

// Dir is the cluster directory (data/, pwfile, server.log).
func (c *Cluster) Dir() string { return c.dir }

// SocketDir is the private unix socket directory (local connections there use
// trust authentication).
func (c *Cluster) SocketDir() string { return c.sockDir }

// PasswordFile is the file holding the password of the "brain" superuser,
// suitable for POSTGRES_PASSWORD_FILE.
func (c *Cluster) PasswordFile() string { return filepath.Join(c.dir, "pwfile") }

// URL is a connection URL for database dbname as the superuser "brain".
func (c *Cluster) URL(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, c.password),
		Host:     net.JoinHostPort(c.Host(), strconv.Itoa(c.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates an empty database and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	return createDatabase(ctx, c.URL("postgres"), name)
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logPath() string { return filepath.Join(c.dir, "server.log") }

func (c *Cluster) logSince(offset int64) string {
	b, err := os.ReadFile(c.logPath())
	if err != nil {
		return fmt.Sprintf("(cannot read server log: %v)", err)
	}
	if offset >= 0 && offset <= int64(len(b)) {
		b = b[offset:]
	}
	return tail(string(b), 4000)
}

// prepareCmd sets the environment and, as root, the credentials for a server binary.
func (c *Cluster) prepareCmd(cmd *exec.Cmd) {
	cmd.Dir = c.dir // a cwd the server user can enter
	cmd.Env = serverEnv(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if c.owner != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.owner.uid, Gid: c.owner.gid}
	}
}

func (c *Cluster) giveToOwner(path string) error {
	if c.owner == nil {
		return nil
	}
	if err := os.Chown(path, int(c.owner.uid), int(c.owner.gid)); err != nil {
		return fmt.Errorf("pgtest: chown %s to %s: %w", path, c.owner.name, err)
	}
	return nil
}

// serverEnv drops PG* variables (PGDATA, PGPORT, ...) so the caller's
// environment cannot redirect the server or initdb.
func serverEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LC_ALL=C")
}

func findBinaries() (binaries, error) {
	initdb, err1 := exec.LookPath("initdb")
	postgres, err2 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil {
		return binaries{initdb: initdb, postgres: postgres}, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		b := binaries{initdb: filepath.Join(d, "initdb"), postgres: filepath.Join(d, "postgres")}
		if isExecutable(b.initdb) && isExecutable(b.postgres) {
			return b, nil
		}
	}
	return binaries{}, errors.New("pgtest: PostgreSQL binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; install PostgreSQL or set DATABASE_URL")
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func lookupUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid %q: %w", u.Gid, err)
	}
	return &osUser{uid: uint32(uid), gid: uint32(gid), name: name}, nil
}

// ErrNotTraversable: the server's OS user cannot reach the data directory
// (an ancestor directory lacks the execute bit for it, e.g. /root).
var ErrNotTraversable = errors.New("data directory not reachable by the server's OS user")

// checkTraversable reports a clear error when the server user cannot reach
// dir because an ancestor lacks the execute bit for it.
func checkTraversable(dir string, u *osUser) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgtest: stat %s: %w", d, err)
		}
		mode := st.Mode().Perm()
		sys, ok := st.Sys().(*syscall.Stat_t)
		var bit os.FileMode = 0o001
		switch {
		case ok && sys.Uid == u.uid:
			bit = 0o100
		case ok && sys.Gid == u.gid:
			bit = 0o010
		}
		if mode&bit == 0 {
			return fmt.Errorf("pgtest: %w: the %s OS user cannot traverse %s (mode %v); choose a data dir it can reach", ErrNotTraversable, u.name, d, mode)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// freePort asks the kernel for a free port. The port is released before the
// server binds it, so Start retries if someone else takes it meanwhile.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// createDatabase creates database name on the server adminURL points to and
// returns adminURL with its database replaced by name.
func createDatabase(ctx context.Context, adminURL, name string) (string, error) {
	if !identRE.MatchString(name) {
		return "", fmt.Errorf("pgtest: database name %q must match %s", name, identRE)
	}
	dbURL, err := withDatabase(adminURL, name)
	if err != nil {
		return "", err
	}
	if err := adminExec(ctx, adminURL, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return dbURL, nil
}

func dropDatabase(ctx context.Context, adminURL, name string) error {
	if !identRE.MatchString(name) {
		return fmt.Errorf("pgtest: database name %q must match %s", name, identRE)
	}
	// FORCE terminates sessions a test forgot to close.
	if err := adminExec(ctx, adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", name, err)
	}
	return nil
}

func adminExec(ctx context.Context, adminURL, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase replaces the database in a postgres:// URL.
func withDatabase(rawURL, dbname string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("pgtest: %q is not a postgres:// URL", redact(rawURL))
	}
	u.Path = "/" + dbname
	u.RawPath = ""
	return u.String(), nil
}

// redact masks the password of a URL for error messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
