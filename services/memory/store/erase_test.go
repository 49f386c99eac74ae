package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/brainhq/brain/services/memory/episode"
)

func fill(t testing.TB, s *Store, ns string, n, size int) {
	t.Helper()
	for start := 0; start < n; start += episode.MaxBatch {
		eps := make([]episode.Episode, 0, episode.MaxBatch)
		for i := start; i < min(n, start+episode.MaxBatch); i++ {
			c := fmt.Sprintf("episode %d of %s about harbours lighthouses and tides %s", i, ns, strings.Repeat("x", max(size-60, 0)))
			eps = append(eps, episode.Episode{Namespace: ns, Content: c[:min(len(c), max(size, 1))], Importance: 0.5, CreatedAt: t0})
		}
		mustWrite(t, s, eps...)
	}
}

func count(t testing.TB, s *Store, ns string) int64 {
	t.Helper()
	st, err := s.Stats(testCtx(t), ns)
	if err != nil {
		t.Fatal(err)
	}
	return st.EpisodeCount
}

// TestEraseInBatches: DeleteNamespace erases batch by batch, each bounded in
// episodes and bytes and committed on its own; the index stays exact after
// every batch, and other namespaces are untouched.
func TestEraseInBatches(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	s.eraseBatch.episodes, s.eraseBatch.bytes = 7, 1<<20
	fill(t, s, "big", 50, 100)
	fill(t, s, "other", 5, 100)
	for i := range 3 {
		n, err := s.DeleteNamespaceBatch(ctx, "big")
		if err != nil || n != 7 {
			t.Fatalf("batch %d: %d, %v; want 7", i, n, err)
		}
		checkIndex(t, s)
	}
	if got := count(t, s, "big"); got != 50-21 {
		t.Fatalf("after 3 batches %d episodes left, want 29", got)
	}
	n, err := s.DeleteNamespace(ctx, "big")
	if err != nil || n != 29 {
		t.Fatalf("DeleteNamespace = %d, %v; want the 29 left", n, err)
	}
	if n, err := s.DeleteNamespace(ctx, "big"); err != nil || n != 0 {
		t.Fatalf("again: %d, %v; want 0", n, err)
	}
	if got := count(t, s, "other"); got != 5 {
		t.Fatalf("other namespace holds %d, want 5", got)
	}
	checkIndex(t, s)

	// The byte bound: 400-byte contents in batches of at most 1,000 bytes go
	// two at a time; one content larger than the bound still goes alone.
	s.eraseBatch.episodes, s.eraseBatch.bytes = 100, 1000
	fill(t, s, "bytes", 5, 400)
	if n, err := s.DeleteNamespaceBatch(ctx, "bytes"); err != nil || n != 2 {
		t.Fatalf("byte-bounded batch: %d, %v; want 2", n, err)
	}
	s.eraseBatch.bytes = 10
	if n, err := s.DeleteNamespaceBatch(ctx, "bytes"); err != nil || n != 1 {
		t.Fatalf("batch under a bound below one content: %d, %v; want 1", n, err)
	}
	checkIndex(t, s)
}

// TestEraseInterruptedCompletesOnNextCall: an erase cut short (its context
// ends midway) keeps what it erased, reports it with the error, leaves the
// index exact, and the next call erases the rest.
func TestEraseInterruptedCompletesOnNextCall(t *testing.T) {
	s, _ := newStore(t)
	const total = 3000 // far more batches than the interrupt needs, even on a loaded machine
	fill(t, s, "cut", total, 100)
	s.eraseBatch.episodes = 1 // one transaction each: time to interrupt
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go func() {
		defer cancel()
		for count(t, s, "cut") > total-10 {
			time.Sleep(time.Millisecond)
		}
	}()
	n, err := s.DeleteNamespace(ctx, "cut")
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted erase: %d, %v; want context.Canceled", n, err)
	}
	// The server may still be finishing the batch the client gave up on.
	waitIdle(t, s)
	left := count(t, s, "cut")
	// The batch in flight when the context ended may or may not have
	// committed: the count is exact up to that one batch (of 1 here).
	if n < 10 || n+left > total || n+left < total-1 {
		t.Fatalf("interrupted erase reported %d, %d left; want at least 10 and %d (or one less) in all", n, left, total)
	}
	checkIndex(t, s)
	s.eraseBatch.episodes = 0
	rest, err := s.DeleteNamespace(testCtx(t), "cut")
	// The server may commit the abandoned batch (of 1) even after it looked
	// idle: then one fewer is left for the second call.
	if err != nil || (rest != left && rest != left-1) {
		t.Fatalf("second call erased %d, %v; want the %d left (or one less)", rest, err, left)
	}
	if got := count(t, s, "cut"); got != 0 {
		t.Fatalf("%d episodes left", got)
	}
	checkIndex(t, s)
}

// waitIdle waits until no other session of the test database runs a query.
func waitIdle(t testing.TB, s *Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var busy int
		if err := s.pool.QueryRow(testCtx(t), `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still busy", busy)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eraseBenchEnv gates TestErase200k: it writes 200,000 episodes (minutes).
const eraseBenchEnv = "BRAIN_ERASE_BENCH"

// TestErase200k measures erasing a namespace of 200,000 episodes with the
// default batch bounds: the total time, and the slowest single batch
// (which must fit one QUERY_TIMEOUT, 2 s by default, with room).
// BRAIN_ERASE_BENCH=1 go test -run TestErase200k -v ./store/
func TestErase200k(t *testing.T) {
	if os.Getenv(eraseBenchEnv) == "" {
		t.Skipf("set %s=1 to write and erase 200,000 episodes", eraseBenchEnv)
	}
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	const total = 200_000
	start := time.Now()
	fill(t, s, "erase", total, 200)
	t.Logf("wrote %d episodes of 200 bytes in %s", total, time.Since(start).Round(time.Second))
	var erased int64
	var slowest time.Duration
	batches := 0
	start = time.Now()
	for {
		bs := time.Now()
		n, err := s.DeleteNamespaceBatch(ctx, "erase")
		if err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(bs))
		if n == 0 {
			break
		}
		erased += n
		batches++
	}
	took := time.Since(start)
	t.Logf("erased %d episodes in %s: %d batches, slowest %s", erased, took.Round(time.Millisecond), batches, slowest.Round(time.Millisecond))
	if erased != total {
		t.Fatalf("erased %d, want %d", erased, total)
	}
	if slowest > 2*time.Second {
		t.Errorf("slowest batch %s does not fit QUERY_TIMEOUT's default 2 s", slowest)
	}
	if os.Getenv(eraseBenchEnv) != "compare" {
		return
	}
	// What one statement (the erase before batches) costs on the same data.
	fill(t, s, "one", total, 200)
	start = time.Now()
	n, err := s.deleteWhere(ctx, Purge{Namespace: "one"}, `DELETE FROM episodes WHERE namespace = $1`, "one")
	t.Logf("one statement: %d episodes in %s (%v)", n, time.Since(start).Round(time.Millisecond), err)
}
