package pgconn

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brainhq/brain/services/kit/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestPoolAgainstPostgres proves the config really connects: fields plus a
// password file reach the server, the statement timeout is applied, and
// without the password the server refuses.
func TestPoolAgainstPostgres(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	port, _ := strconv.Atoi(u.Port())
	base := Config{
		Host: u.Hostname(), Port: port, User: u.User.Username(), Database: strings.TrimPrefix(u.Path, "/"),
		SSLMode: "disable", StatementTimeout: 1500 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	withFile := base
	withFile.PasswordFile = writeFile(t, pw+"\n")
	pool := newPool(t, withFile)
	var timeout string
	if err := pool.QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if timeout != "1500ms" {
		t.Fatalf("statement_timeout = %q, want 1500ms", timeout)
	}

	// A ~/.pgpass entry would supply the password pgx finds missing.
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "absent"))
	noPassword := newPool(t, base)
	err = noPassword.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("ping without a password = %v, want an authentication error", err)
	}
}

func newPool(t *testing.T, c Config) *pgxpool.Pool {
	t.Helper()
	pc, err := c.PoolConfig()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
