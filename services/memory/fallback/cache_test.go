package fallback

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/recall"
)

func answerOf(ns string, ids ...string) []recall.Result {
	out := make([]recall.Result, len(ids))
	for i, id := range ids {
		out[i] = recall.Result{Episode: episode.Episode{ID: id, Namespace: ns}}
	}
	return out
}

// otherStripe returns a namespace that does not share ns's purge stripe.
func otherStripe(c *Cache, ns string) string {
	for i := 0; ; i++ {
		if o := fmt.Sprintf("other-%d", i); c.stripe(o) != c.stripe(ns) {
			return o
		}
	}
}

// TestCachePurge: every answer that could hold a deleted episode is gone
// after the delete's purge, and no answer read before it is stored after it.
func TestCachePurge(t *testing.T) {
	const hold = 5 * time.Second
	tests := []struct {
		name string
		// run acts on a cache holding "a1" (ns a: e1, e2), "a2" (ns a: e3)
		// and "b1" (ns b: e1), and returns the keys of the answers to store
		// through put, with a ticket taken by early (before run's actions).
		run func(c *Cache, clk *clock, early Ticket, put func(Ticket, string)) (present, absent []string)
	}{
		{"namespace purge drops all of the namespace and nothing else", func(c *Cache, _ *clock, _ Ticket, _ func(Ticket, string)) ([]string, []string) {
			if n := c.PurgeNamespace("a", 0); n != 2 {
				t.Errorf("PurgeNamespace dropped %d answers, want 2", n)
			}
			return []string{"b1"}, []string{"a1", "a2"}
		}},
		{"episode purge drops the answers holding the id, in any case", func(c *Cache, _ *clock, _ Ticket, _ func(Ticket, string)) ([]string, []string) {
			if n := c.PurgeEpisode("a", "E1", 0); n != 1 {
				t.Errorf("PurgeEpisode dropped %d answers, want 1", n)
			}
			// b1 holds an episode of the same id in another namespace.
			return []string{"a2", "b1"}, []string{"a1"}
		}},
		{"purging an empty namespace is harmless", func(c *Cache, _ *clock, _ Ticket, _ func(Ticket, string)) ([]string, []string) {
			if n := c.PurgeNamespace("nobody", 0); n != 0 {
				t.Errorf("dropped %d", n)
			}
			return []string{"a1", "a2", "b1"}, nil
		}},
		{"a recall that read before the delete cannot store after it", func(c *Cache, _ *clock, early Ticket, put func(Ticket, string)) ([]string, []string) {
			c.PurgeNamespace("a", 0)
			put(early, "a1") // the slow recall comes back with the erased rows
			return []string{"b1"}, []string{"a1"}
		}},
		{"an episode purge also stales the namespace's tickets", func(c *Cache, _ *clock, early Ticket, put func(Ticket, string)) ([]string, []string) {
			c.PurgeEpisode("a", "e3", 0)
			put(early, "a3")
			return []string{"a1", "b1"}, []string{"a2", "a3"}
		}},
		{"a recall that starts after the delete stores", func(c *Cache, _ *clock, _ Ticket, put func(Ticket, string)) ([]string, []string) {
			c.PurgeNamespace("a", 0)
			put(c.Ticket("a"), "a1")
			return []string{"a1", "b1"}, []string{"a2"}
		}},
		{"after a failed delete nothing of the namespace is stored during the hold", func(c *Cache, clk *clock, _ Ticket, put func(Ticket, string)) ([]string, []string) {
			c.PurgeNamespace("a", hold)
			clk.advance(hold - time.Millisecond)
			put(c.Ticket("a"), "a1")
			b := otherStripe(c, "a")
			put(c.Ticket(b), "x1") // other namespaces store as usual
			return []string{"x1", "b1"}, []string{"a1", "a2"}
		}},
		{"the hold ends", func(c *Cache, clk *clock, _ Ticket, put func(Ticket, string)) ([]string, []string) {
			c.PurgeNamespace("a", hold)
			clk.advance(hold)
			put(c.Ticket("a"), "a1")
			return []string{"a1", "b1"}, []string{"a2"}
		}},
		{"a shorter hold does not cut a longer one", func(c *Cache, clk *clock, _ Ticket, put func(Ticket, string)) ([]string, []string) {
			c.PurgeNamespace("a", hold)
			c.PurgeEpisode("a", "e9", 0)
			clk.advance(time.Second)
			put(c.Ticket("a"), "a1")
			return []string{"b1"}, []string{"a1", "a2"}
		}},
		{"purging everything drops all and stales every ticket", func(c *Cache, _ *clock, early Ticket, put func(Ticket, string)) ([]string, []string) {
			b := c.Ticket("b")
			if n := c.PurgeAll(); n != 3 {
				t.Errorf("PurgeAll dropped %d, want 3", n)
			}
			put(early, "a1")
			put(b, "b1")
			return nil, []string{"a1", "a2", "b1"}
		}},
		{"suspended: what is cached is served, nothing is stored", func(c *Cache, _ *clock, _ Ticket, put func(Ticket, string)) ([]string, []string) {
			c.Suspend()
			put(c.Ticket("x"), "x1")
			return []string{"a1", "a2", "b1"}, []string{"x1"}
		}},
		{"resumed: everything dropped, stored again", func(c *Cache, _ *clock, early Ticket, put func(Ticket, string)) ([]string, []string) {
			c.Suspend()
			if n := c.Resume(); n != 3 {
				t.Errorf("Resume dropped %d, want 3", n)
			}
			put(early, "a3") // read before the feed was heard again
			put(c.Ticket("x"), "x1")
			return []string{"x1"}, []string{"a1", "a2", "a3", "b1"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			c := NewCache(100, 1<<20, time.Hour, clk.now)
			answers := map[string][]recall.Result{
				"a1": answerOf("a", "e1", "e2"), "a2": answerOf("a", "e3"), "a3": answerOf("a", "e4"),
				"b1": answerOf("b", "e1"), "x1": answerOf("x", "e5"),
			}
			early := c.Ticket("a")
			for _, k := range []string{"a1", "a2", "b1"} {
				if !c.Put(c.Ticket(answers[k][0].Episode.Namespace), k, answers[k]) {
					t.Fatalf("Put(%s) refused", k)
				}
			}
			put := func(tk Ticket, k string) { c.Put(tk, k, answers[k]) }
			present, absent := tt.run(c, clk, early, put)
			for _, k := range present {
				if _, _, ok := c.Get(k); !ok {
					t.Errorf("%s missing", k)
				}
			}
			for _, k := range absent {
				if _, _, ok := c.Get(k); ok {
					t.Errorf("%s served", k)
				}
			}
			if c.Len() != len(present) {
				t.Errorf("Len %d, want %d", c.Len(), len(present))
			}
		})
	}
}

// TestCachePurgeBookkeeping: purges keep the byte count and the namespace
// index exact.
func TestCachePurgeBookkeeping(t *testing.T) {
	c := NewCache(100, 1<<20, time.Hour, newClock().now)
	for i := 0; i < 10; i++ {
		ns := fmt.Sprintf("ns%d", i%3)
		c.Put(c.Ticket(ns), fmt.Sprint(i), answerOf(ns, fmt.Sprintf("e%d", i)))
	}
	for i := 0; i < 3; i++ {
		c.PurgeNamespace(fmt.Sprintf("ns%d", i), 0)
	}
	if c.Len() != 0 || c.Bytes() != 0 || len(c.byNS) != 0 {
		t.Fatalf("after purging all: Len %d Bytes %d namespaces %d", c.Len(), c.Bytes(), len(c.byNS))
	}
}

// blockingStore answers one recall with rows it read "before" a delete,
// returning them only when released; then it fails like a dead database.
type blockingStore struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	calls   int
}

