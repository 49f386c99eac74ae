package fallback

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// healthySlow is a healthy PostgreSQL whose answer takes d.
func healthySlow(d time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return fmt.Errorf("recall: %w", ctx.Err())
		}
	}
}

// TestGuardCallerDeadline: when the time the caller's deadline left runs
// out first, the error says it was the caller's deadline, comes back while
// the caller can still use a fallback, and a burst of such calls leaves the
// breaker closed; the configured limit running out is still PostgreSQL's
// failure.
func TestGuardCallerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGuard(NewBreaker(1, 0, time.Now, nil)) // opens at the first failure
		var wg sync.WaitGroup
		errs := make([]error, 50)
		for i := range errs {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
				defer cancel()
				start := time.Now()
				errs[i] = g.Do(ctx, 300*time.Millisecond, healthySlow(50*time.Millisecond))
				if took := time.Since(start); took != 9*time.Millisecond || ctx.Err() != nil {
					t.Errorf("returned after %s (caller's context %v), want at 9ms with time left for a fallback", took, ctx.Err())
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if !errors.Is(err, ErrCallerDeadline) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err %v, want ErrCallerDeadline", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "caller's deadline") || !strings.Contains(msg, "9ms") ||
				strings.Contains(msg, "postgres unavailable") || strings.Contains(msg, "circuit") {
				t.Fatalf("reason %q: must say it was the caller's deadline and not blame postgres", msg)
			}
		}
		if ok, reason := g.Breaker().Allow(); !ok {
			t.Fatalf("a burst of calls cut by their callers' deadlines opened the breaker: %s", reason)
		}

		// The configured limit is shorter than the caller's time: PostgreSQL
		// did not answer within it, which is its failure.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := g.Do(ctx, 20*time.Millisecond, healthySlow(50*time.Millisecond))
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCallerDeadline) || !strings.Contains(err.Error(), "did not answer within 20ms") {
			t.Fatalf("limit expired: %v, want ErrUnavailable blaming postgres", err)
		}
		if ok, _ := g.Breaker().Allow(); ok {
			t.Fatal("the configured limit expiring did not count toward the breaker")
		}
	})
}

// TestGuardCallerDeadlineKeepsAnswers: an answer PostgreSQL gave just as the
// caller's time ran out is still an answer.
func TestGuardCallerDeadlineKeepsAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGuard(NewBreaker(1, 0, time.Now, nil))
		notFound := errors.New("episode not found")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		err := g.Do(ctx, time.Second, func(ctx context.Context) error {
			<-ctx.Done()
			return notFound
		})
		if !errors.Is(err, notFound) || errors.Is(err, ErrCallerDeadline) {
			t.Fatalf("err %v, want the answer", err)
		}
	})
}
