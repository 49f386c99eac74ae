package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/brainhq/brain/services/memory/episode"
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

// holdProxy forwards TCP between the store and PostgreSQL until a chunk
// from the client contains marker; then it holds traffic in both directions
// until release, as a paused server would, and refuses new connections. With afterMarker the marked chunk
// itself reaches PostgreSQL first (only the answer is held).
type holdProxy struct {
	ln          net.Listener
	target      string
	marker      []byte
	afterMarker bool
	armed       atomic.Bool   // the marker counts only once armed
	held        chan struct{} // closed when the marker was seen
	release     chan struct{}
	heldOnce    sync.Once
	wg          sync.WaitGroup
}

func newHoldProxy(t *testing.T, target, marker string, afterMarker bool) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target, marker: []byte(marker), afterMarker: afterMarker,
		held: make(chan struct{}), release: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.holding() {
				// pgx's cancel request for the stalled statement: dropped,
				// so what PostgreSQL does with the held statements does not
				// depend on which arrives first.
				_ = c.Close()
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		p.Release()
		_ = ln.Close()
		p.wg.Wait()
	})
	return p
}

// Release lets held traffic flow again.
func (p *holdProxy) Release() {
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

func (p *holdProxy) holding() bool {
	select {
	case <-p.held:
		select {
		case <-p.release:
			return false
		default:
			return true
		}
	default:
		return false
	}
}

func (p *holdProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{})
	go func() { // server -> client
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if p.holding() {
				<-p.release
			}
			if n > 0 {
				if _, werr := client.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				_ = client.Close()
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 && p.armed.Load() && bytes.Contains(buf[:n], p.marker) {
			p.heldOnce.Do(func() { close(p.held) })
			if p.afterMarker {
				if _, werr := server.Write(buf[:n]); werr != nil {
					break
				}
				n = 0
			}
		}
		if p.holding() {
			<-p.release
		}
		if n > 0 {
			if _, werr := server.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil { // the client is gone: PostgreSQL sees the end after what it sent
			break
		}
	}
	_ = server.(*net.TCPConn).CloseWrite()
	<-done
}

// TestWriteOutcome: a write stalled before its COMMIT was sent fails as
// rolled back and is not stored, even when the stalled statements reach
// PostgreSQL after the client gave up (a paused server resuming); a write
// stalled after COMMIT was sent fails as of unknown outcome (and here
// PostgreSQL did commit it).
func TestWriteOutcome(t *testing.T) {
	ctx := testCtx(t)
	url := migratedDatabase(t)
	direct, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(direct.Close)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	target := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))

	tests := []struct {
		name, marker string
		after        bool
		unknown      bool
	}{
		// The statements are prepared by then (as on any busy connection),
		// so the upsert goes out as one message carrying the content.
		{"stalled at the upsert", "held write", false, false},
		{"stalled after COMMIT was sent", "commit", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newHoldProxy(t, target, tt.marker, tt.after)
			pc := cfg.Copy()
			pc.ConnConfig.Host, pc.ConnConfig.Port = "127.0.0.1", uint16(p.ln.Addr().(*net.TCPAddr).Port)
			pc.ConnConfig.RuntimeParams["application_name"] = "held"
			pc.MaxConns = 1 // the warm-up's connection, statements prepared, makes the write
			pool, err := pgxpool.NewWithConfig(ctx, pc)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			st := New(pool)
			if _, err := st.Write(ctx, []episode.Episode{{Namespace: "n", Content: "warm-up", Importance: 0.5}}); err != nil {
				t.Fatal(err)
			}
			p.armed.Store(true)
			id := uuid.NewString()
			wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err = st.Write(wctx, []episode.Episode{{ID: id, Namespace: "n", Content: "held write", Importance: 0.5}})
			cancel()
			if err == nil {
				t.Fatal("stalled write succeeded")
			}
			if got := errors.Is(err, ErrOutcomeUnknown); got != tt.unknown {
				t.Fatalf("Write: %v; outcome unknown %v, want %v", err, got, tt.unknown)
			}
			p.Release() // what was held reaches PostgreSQL, then the client's close
			pool.Close()
			// Wait until PostgreSQL has finished with the held connection.
			deadline := time.Now().Add(10 * time.Second)
			for {
				var n int
				if err := direct.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'held'").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the held connection's backend did not end")
				}
				time.Sleep(10 * time.Millisecond)
			}
			var stored int
			if err := direct.QueryRow(ctx, "SELECT count(*) FROM episodes WHERE id = $1", id).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 1}[tt.unknown]; stored != want {
				t.Errorf("stored %d copies, want %d", stored, want)
			}
		})
	}
}
