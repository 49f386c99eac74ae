package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/brainhq/brain/services/e2e/internal/stack"
	"github.com/brainhq/brain/services/kit/pgtest"
)

// State shared by the package's tests: the binaries are built once, and the
// measurements of every test end up in one table printed after the run.
var (
	bins     stack.Binaries
	measured stack.Measurements
)

// reportEnv names a file to write the measurements table to.
const reportEnv = "BRAIN_E2E_REPORT"

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		// Every test here runs real processes; -short skips them all, so
		// there is nothing to build.
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "brain-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := stack.RepoRoot(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	bins, err = stack.Build(ctx, root, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	code := pgtest.Main(m)

	if measured.Len() > 0 {
		table := measured.Table()
		fmt.Printf("\ne2e measurements (loopback, binaries built in %s):\n\n%s\n", stack.Round(bins.BuildTime), table)
		// go test shows a passing package's output only with -v; the table
		// can also go to a file.
		if path := os.Getenv(reportEnv); path != "" {
			if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", reportEnv, err)
			}
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the suites: %v\n", err)
			code = 1
		}
	}
	return code
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: runs both binaries and PostgreSQL; skipped with -short")
	}
}
