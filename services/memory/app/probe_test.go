package app

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/pgtest"
)

// TestSaturatedPoolIsNotAnOutage: every pool connection is busy in a long
// pg_sleep while PostgreSQL is healthy. The probe, on its own connection,
// keeps passing: `postgres` stays SERVING and the breaker never flips, also
// while calls time out waiting for a connection; those calls say the pool
// was busy, not that PostgreSQL is down.
func TestSaturatedPoolIsNotAnOutage(t *testing.T) {
	cfg := testConfig(t, pgtest.NewDatabase(t))
	cfg.DB.MaxConns = 2
	cfg.QueryTimeout = 300 * time.Millisecond
	r := startApp(t, cfg)
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	ctx := ctxT(t)
	_, since := r.app.breaker.State()

	// Saturate: both connections sleep for 3 s.
	const hold = 3 * time.Second
	var wg sync.WaitGroup
	defer wg.Wait()
	started := make(chan struct{}, cfg.DB.MaxConns)
	for range cfg.DB.MaxConns {
		wg.Go(func() {
			conn, err := r.app.pool.Acquire(ctx)
			if err != nil {
				t.Error(err)
				started <- struct{}{}
				return
			}
			defer conn.Release()
			started <- struct{}{}
			if _, err := conn.Exec(ctx, "SELECT pg_sleep($1)", hold.Seconds()); err != nil {
				t.Error(err)
			}
		})
	}
	for range cfg.DB.MaxConns {
		<-started
	}
	satStart := time.Now()
	if st := r.app.pool.Stat(); st.AcquiredConns() != cfg.DB.MaxConns {
		t.Fatalf("pool not saturated: %d of %d acquired", st.AcquiredConns(), st.MaxConns())
	}

	// Calls while saturated: each waits for a connection until its time is
	// up. Enough of them, over long enough, to open the breaker if they
	// counted.
	for i := 0; time.Since(satStart) < hold-time.Second; i++ {
		rec, err := r.client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "n", Query: "anything"})
		if err != nil || !rec.GetDegraded() || !strings.Contains(rec.GetDegradedReason(), "busy") {
			t.Errorf("recall %d with the pool saturated: %v %v; want degraded, saying the pool was busy", i, rec, err)
		}
		_, err = r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{Namespace: "n", Content: "c"}}})
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "busy") {
			t.Errorf("write %d with the pool saturated: %v; want UNAVAILABLE saying the pool was busy", i, err)
		}
		if s := healthOf(t, r, PostgresCheck); s != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("postgres health %s %s into the saturation: overload reported as an outage", s, time.Since(satStart).Round(time.Millisecond))
		}
		if open, now := r.app.breaker.State(); open || !now.Equal(since) {
			t.Fatalf("breaker flipped (open now: %v) %s into the saturation", open, time.Since(satStart).Round(time.Millisecond))
		}
	}
	wg.Wait()
	rec, err := r.client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "n", Query: "anything"})
	if err != nil || rec.GetDegraded() {
		t.Fatalf("recall after the saturation: %v %v", rec, err)
	}
}

func healthOf(t *testing.T, r *running, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := r.health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health %q: %v", service, err)
	}
	return resp.GetStatus()
}
