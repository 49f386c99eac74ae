package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// sharedServer is the server Main provides to NewDatabase. It is package
// state because NewDatabase(t) must find the server TestMain started without
// the test passing it around; Main sets it before m.Run and clears it after.
var (
	sharedMu     sync.Mutex
	sharedServer *server
)

// server is where NewDatabase creates databases: a cluster started by Main, or
// the server DATABASE_URL points to.
type server struct {
	adminURL string
	cluster  *Cluster // nil for DATABASE_URL
}

// Main is for TestMain: it starts one cluster shared by the package's tests
// (or, when DATABASE_URL is set, uses that server instead), runs the tests and
// stops the cluster. Use it as `os.Exit(pgtest.Main(m))`.
func Main(m *testing.M) int {
	srv, err := startShared(os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest.Main: %v\n", err)
		return 1
	}
	sharedMu.Lock()
	sharedServer = srv
	sharedMu.Unlock()

	code := m.Run()

	sharedMu.Lock()
	sharedServer = nil
	sharedMu.Unlock()
	if srv.cluster != nil {
		if err := srv.cluster.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest.Main: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

func startShared(databaseURL string) (*server, error) {
	if databaseURL != "" {
		// Fail now, not in every test, when the URL is unusable.
		if _, err := withDatabase(databaseURL, "postgres"); err != nil {
			return nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
		return &server{adminURL: databaseURL}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		return nil, err
	}
	return &server{adminURL: c.URL("postgres"), cluster: c}, nil
}

// NewDatabase creates a fresh, empty database in the server Main provides and
// returns its URL; the database is dropped (WITH (FORCE)) at t.Cleanup.
// It fails the test when the package's TestMain does not call Main: starting a
// server lazily would leave nobody to stop it.
func NewDatabase(t testing.TB) string {
	t.Helper()
	sharedMu.Lock()
	srv := sharedServer
	sharedMu.Unlock()
	if srv == nil {
		t.Fatal("pgtest.NewDatabase: no shared PostgreSQL; add `func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }` to this test package")
	}
	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbURL, err := createDatabase(ctx, srv.adminURL, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dropDatabase(ctx, srv.adminURL, name); err != nil {
			t.Error(err)
		}
	})
	return dbURL
}

// NewCluster starts a dedicated cluster, for tests that stop or restart
// PostgreSQL; it is closed (and its data removed) at t.Cleanup.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// databaseName derives a readable, unique, valid identifier from a test name:
// "TestRecall/empty query" -> "t_testrecall_empty_query_1a2b3c4d".
func databaseName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return "t_" + b.String() + "_" + randomHex(4)
}
