package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PurgeChannel is the notification channel on which every transaction that
// deletes episodes announces what it deleted, so that every memory replica
// drops the cached recall answers that could hold it. The notification is
// part of the deleting transaction: PostgreSQL delivers it if and only if
// the delete commits.
const PurgeChannel = "brain_memory_purge"

// Purge is one announced delete: one episode (ID set) or a whole namespace.
type Purge struct {
	Namespace string `json:"ns"`
	ID        string `json:"id,omitempty"`
}

// notifyPurgeSQL is queued in every deleting transaction. The payload is
// far below PostgreSQL's 8000-byte limit (a namespace is at most
// episode.MaxNamespaceBytes, an id 36 bytes).
const notifyPurgeSQL = `SELECT pg_notify('` + PurgeChannel + `', $1)`

func (p Purge) payload() string {
	b, _ := json.Marshal(p) // two strings: cannot fail
	return string(b)
}

// ParsePurge decodes a notification payload of PurgeChannel.
func ParsePurge(payload string) (Purge, error) {
	var p Purge
	if err := json.Unmarshal([]byte(payload), &p); err != nil {
		return Purge{}, fmt.Errorf("purge notification %q: %w", payload, err)
	}
	if p.Namespace == "" {
		return Purge{}, fmt.Errorf("purge notification %q: no namespace", payload)
	}
	return p, nil
}

// Listener receives what ListenPurges hears. Both callbacks are called
// from ListenPurges' goroutine, one at a time.
type Listener struct {
	// Listening is called with true each time LISTEN took effect (what was
	// announced before went unheard: drop everything cached), and with
	// false and the cause when the connection was lost.
	Listening func(ok bool, err error)
	// Purge is called for every announced delete; with the zero Purge
	// (drop everything) for a notification it cannot read.
	Purge func(Purge)
	// Retry is the pause between connection attempts; Idle the time without
	// notifications after which the connection is checked (so a connection
	// a firewall dropped silently is found and replaced); Timeout bounds
	// LISTEN, each check and the close.
	Retry, Idle, Timeout time.Duration
}

// ListenPurges listens on PurgeChannel over a connection of its own (taken
// from the pool and detached from it, so it holds one connection beyond
// the pool's maximum) until ctx ends, reconnecting after every loss.
func (s *Store) ListenPurges(ctx context.Context, l Listener) {
	for {
		listened, err := s.listenOnce(ctx, l)
		if ctx.Err() != nil {
			return
		}
		if listened {
			l.Listening(false, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(l.Retry):
		}
	}
}

// listenOnce runs one connection until it fails; listened says whether
// LISTEN took effect on it.
func (s *Store) listenOnce(ctx context.Context, l Listener) (listened bool, err error) {
	actx, cancel := context.WithTimeout(ctx, l.Timeout)
	defer cancel()
	pc, err := s.pool.Acquire(actx)
	if err != nil {
		return false, fmt.Errorf("listen for purges: acquire connection: %w", err)
	}
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.Timeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(actx, "LISTEN "+pgx.Identifier{PurgeChannel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen for purges: %w", err)
	}
	l.Listening(true, nil)
	for {
		wctx, cancel := context.WithTimeout(ctx, l.Idle)
		n, err := conn.WaitForNotification(wctx)
		idle := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case idle:
			pctx, cancel := context.WithTimeout(ctx, l.Timeout)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("listen for purges: connection check: %w", err)
			}
		case err != nil:
			return true, fmt.Errorf("listen for purges: %w", err)
		default:
			p, err := ParsePurge(n.Payload)
			if err != nil {
				p = Purge{} // unreadable: dropping everything is the safe reading
			}
			l.Purge(p)
		}
	}
}
