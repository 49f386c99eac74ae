package api

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/memory/fallback"
)

// batchStore erases a namespace of left episodes per at a time, each
// batch taking took (on the bubble's clock).
type batchStore struct {
	Store
	left, per int64
	took      time.Duration
	calls     int
}

func (b *batchStore) DeleteNamespaceBatch(ctx context.Context, _ string) (int64, error) {
	b.calls++
	select {
	case <-time.After(b.took):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	n := min(b.left, b.per)
	b.left -= n
	return n, nil
}

func (b *batchStore) DeleteWorkingMemories(context.Context, string) (int64, error) { return 0, nil }

func eraseServer(st Store) (*Server, *fallback.Breaker) {
	br := fallback.NewBreaker(1, 0, time.Now, nil)
	cache := fallback.NewCache(10, 1<<20, time.Hour, time.Now)
	return New(Deps{Store: st, Guard: fallback.NewGuard(br), Cache: cache, Log: zap.NewNop(), QueryTimeout: 2 * time.Second}), br
}

func TestEraseLoopsUntilNoneLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &batchStore{left: 12_345, per: 5000, took: time.Second}
		s, _ := eraseServer(st)
		resp, err := s.DeleteNamespace(context.Background(), &memoryv1.DeleteNamespaceRequest{Namespace: "ns"})
		if err != nil || resp.GetDeleted() != 12_345 {
			t.Fatalf("DeleteNamespace = %v, %v; want 12345 deleted", resp, err)
		}
		if st.calls != 4 { // 5000, 5000, 2345, then 0
			t.Fatalf("%d batches, want 4", st.calls)
		}
	})
}

// A namespace too large for EraseBudget: the call stops between batches,
// says how many it erased and to call again, and the breaker stays closed
// (PostgreSQL answered every batch). The next call finishes.
func TestEraseOutOfBudgetSaysCallAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &batchStore{left: 1_000_000, per: 5000, took: 4 * time.Second}
		s, br := eraseServer(st)
		start := time.Now()
		_, err := s.DeleteNamespace(context.Background(), &memoryv1.DeleteNamespaceRequest{Namespace: "ns"})
		took := time.Since(start)
		if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "call again") {
			t.Fatalf("out of budget: %v, want DEADLINE_EXCEEDED saying to call again", err)
		}
		erased := 1_000_000 - st.left
		if erased == 0 || !strings.Contains(err.Error(), "erased "+itoa(erased)+" episodes") {
			t.Fatalf("error %q does not count the %d erased", err, erased)
		}
		if took > EraseBudget {
			t.Fatalf("took %s, more than EraseBudget %s", took, EraseBudget)
		}
		if open, _ := br.State(); open {
			t.Fatal("running out of the erase budget opened the breaker")
		}
		st.left, st.took = 7000, time.Second
		resp, err := s.DeleteNamespace(context.Background(), &memoryv1.DeleteNamespaceRequest{Namespace: "ns"})
		if err != nil || resp.GetDeleted() != 7000 {
			t.Fatalf("calling again: %v, %v; want the 7000 left", resp, err)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
