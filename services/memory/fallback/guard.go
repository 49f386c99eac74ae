package fallback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrUnavailable means PostgreSQL could not serve the call: the breaker is
// open, the call ran out of its time, or the connection failed. The caller
// may retry (writes with the same ids).
var ErrUnavailable = errors.New("postgres unavailable")

// unavailableError is ErrUnavailable with the reason; it keeps the cause in
// the chain (errors.Is sees both) without printing it twice.
type unavailableError struct {
	reason string
	cause  error
}

func (e *unavailableError) Error() string   { return ErrUnavailable.Error() + ": " + e.reason }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// Guard runs calls to PostgreSQL under the breaker and a capped deadline.
type Guard struct {
	breaker *Breaker
}

// NewGuard returns a guard over breaker.
func NewGuard(b *Breaker) *Guard { return &Guard{breaker: b} }

// Breaker is the guard's breaker.
func (g *Guard) Breaker() *Breaker { return g.breaker }

// ErrCallerDeadline means the caller's own deadline, not PostgreSQL, ended
// the call: the time it left (90% of its remaining time, shorter than the
// configured limit) ran out. PostgreSQL is not known to be at fault, so it
// does not count toward the breaker. It also matches ErrUnavailable, since
// no answer could be had in the time given and callers fall back as they
// would for an outage; its text says whose deadline it was.
var ErrCallerDeadline = errors.New("the caller's deadline")

type callerDeadlineError struct {
	budget time.Duration
	cause  error
}

func (e *callerDeadlineError) Error() string {
	// Both facts, since either may be news: the caller's deadline bounded
	// the call, and postgres did not answer within what it left.
	return fmt.Sprintf("%v left postgres only %s and postgres did not answer within it (not counted as a postgres failure)",
		ErrCallerDeadline, e.budget.Round(100*time.Microsecond))
}

func (e *callerDeadlineError) Unwrap() []error {
	return []error{ErrCallerDeadline, ErrUnavailable, context.DeadlineExceeded, e.cause}
}

// Do runs fn with a deadline of at most limit (and never past the caller's,
// keeping a tenth of the caller's remaining time in reserve so a fallback
// answer still arrives in time). Failures that say PostgreSQL is unusable
// count against the breaker and come back wrapping ErrUnavailable; other
// errors (not found, bad input) mean PostgreSQL answered, and pass through.
// When the time the caller's deadline left ran out first, the error wraps
// ErrCallerDeadline and counts for nothing. When the caller's own context
// ended, its error is returned (with fn's in the chain).
func (g *Guard) Do(ctx context.Context, limit time.Duration, fn func(context.Context) error) error {
	if ok, reason := g.breaker.Allow(); !ok {
		return fmt.Errorf("%w: circuit open after repeated failures (%s)", ErrUnavailable, reason)
	}
	budget, capped := budgetOf(ctx, limit)
	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	call := &callState{}
	err := fn(context.WithValue(cctx, callKey{}, call))
	switch {
	case err == nil:
		g.breaker.Success()
		return nil
	case ctx.Err() != nil:
		// The caller gave up; not the database's fault. err stays in the
		// chain: a write's outcome-unknown mark must reach the edge.
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	case !unusable(err):
		g.breaker.Success()
		return err
	case capped && cctx.Err() != nil:
		// Our cap, derived from the caller's deadline, expired: a healthy
		// PostgreSQL that needs more than the caller left is no outage.
		return &callerDeadlineError{budget: budget, cause: err}
	case cctx.Err() != nil && call.poolBusy.Load():
		// The time ran out waiting for one of our own busy connections:
		// overload, not an outage. The probe, on a connection of its own,
		// still tells whether PostgreSQL answers.
		return &unavailableError{cause: err, reason: fmt.Sprintf(
			"all %d connections to postgres stayed busy for %s (overloaded, not down; not counted as a postgres failure)",
			call.poolMax.Load(), budget.Round(time.Millisecond))}
	default:
		reason := describe(err, cctx, budget)
		g.breaker.Failure(reason)
		return &unavailableError{reason: reason, cause: err}
	}
}

// Budget is the time a call may spend in PostgreSQL: limit, or 90% of the
// caller's remaining time when that is shorter.
func Budget(ctx context.Context, limit time.Duration) time.Duration {
	d, _ := budgetOf(ctx, limit)
	return d
}

// budgetOf is Budget, and whether the caller's deadline (not limit) set it.
func budgetOf(ctx context.Context, limit time.Duration) (time.Duration, bool) {
	capped := false
	if dl, ok := ctx.Deadline(); ok {
		if rem := time.Until(dl); rem-rem/10 < limit {
			limit, capped = rem-rem/10, true
		}
	}
	if limit <= 0 {
		limit = time.Millisecond
	}
	return limit, capped
}

// callState is what the pool tracer learns about one guarded call.
type callState struct {
	poolBusy atomic.Bool  // an acquire ended by the deadline while every connection was in use
	poolMax  atomic.Int32 // the pool's size then
}

type callKey struct{}

// PoolTracer tells the guard when a call's time ran out waiting for a free
// connection of a full pool. Set it as the pool's ConnConfig.Tracer (pgxpool
// finds the acquire hooks there); its query hooks do nothing.
type PoolTracer struct{}

// TraceQueryStart does nothing.
func (PoolTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

// TraceQueryEnd does nothing.
func (PoolTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceAcquireStart does nothing.
func (PoolTracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return ctx
}

// TraceAcquireEnd marks the call when its acquire ended by its deadline with
// every connection in use. An acquire that timed out with room in the pool
// was connecting, and a connection PostgreSQL does not accept in time is
// its failure: that is not marked.
func (PoolTracer) TraceAcquireEnd(ctx context.Context, pool *pgxpool.Pool, d pgxpool.TraceAcquireEndData) {
	call, _ := ctx.Value(callKey{}).(*callState)
	if call == nil || d.Err == nil || ctx.Err() == nil {
		return
	}
	if st := pool.Stat(); st.AcquiredConns() >= st.MaxConns() {
		call.poolMax.Store(st.MaxConns())
		call.poolBusy.Store(true)
	}
}

// unusable reports whether err says PostgreSQL could not be used, as opposed
// to an answer it gave.
func unusable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || pgconn.Timeout(err) {
		return true
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources
			"57": // operator intervention: shutdown, statement timeout (57014)
			return true
		}
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) || connLost(err) {
		return true
	}
	// pgx reports a connection that died mid-call without a typed error;
	// SafeToRetry marks failures before anything was sent.
	return pgconn.SafeToRetry(err) || errors.Is(err, net.ErrClosed) || isConnClosed(err)
}

// connLost reports a connection that ended under a call: pgx returns the
// reader's io.ErrUnexpectedEOF (or io.EOF) as it is when the server dies or
// restarts mid-message.
func connLost(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func isConnClosed(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "conn closed" || e.Error() == "closed pool" {
			return true
		}
	}
	return false
}

func describe(err error, cctx context.Context, budget time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(cctx.Err(), context.DeadlineExceeded) || pgconn.Timeout(err) {
		return fmt.Sprintf("postgres did not answer within %s", budget)
	}
	if connLost(err) || isConnClosed(err) {
		return fmt.Sprintf("connection to postgres lost (%v)", err)
	}
	return err.Error()
}
