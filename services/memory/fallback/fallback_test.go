package fallback

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/recall"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestBreaker(t *testing.T) {
	c := newClock()
	var flips []bool
	b := NewBreaker(3, 0, c.now, func(open bool) { flips = append(flips, open) })
	for i := 0; i < 2; i++ {
		b.Failure("boom")
	}
	if ok, _ := b.Allow(); !ok {
		t.Fatal("opened before the threshold")
	}
	b.Success() // resets the run of failures
	for i := 0; i < 2; i++ {
		b.Failure("boom")
	}
	if ok, _ := b.Allow(); !ok {
		t.Fatal("failures before a success counted")
	}
	b.Failure("boom 3")
	if ok, reason := b.Allow(); ok || reason != "boom 3" {
		t.Fatalf("Allow = %v %q after 3 failures, want closed with reason", ok, reason)
	}
	b.Success() // a stray success does not close it: only the probe does
	if ok, _ := b.Allow(); ok {
		t.Fatal("a call closed the breaker")
	}
	b.Reset()
	if ok, _ := b.Allow(); !ok {
		t.Fatal("Reset did not close")
	}
	b.Trip("probe failed")
	if ok, reason := b.Allow(); ok || reason != "probe failed" {
		t.Fatalf("Trip: %v %q", ok, reason)
	}
	if got := fmt.Sprint(flips); got != "[true false true]" {
		t.Fatalf("flips %s", got)
	}
}

func TestCache(t *testing.T) {
	c := newClock()
	cache := NewCache(2, 1<<20, time.Minute, c.now)
	r := func(id string) []recall.Result { return []recall.Result{{Episode: episode.Episode{ID: id}}} }
	cache.Put(cache.Ticket("ns"), "a", r("1"))
	c.advance(10 * time.Second)
	cache.Put(cache.Ticket("ns"), "b", r("2"))
	if got, age, ok := cache.Get("a"); !ok || got[0].Episode.ID != "1" || age != 10*time.Second {
		t.Fatalf("Get(a) = %v %s %v", got, age, ok)
	}
	cache.Put(cache.Ticket("ns"), "c", r("3")) // evicts the least recently stored: a
	if _, _, ok := cache.Get("a"); ok {
		t.Fatal("a not evicted")
	}
	if cache.Len() != 2 {
		t.Fatalf("Len %d", cache.Len())
	}
	c.advance(2 * time.Minute)
	if _, _, ok := cache.Get("b"); ok {
		t.Fatal("entry older than max age served")
	}
}