func (s *blockingStore) Recall(ctx context.Context, q recall.Query) ([]recall.Result, error) {
	s.mu.Lock()
	s.calls++
	first := s.calls == 1
	s.mu.Unlock()
	if !first {
		return nil, fmt.Errorf("recall: %w", context.DeadlineExceeded)
	}
	close(s.entered)
	<-s.release
	return answerOf(q.Namespace, "deleted-episode"), nil
}

// TestRecallerDeleteRace: a recall that read PostgreSQL before a delete and
// finishes after it must not leave the deleted episode in the cache.
func TestRecallerDeleteRace(t *testing.T) {
	clk := newClock()
	cache := NewCache(10, 1<<20, time.Hour, clk.now)
	st := &blockingStore{entered: make(chan struct{}), release: make(chan struct{})}
	r := NewRecaller(NewGuard(NewBreaker(100, 0, clk.now, nil)), st, cache, 5*time.Second, clk.now, nil)
	q := recall.Query{Namespace: "ns", Text: "harbour"}
	done := make(chan Answer, 1)
	go func() {
		a, err := r.Recall(context.Background(), q)
		if err != nil {
			t.Error(err)
		}
		done <- a
	}()
	<-st.entered
	cache.PurgeNamespace("ns", 0) // the delete commits and purges meanwhile
	close(st.release)
	if a := <-done; a.Source != SourcePostgres {
		t.Fatalf("first recall %+v", a)
	}
	a, err := r.Recall(context.Background(), q) // PostgreSQL now fails
	if err != nil {
		t.Fatal(err)
	}
	if a.Source != SourceNone || slices.ContainsFunc(a.Results, func(r recall.Result) bool { return r.Episode.ID == "deleted-episode" }) {
		t.Fatalf("after the delete the cache served %+v", a)
	}
	if !strings.Contains(a.Reason, "no cached answer") {
		t.Fatalf("reason %q", a.Reason)
	}
}

// TestRecallerCacheIgnoresClock: a caller that asks "as of now" on every
// call (the orchestrator) is served the cached answer during an outage,
// re-scored at its own as_of.
func TestRecallerCacheIgnoresClock(t *testing.T) {
	clk := newClock()
	store := &fakeStore{}
	r := NewRecaller(NewGuard(NewBreaker(100, 0, clk.now, nil)), store, NewCache(10, 1<<20, time.Hour, clk.now), time.Second, clk.now, nil)
	first := clk.now()
	q := recall.Query{Namespace: "ns", Text: "cats", AsOf: first, Limit: 50}
	if a, err := r.Recall(context.Background(), q); err != nil || a.Source != SourcePostgres {
		t.Fatalf("healthy: %+v %v", a, err)
	}
	store.set(&pgconn.PgError{Code: "57P01"}, false)
	clk.advance(time.Second)
	q.AsOf = clk.now()
	a, err := r.Recall(context.Background(), q)
	if err != nil || a.Source != SourceCache || len(a.Results) != 1 || a.Results[0].Episode.ID != "e1" {
		t.Fatalf("the same question a second later during an outage: %+v %v", a, err)
	}
	// fakeStore's episode has a zero CreatedAt: recency is re-computed at
	// the new as_of, not copied.
	want := recall.Recency(q.AsOf.Sub(time.Time{}), recall.DefaultHalfLife)
	if got := a.Results[0].Scores.Recency; got != want || !a.AsOf.Equal(q.AsOf) {
		t.Fatalf("recency %v as of %s, want %v as of %s", got, a.AsOf, want, q.AsOf)
	}
}
