package fallback

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/brainhq/brain/services/kit/pgtest"
)

// realErrors makes PostgreSQL fail in the ways a crash, a restart or an
// operator does, on a dedicated cluster, and returns the errors pgx really
// reports for each, so the classifier is tested against them rather than
// against values made up to look like them.
func realErrors(t *testing.T) (dead map[string]error, answers map[string]error) {
	t.Helper()
	c := pgtest.NewCluster(t)
	url := c.URL("postgres")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Closed here, by the goroutine that used them, not in a cleanup: the
	// race detector sees no order between a cleanup and pgx's own writes.
	var conns []*pgx.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close(context.Background())
		}
	}()
	connect := func() *pgx.Conn { // after a crash the server restarts itself: retry
		t.Helper()
		var lastErr error
		for range 100 {
			conn, err := pgx.Connect(ctx, url)
			if err == nil {
				conns = append(conns, conn)
				return conn
			}
			lastErr = err
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("connect: %v", lastErr)
		return nil
	}
	backend := func(conn *pgx.Conn) int {
		t.Helper()
		var pid int
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	postmaster := func() int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(c.Dir(), "data", "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(first)
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	// midBatch runs a statement batch (as Write does) and sends sig to pid
	// while it runs.
	midBatch := func(conn pgx.Tx, pid int, sig syscall.Signal) error {
		time.AfterFunc(200*time.Millisecond, func() { _ = syscall.Kill(pid, sig) })
		b := &pgx.Batch{}
		b.Queue("SELECT pg_sleep(10)")
		b.Queue("SELECT 1")
		br := conn.SendBatch(ctx, b)
		_, err := br.Exec()
		_ = br.Close()
		return err
	}
	dead = map[string]error{}
	answers = map[string]error{}

	conn := connect()
	_, err := conn.Exec(ctx, "SELECT * FROM no_such_table")
	answers["undefined table"] = err
	_, err = conn.Exec(ctx, "SELEC 1")
	answers["syntax error"] = err
	_, err = conn.Exec(ctx, "SELECT 1/0")
	answers["division by zero"] = err

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dead["backend killed mid-batch (crash)"] = midBatch(tx, backend(conn), syscall.SIGKILL)
	_, err = conn.Exec(ctx, "SELECT 1")
	dead["next query on the dead connection"] = err

	conn, admin := connect(), connect()
	pid := backend(conn)
	terminated := make(chan struct{}) // admin is used there, then closed here: in that order
	time.AfterFunc(200*time.Millisecond, func() {
		defer close(terminated)
		_, _ = admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
	})
	_, err = conn.Exec(ctx, "SELECT pg_sleep(10)")
	<-terminated
	dead["backend terminated by an operator"] = err

	conn = connect()
	tx, err = conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dead["immediate shutdown mid-batch (pg_ctl -m immediate)"] = midBatch(tx, postmaster(), syscall.SIGQUIT)
	dead["commit after the server died"] = tx.Commit(ctx)

	time.Sleep(300 * time.Millisecond) // the postmaster is gone now
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Begin(ctx)
	dead["connect to a stopped server"] = err

	for name, err := range dead {
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		t.Logf("%s: %T %v", name, err, err)
	}
	for name, err := range answers {
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
	}
	return dead, answers
}

// TestUnusableRealErrors: every way of losing the connection is UNAVAILABLE
// (it used to come back as INTERNAL for "unexpected EOF"), and PostgreSQL's
// own answers are not.
func TestUnusableRealErrors(t *testing.T) {
	dead, answers := realErrors(t)
	for name, err := range dead {
		t.Run(name, func(t *testing.T) {
			if !unusable(err) {
				t.Errorf("unusable(%T %v) = false, want true", err, err)
			}
			g := NewGuard(NewBreaker(1, 0, time.Now, nil))
			werr := g.Do(context.Background(), time.Second, func(context.Context) error { return err })
			if !errors.Is(werr, ErrUnavailable) || !errors.Is(werr, err) {
				t.Errorf("Guard.Do = %v, want ErrUnavailable keeping the cause", werr)
			}
			if ok, _ := g.Breaker().Allow(); ok {
				t.Error("a lost connection did not count toward the breaker")
			}
		})
	}
	for name, err := range answers {
		t.Run(name, func(t *testing.T) {
			if unusable(err) {
				t.Errorf("unusable(%T %v) = true, want false: PostgreSQL answered", err, err)
			}
		})
	}
}

// TestPoolWaitIsNotAnOutage: a call whose time runs out waiting for a
// connection of a full pool (PostgreSQL healthy, every connection busy)
// says the pool stayed busy and does not count toward the breaker; one
// whose time runs out connecting (a server that accepts TCP and never
// answers) still counts.
func TestPoolWaitIsNotAnOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	newPool := func(url string) *pgxpool.Pool {
		t.Helper()
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = 1
		cfg.ConnConfig.Tracer = PoolTracer{}
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second // the guard's limit is what ends the call
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return pool
	}
	query := func(pool *pgxpool.Pool) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := pool.Exec(ctx, "SELECT 1")
			return err
		}
	}

	pool := newPool(pgtest.NewCluster(t).URL("postgres"))
	busy, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := NewGuard(NewBreaker(1, 0, time.Now, nil))
	err = g.Do(ctx, 100*time.Millisecond, query(pool))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "stayed busy") {
		t.Fatalf("full pool: %v, want ErrUnavailable saying the pool stayed busy", err)
	}
	if ok, _ := g.Breaker().Allow(); !ok {
		t.Fatal("waiting for a busy pool counted toward the breaker")
	}
	busy.Release()
	if err := g.Do(ctx, time.Second, query(pool)); err != nil {
		t.Fatalf("after the release: %v", err)
	}

	// A server that takes the connection and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	silent := newPool("postgres://brain@" + ln.Addr().String() + "/postgres?sslmode=disable")
	err = g.Do(ctx, 100*time.Millisecond, query(silent))
	if !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "busy") {
		t.Fatalf("silent server: %v, want ErrUnavailable blaming postgres", err)
	}
	if ok, _ := g.Breaker().Allow(); ok {
		t.Fatal("a server that never answers a new connection did not count toward the breaker")
	}
}
