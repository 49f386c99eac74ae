package app

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/pgtest"
)

// ternLock is the advisory lock the migration library (tern) takes around
// every migration; holding it keeps --migrate running. Should tern change
// it, the migration is no longer held and this test fails, not passes.
const ternLock = int64(9628173550095224)

// TestMigratingIsReportedAsMigrating: while --migrate is still running on a
// fresh database, health and callers say migrations are running (not "run
// `memory migrate`") and the breaker stays closed; when it ends, the
// service serves.
func TestMigratingIsReportedAsMigrating(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	holder, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", ternLock); err != nil {
		t.Fatal(err)
	}

	r := startApp(t, testConfig(t, dbURL))
	reg := r.app.srv.Health()
	deadline := time.Now().Add(10 * time.Second)
	probes := 0
	var last time.Time
	for probes < 4 { // several probes, each one a chance to open the breaker
		if res, ok := reg.Result(PostgresCheck); ok && res.Known && res.LastRun != last {
			last = res.LastRun
			probes++
			if res.OK || !strings.Contains(res.LastError, "migrations are running") {
				t.Fatalf("postgres check while migrating: ok=%v %q; want it to say migrations are running", res.OK, res.LastError)
			}
		}
		if open, _ := r.app.breaker.State(); open {
			t.Fatal("the breaker opened while migrations were running")
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d probes in 10 s", probes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_NOT_SERVING, 0)

	_, err = r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{Namespace: "n", Content: "early"}}})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "migrations are running") {
		t.Fatalf("write while migrating: %v; want UNAVAILABLE saying migrations are running", err)
	}
	rec, err := r.client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "n", Query: "early"})
	if err != nil || rec.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_NONE || !strings.Contains(rec.GetDegradedReason(), "migrations are running") {
		t.Fatalf("recall while migrating: %v %v; want NONE saying migrations are running", rec, err)
	}
	if open, _ := r.app.breaker.State(); open {
		t.Fatal("calls during the migration opened the breaker")
	}

	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", ternLock); err != nil {
		t.Fatal(err)
	}
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	if _, err := r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{Namespace: "n", Content: "after"}}}); err != nil {
		t.Fatalf("write after the migration: %v", err)
	}
}

// TestBreakerLogLevels: the breaker opening is a warning, closing again is
// good news (info).
func TestBreakerLogLevels(t *testing.T) {
	u := url.URL{Scheme: "postgres", User: url.User("brain"), Host: "127.0.0.1:" + strconv.Itoa(closedPort(t)), Path: "brain", RawQuery: "sslmode=disable"}
	core, logs := observer.New(zap.DebugLevel)
	a, err := New(testConfig(t, u.String()), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.closePool)
	a.breaker.Trip("probe failed")
	a.breaker.Reset()
	var got []string
	for _, e := range logs.FilterMessage("postgres circuit breaker").All() {
		got = append(got, fmt.Sprintf("%s open=%v", e.Level, e.ContextMap()["open"]))
	}
	if want := []string{"warn open=true", "info open=false"}; !slices.Equal(got, want) {
		t.Fatalf("breaker log lines %q, want %q", got, want)
	}
}
