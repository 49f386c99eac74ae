package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/brainhq/brain/services/kit/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestLoopbackOnly(t *testing.T) {
	tests := []struct {
		url  string
		okay bool
	}{
		{"postgres://u@127.0.0.1:5432/db", true},
		{"postgres://u@localhost/db", true},
		{"postgres://u@[::1]:5432/db", true},
		{"host=/var/run/postgresql dbname=x", true},
		{"postgres://u@10.0.0.5/db", false},
		{"postgres://u@db.example.com/db", false},
	}
	for _, tt := range tests {
		if err := checkLoopbackURL(tt.url); (err == nil) != tt.okay {
			t.Errorf("checkLoopbackURL(%q) = %v, want ok=%v", tt.url, err, tt.okay)
		}
	}
	for addr, okay := range map[string]bool{"127.0.0.1:9091": true, "localhost:1": true, "[::1]:9091": true, "192.168.1.2:9091": false, "nohost": false} {
		if err := checkLoopbackAddr(addr); (err == nil) != okay {
			t.Errorf("checkLoopbackAddr(%q) = %v, want ok=%v", addr, err, okay)
		}
	}
}

func TestFlagsNeedADatabase(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	if _, err := parseFlags(nil); err == nil {
		t.Fatal("no --database-url, no DATABASE_URL, no --pgtest: accepted")
	}
	if _, err := parseFlags([]string{"--pgtest", "--concurrency", "0"}); err == nil {
		t.Fatal("concurrency 0 accepted")
	}
}

// A small end-to-end run: load, measure, report.
func TestSmallRun(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"--database-url", url, "--load", "--episodes", "400", "--namespaces", "4",
		"--concurrency", "2", "--duration", "300ms", "--warmup", "100ms", "--queries", "50"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []string{"loaded 400 episodes", "| SQL via pgx (store.RecallStatement) |", "| store.Recall (Go API, rows decoded) |"} {
		if !strings.Contains(report, want) {
			t.Fatalf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "first error") {
		t.Fatalf("errors during the run:\n%s", report)
	}
	// A second run finds the corpus loaded and does not load again.
	out.Reset()
	if err := run(ctx, []string{"--database-url", url, "--load", "--episodes", "400", "--namespaces", "4",
		"--concurrency", "1", "--duration", "100ms", "--warmup", "0s"}, &out); err != nil || strings.Contains(out.String(), "loaded") {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
}
