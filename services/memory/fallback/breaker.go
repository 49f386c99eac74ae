// Package fallback keeps the memory service answering when PostgreSQL is
// slow or gone, and honest about it. Calls go to PostgreSQL under a capped
// deadline; a circuit breaker opens after repeated failures so a dead
// database costs microseconds instead of timeouts; the background health
// probe closes it. Recall then falls back to a cache of recent identical
// recalls (flagged, with its age) and finally to nothing, never to rows that
// look like memories. Writes are never faked.
package fallback

import (
	"sync"
	"time"
)

// Breaker is a circuit breaker driven by call outcomes (it opens) and by the
// background probe (it closes, or opens early). It has no half-open trial
// calls: the probe is the trial, so no user request pays for testing a dead
// database.
type Breaker struct {
	threshold int
	minSpan   time.Duration
	now       func() time.Time

	mu           sync.Mutex
	failures     int
	firstFailure time.Time
	open         bool
	since        time.Time
	reason       string
	onChange     func(open bool)
}

// NewBreaker returns a closed breaker that opens after threshold consecutive
// failures spanning at least minSpan. The span keeps one stall from opening
// it: with many calls in flight, a pause of a few hundred milliseconds fails
// them all at once, though PostgreSQL is fine. A database that is really
// gone keeps failing calls past minSpan (and the probe trips the breaker
// within its interval plus timeout anyway). onChange (may be nil) is called
// on every flip, under the breaker's lock, so flips are reported in the
// order they happen and the last report is the state (a request's "open"
// landing after the probe's "closed" once left the gauge at 1). It must be
// quick and must not call the breaker.
func NewBreaker(threshold int, minSpan time.Duration, now func() time.Time, onChange func(open bool)) *Breaker {
	if threshold < 1 {
		threshold = 1
	}
	return &Breaker{threshold: threshold, minSpan: minSpan, now: now, since: now(), onChange: onChange}
}

// Allow reports whether a call may go to PostgreSQL, and when not, why.
func (b *Breaker) Allow() (bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return false, b.reason
	}
	return true, ""
}

// Success records a call that reached PostgreSQL.
func (b *Breaker) Success() {
	b.mu.Lock()
	b.failures = 0
	b.mu.Unlock()
}

// Failure records a failed call; the threshold-th in a row, minSpan or more
// after the first of the run, opens the breaker.
func (b *Breaker) Failure(reason string) {
	now := b.now()
	b.mu.Lock()
	if b.failures == 0 {
		b.firstFailure = now
	}
	b.failures++
	if !b.open && b.failures >= b.threshold && now.Sub(b.firstFailure) >= b.minSpan {
		b.open, b.since, b.reason = true, now, reason
		b.changed()
	}
	b.mu.Unlock()
}

// changed reports a flip; b.mu is held.
func (b *Breaker) changed() {
	if b.onChange != nil {
		b.onChange(b.open)
	}
}

// Trip opens the breaker at once (the probe saw PostgreSQL fail).
func (b *Breaker) Trip(reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reason = reason
	if !b.open {
		b.open, b.since = true, b.now()
		b.changed()
	}
}

// Reset closes the breaker (the probe saw PostgreSQL healthy).
func (b *Breaker) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	flip := b.open
	b.open, b.failures, b.reason = false, 0, ""
	if flip {
		b.since = b.now()
		b.changed()
	}
}

// State reports whether the breaker is open and since when.
func (b *Breaker) State() (open bool, since time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.since
}
