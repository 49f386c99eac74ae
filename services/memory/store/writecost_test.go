package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/brainhq/brain/services/memory/episode"
)

// distinctWords returns about n bytes of words no other call returns (the
// worst case for the index: every word is a new term).
func distinctWords(rng *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		w := make([]byte, 4+rng.IntN(6))
		for i := range w {
			w[i] = byte('a' + rng.IntN(26))
		}
		b.Write(w)
		b.WriteByte(' ')
	}
	return b.String()[:n]
}

func bigBatch(rng *rand.Rand, ns string, ids []string, size int) []episode.Episode {
	eps := make([]episode.Episode, len(ids))
	for i, id := range ids {
		eps[i] = episode.Episode{ID: id, Namespace: ns, Content: distinctWords(rng, size), Importance: 0.5, CreatedAt: t0}
	}
	return eps
}

// writeCost times inserting n episodes of size bytes of distinct words into
// a fresh namespace, then rewriting the same n with new content; the best
// of rounds for each.
func writeCost(t testing.TB, s *Store, n, size, rounds int) (insert, rewrite time.Duration) {
	rng := rand.New(rand.NewPCG(1, 2))
	insert, rewrite = time.Hour, time.Hour
	for r := range rounds {
		ns := fmt.Sprintf("cost-%d", r)
		ids := make([]string, n)
		for i := range ids {
			ids[i] = uuid.NewString()
		}
		first, second := bigBatch(rng, ns, ids, size), bigBatch(rng, ns, ids, size)
		start := time.Now()
		mustWrite(t, s, first...)
		insert = min(insert, time.Since(start))
		start = time.Now()
		mustWrite(t, s, second...)
		rewrite = min(rewrite, time.Since(start))
	}
	return insert, rewrite
}

// TestRewriteCostsLikeInsert: rewriting episodes with new content re-indexes
// them set-wise, tokenizing each content once, so it costs about a delete
// plus an insert, not ten times an insert (it once did, and a batch of 50
// rewrites of 15 KB could not finish within QUERY_TIMEOUT). The goal is
// 2×; the bound has room for a loaded machine.
func TestRewriteCostsLikeInsert(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	s, _ := newStore(t)
	insert, rewrite := writeCost(t, s, 50, 15_000, 3)
	t.Logf("50 × 15 KB of distinct words: insert %s, rewrite with new content %s (%.1f×)",
		insert.Round(time.Millisecond), rewrite.Round(time.Millisecond), float64(rewrite)/float64(insert))
	if rewrite*2 > 5*insert {
		t.Fatalf("rewrite took %s, %.1f× the insert's %s; want at most 2.5×", rewrite, float64(rewrite)/float64(insert), insert)
	}
}

// BenchmarkWrite50x15KB measures one insert and one rewrite of 50 × 15 KB.
func BenchmarkWrite50x15KB(b *testing.B) {
	s, _ := newStore(b)
	for b.Loop() {
		insert, rewrite := writeCost(b, s, 50, 15_000, 1)
		b.ReportMetric(float64(insert.Milliseconds()), "insert-ms")
		b.ReportMetric(float64(rewrite.Milliseconds()), "rewrite-ms")
	}
}

// TestWriteRunsAsLongAsItsDeadline: the pool's statement_timeout is a
// backstop for one ordinary query; a write given a longer deadline (a large
// batch's budget) must not be cut short by it, and one without a deadline
// still is.
func TestWriteRunsAsLongAsItsDeadline(t *testing.T) {
	_, pool := newStore(t)
	ctx := testCtx(t)
	cfg := pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "50"
	short, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	s := New(short)
	rng := rand.New(rand.NewPCG(3, 4))
	ids := func() []string {
		out := make([]string, 50)
		for i := range out {
			out[i] = uuid.NewString()
		}
		return out
	}
	// Without a deadline the backstop holds: this batch needs far more than 50 ms.
	_, err = s.Write(context.Background(), bigBatch(rng, "slow", ids(), 15_000))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("write without a deadline under a 50 ms statement_timeout: %v, want query_canceled", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	if _, err := s.Write(wctx, bigBatch(rng, "slow", ids(), 15_000)); err != nil {
		t.Fatalf("write with a 1 min deadline under a 50 ms statement_timeout: %v", err)
	}
	t.Logf("the batch took %s", time.Since(start).Round(time.Millisecond))
	// The setting was local to that transaction.
	var st string
	if err := short.QueryRow(ctx, "SHOW statement_timeout").Scan(&st); err != nil || st != "50ms" {
		t.Fatalf("statement_timeout after the write: %q %v, want 50ms", st, err)
	}
}
