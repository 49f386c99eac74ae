package fallback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/brainhq/brain/services/memory/recall"
)

// Source says where an answer came from.
type Source int

const (
	// SourcePostgres: fresh from PostgreSQL.
	SourcePostgres Source = iota + 1
	// SourceCache: a recent identical recall, served degraded.
	SourceCache
	// SourceNone: nothing could be had, served degraded and empty.
	SourceNone
)

// String names the source for logs and metrics.
func (s Source) String() string {
	switch s {
	case SourcePostgres:
		return "postgres"
	case SourceCache:
		return "cache"
	case SourceNone:
		return "none"
	}
	return "unknown"
}

// Answer is a recall answer and how far to trust it.
type Answer struct {
	Results []recall.Result
	Source  Source
	// Reason is empty for SourcePostgres, else why PostgreSQL was not used.
	Reason string
	// CacheAge is the age of a SourceCache answer.
	CacheAge time.Duration
	// AsOf is the "now" recency was computed for.
	AsOf time.Time
}

// Degraded reports whether the answer did not come fresh from PostgreSQL.
func (a Answer) Degraded() bool { return a.Source != SourcePostgres }

// RecallStore is the part of the store recall needs.
type RecallStore interface {
	Recall(ctx context.Context, q recall.Query) ([]recall.Result, error)
}

// Recaller answers recalls in the design's order (docs/design.md): PostgreSQL, cache, nothing.
type Recaller struct {
	guard   *Guard
	store   RecallStore
	cache   *Cache
	timeout time.Duration
	now     func() time.Time
	observe func(Source)
}

// NewRecaller returns a Recaller. timeout caps the time one recall may spend
// in PostgreSQL; observe (may be nil) is told every answer's source.
func NewRecaller(g *Guard, s RecallStore, c *Cache, timeout time.Duration, now func() time.Time, observe func(Source)) *Recaller {
	if observe == nil {
		observe = func(Source) {}
	}
	return &Recaller{guard: g, store: s, cache: c, timeout: timeout, now: now, observe: observe}
}

// Recall always answers unless the caller's own context ended first.
func (r *Recaller) Recall(ctx context.Context, q recall.Query) (Answer, error) {
	if q.AsOf.IsZero() {
		q.AsOf = r.now()
	}
	key := q.Key() // the question, not the clock (see recall.Query.Key)
	// Taken before PostgreSQL is read: a delete in between keeps this
	// answer out of the cache.
	ticket := r.cache.Ticket(q.Namespace)
	var results []recall.Result
	err := r.guard.Do(ctx, r.timeout, func(ctx context.Context) error {
		var err error
		results, err = r.store.Recall(ctx, q)
		return err
	})
	if err == nil {
		if results == nil {
			results = []recall.Result{}
		}
		r.cache.Put(ticket, key, results)
		r.observe(SourcePostgres)
		return Answer{Results: results, Source: SourcePostgres, AsOf: q.AsOf}, nil
	}
	if ctx.Err() != nil {
		return Answer{}, ctx.Err()
	}
	reason := err.Error()
	if !errors.Is(err, ErrUnavailable) {
		reason = fmt.Sprintf("postgres error: %v", err)
	}
	if cached, age, ok := r.cache.Get(key); ok {
		r.observe(SourceCache)
		return Answer{Results: recall.Rescore(cached, q), Source: SourceCache, CacheAge: age, AsOf: q.AsOf,
			Reason: fmt.Sprintf("%s; serving a cached answer from %s ago, recency re-scored at as_of", reason, age.Round(time.Millisecond))}, nil
	}
	r.observe(SourceNone)
	return Answer{Results: []recall.Result{}, Source: SourceNone, AsOf: q.AsOf,
		Reason: reason + "; no cached answer for this query"}, nil
}