func TestBudget(t *testing.T) {
	if got := Budget(context.Background(), 300*time.Millisecond); got != 300*time.Millisecond {
		t.Fatalf("no deadline: %s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if got := Budget(ctx, 300*time.Millisecond); got > 90*time.Millisecond || got < 80*time.Millisecond {
		t.Fatalf("100ms deadline: budget %s, want ~90ms", got)
	}
}

func TestUnusable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{fmt.Errorf("recall: %w", context.DeadlineExceeded), true},
		{&pgconn.PgError{Code: "57P01"}, true},  // admin shutdown
		{&pgconn.PgError{Code: "08006"}, true},  // connection failure
		{&pgconn.PgError{Code: "57014"}, true},  // statement timeout
		{&pgconn.PgError{Code: "42601"}, false}, // syntax error: postgres answered
		{&pgconn.PgError{Code: "22P02"}, false},
		{errors.New("episode not found"), false},
	}
	for _, tt := range tests {
		if got := unusable(tt.err); got != tt.want {
			t.Errorf("unusable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

type fakeStore struct {
	mu    sync.Mutex
	err   error
	block bool
	calls int
}

func (f *fakeStore) Recall(ctx context.Context, q recall.Query) ([]recall.Result, error) {
	f.mu.Lock()
	f.calls++
	err, block := f.err, f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, fmt.Errorf("recall: %w", ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	return []recall.Result{{Episode: episode.Episode{ID: "e1", Namespace: q.Namespace}, Scores: recall.Scores{Total: 1}}}, nil
}

func (f *fakeStore) set(err error, block bool) {
	f.mu.Lock()
	f.err, f.block = err, block
	f.mu.Unlock()
}

func TestRecallerFallsBackInOrder(t *testing.T) {
	c := newClock()
	store := &fakeStore{}
	breaker := NewBreaker(2, 0, c.now, nil)
	var sources []string
	r := NewRecaller(NewGuard(breaker), store, NewCache(10, 1<<20, time.Hour, c.now), 50*time.Millisecond, c.now,
		func(s Source) { sources = append(sources, s.String()) })
	q := recall.Query{Namespace: "ns", Text: "cats"}
	ctx := context.Background()

	a, err := r.Recall(ctx, q)
	if err != nil || a.Source != SourcePostgres || a.Degraded() || len(a.Results) != 1 || !a.AsOf.Equal(c.now()) {
		t.Fatalf("healthy: %+v %v", a, err)
	}

	// PostgreSQL hangs: the recall answers within its cap, from the cache.
	store.set(nil, true)
	c.advance(5 * time.Second)
	start := time.Now()
	a, err = r.Recall(ctx, q)
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("hung recall took %s", took)
	}
	if err != nil || a.Source != SourceCache || !a.Degraded() || a.CacheAge != 5*time.Second ||
		!strings.Contains(a.Reason, "did not answer within") || len(a.Results) != 1 {
		t.Fatalf("hanging postgres: %+v %v", a, err)
	}

	// A query never answered before: nothing, flagged, never made-up rows.
	a, err = r.Recall(ctx, recall.Query{Namespace: "ns", Text: "dogs"})
	if err != nil || a.Source != SourceNone || len(a.Results) != 0 || a.Reason == "" {
		t.Fatalf("uncached: %+v %v", a, err)
	}
	// Two failures opened the breaker: the next call does not touch the store.
	calls := store.calls
	start = time.Now()
	a, err = r.Recall(ctx, q)
	if err != nil || a.Source != SourceCache || !strings.Contains(a.Reason, "circuit open") {
		t.Fatalf("open breaker: %+v %v", a, err)
	}
	if store.calls != calls || time.Since(start) > 10*time.Millisecond {
		t.Fatalf("open breaker still called the store (%d -> %d) or was slow", calls, store.calls)
	}

	// The probe sees PostgreSQL back: fresh answers again.
	store.set(nil, false)
	breaker.Reset()
	if a, err = r.Recall(ctx, q); err != nil || a.Source != SourcePostgres {
		t.Fatalf("recovered: %+v %v", a, err)
	}
	if got := strings.Join(sources, ","); got != "postgres,cache,none,cache,postgres" {
		t.Fatalf("observed sources %s", got)
	}
}

func TestRecallerCallerGone(t *testing.T) {
	c := newClock()
	store := &fakeStore{block: true}
	r := NewRecaller(NewGuard(NewBreaker(1, 0, c.now, nil)), store, NewCache(10, 1<<20, time.Hour, c.now), time.Second, c.now, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Recall(ctx, recall.Query{Namespace: "ns", Text: "x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	// The caller leaving is not the database's fault.
	if ok, _ := r.guard.Breaker().Allow(); !ok {
		t.Fatal("caller cancellation opened the breaker")
	}
}

func TestGuardPassesAnswersThrough(t *testing.T) {
	c := newClock()
	g := NewGuard(NewBreaker(1, 0, c.now, nil))
	notFound := errors.New("episode not found")
	err := g.Do(context.Background(), time.Second, func(context.Context) error { return notFound })
	if !errors.Is(err, notFound) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	if ok, _ := g.Breaker().Allow(); !ok {
		t.Fatal("an answer opened the breaker")
	}
	err = g.Do(context.Background(), time.Second, func(context.Context) error { return &pgconn.PgError{Code: "57P01", Message: "terminating"} })
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("shutdown error %v, want ErrUnavailable", err)
	}
	if ok, _ := g.Breaker().Allow(); ok {
		t.Fatal("breaker (threshold 1) still closed")
	}
}

func TestCacheByteBound(t *testing.T) {
	c := newClock()
	answer := func(id string) []recall.Result {
		return []recall.Result{{Episode: episode.Episode{ID: id, Content: strings.Repeat("x", 1000)}}}
	}
	one := sizeOf("k0", answer("0"))
	cache := NewCache(100, 3*one, time.Hour, c.now) // room for three answers by bytes
	for i := 0; i < 5; i++ {
		cache.Put(cache.Ticket("ns"), fmt.Sprintf("k%d", i), answer(fmt.Sprint(i)))
	}
	if cache.Len() != 3 || cache.Bytes() > 3*one {
		t.Fatalf("Len %d Bytes %d, want 3 entries within %d bytes", cache.Len(), cache.Bytes(), 3*one)
	}
	if _, _, ok := cache.Get("k1"); ok {
		t.Fatal("oldest entries not evicted by the byte bound")
	}
	if _, _, ok := cache.Get("k4"); !ok {
		t.Fatal("newest entry missing")
	}
	cache.Put(cache.Ticket("ns"), "k4", answer("4")) // replacing an entry does not double count it
	if cache.Bytes() > 3*one || cache.Len() != 3 {
		t.Fatalf("after replace: Len %d Bytes %d", cache.Len(), cache.Bytes())
	}
	huge := []recall.Result{{Episode: episode.Episode{Content: strings.Repeat("x", 4*one)}}}
	cache.Put(cache.Ticket("ns"), "huge", huge)
	if _, _, ok := cache.Get("huge"); ok || cache.Len() != 3 {
		t.Fatal("an answer larger than the bound was stored")
	}
}

// TestBreakerMinSpan: failures that all land at once (one stall failing
// every call in flight) do not open the breaker; failures that go on for
// the span do.
func TestBreakerMinSpan(t *testing.T) {
	c := newClock()
	b := NewBreaker(3, 500*time.Millisecond, c.now, nil)
	for i := 0; i < 8; i++ { // eight calls in flight fail together
		b.Failure("stall")
	}
	if ok, _ := b.Allow(); !ok {
		t.Fatal("a burst of simultaneous failures opened the breaker")
	}
	b.Success() // the stall passed
	b.Failure("timeout")
	c.advance(300 * time.Millisecond)
	b.Failure("timeout")
	b.Failure("timeout")
	if ok, _ := b.Allow(); !ok {
		t.Fatal("opened before the span")
	}
	c.advance(200 * time.Millisecond)
	b.Failure("timeout")
	if ok, reason := b.Allow(); ok || reason != "timeout" {
		t.Fatalf("not open after failures spanning 500ms: %v %q", ok, reason)
	}
}
