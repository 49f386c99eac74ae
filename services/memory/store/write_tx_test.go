package store

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestCommitRefused: only a COMMIT that PostgreSQL answered with an ERROR is
// known to be rolled back; everything else
// (FATAL from a server shutting down, a lost connection, a deadline after
// the send) leaves the outcome unknown. The refusals are produced by a real
// server.
func TestCommitRefused(t *testing.T) {
	ctx := testCtx(t)
	_, pool := newStore(t)
	begin := func() pgx.Tx {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
		return tx
	}

	tx := begin() // a deferred constraint fails at COMMIT: ERROR, rolled back
	for _, sql := range []string{
		"CREATE TEMP TABLE d (a int UNIQUE DEFERRABLE INITIALLY DEFERRED)",
		"INSERT INTO d VALUES (1), (1)",
	} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	deferredErr := tx.Commit(ctx)

	tx = begin() // a failed statement: COMMIT answers ROLLBACK
	_, _ = tx.Exec(ctx, "SELECT 1/0")
	failedTxErr := tx.Commit(ctx)

	tx = begin() // the connection is closed
	_ = tx.Conn().Close(ctx)
	notSentErr := tx.Commit(ctx)

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"deferred unique violation at commit", deferredErr, true},
		{"commit of a failed transaction", failedTxErr, true},
		// pgx says "conn closed" (and SafeToRetry) both before the send and
		// when the connection closed while COMMIT awaited its answer; Write
		// checks for a closed connection before sending instead.
		{"conn closed", notSentErr, false},
		{"FATAL: server shutting down", &pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01"}, false},
		{"connection lost after the send", fmt.Errorf("commit: %w", io.ErrUnexpectedEOF), false},
		{"deadline after the send", fmt.Errorf("timeout: %w", context.DeadlineExceeded), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error produced")
			}
			if got := commitRefused(tt.err); got != tt.want {
				t.Errorf("commitRefused(%T %v) = %v, want %v", tt.err, tt.err, got, tt.want)
			}
		})
	}
}
