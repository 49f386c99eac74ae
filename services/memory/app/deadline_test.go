package app

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/pgtest"
)

// TestShortCallerDeadlineIsNotAnOutage: PostgreSQL is healthy but needs
// longer than the callers allow (their table is locked by another
// transaction). A burst of recalls and writes with short deadlines is
// answered in time, says it was the caller's deadline, and never opens the
// breaker.
func TestShortCallerDeadlineIsNotAnOutage(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	cfg := testConfig(t, dbURL)
	// The callers' deadlines (1 s) bind, not the service's caps; 1 s leaves
	// the answer a 100 ms reserve, enough on a loaded CPU.
	cfg.RecallTimeout, cfg.QueryTimeout = 5*time.Second, 5*time.Second
	r := startApp(t, cfg)
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	ctx := ctxT(t)

	locker, err := pgx.Connect(ctx, dbURL)
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

	_, since := r.app.breaker.State()
	const calls = 20
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		recalls, writes   int
		badReasons, other []string
	)
	for i := range calls {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			rec, err := r.client.Recall(cctx, &memoryv1.RecallRequest{Namespace: "n", Query: "anything at all"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				other = append(other, "recall: "+err.Error()) // the answer came after the client's deadline
			case !rec.GetDegraded() || !strings.Contains(rec.GetDegradedReason(), "caller's deadline") ||
				strings.Contains(rec.GetDegradedReason(), "postgres unavailable"):
				badReasons = append(badReasons, rec.GetDegradedReason())
			default:
				recalls++
			}
		})
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := r.client.WriteEpisodes(cctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
				{Namespace: "n", Content: "written with little time"}}})
			mu.Lock()
			defer mu.Unlock()
			st := status.Convert(err)
			switch {
			case st.Code() == codes.DeadlineExceeded && st.Message() == "context deadline exceeded":
				other = append(other, "write: "+st.Message()) // the client's own deadline
			case st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "caller's deadline") ||
				strings.Contains(st.Message(), "postgres unavailable"):
				badReasons = append(badReasons, st.Message())
			default:
				writes++
			}
		})
		_ = i
	}
	wg.Wait()
	for _, s := range badReasons {
		t.Errorf("answer must say the caller's deadline ran out, and not blame postgres: %q", s)
	}
	if recalls+writes < calls { // most calls must get the service's answer in time
		t.Errorf("only %d recalls and %d writes of %d each were answered by the service in time (others: %q)", recalls, writes, calls, other)
	}
	if open, now := r.app.breaker.State(); open || !now.Equal(since) {
		t.Errorf("the breaker flipped (open now: %v) during calls cut by their callers' deadlines", open)
	}
	t.Logf("%d recalls and %d writes said it was the caller's deadline; %d answers came after the client's", recalls, writes, len(other))
}
