package store

import (
	"context"
	"testing"
	"time"
)

func TestParsePurge(t *testing.T) {
	tests := []struct {
		payload string
		want    Purge
		ok      bool
	}{
		{Purge{Namespace: "n"}.payload(), Purge{Namespace: "n"}, true},
		{Purge{Namespace: `a"b\c`, ID: "x"}.payload(), Purge{Namespace: `a"b\c`, ID: "x"}, true},
		{`{"id":"x"}`, Purge{}, false},
		{"not json", Purge{}, false},
	}
	for _, tt := range tests {
		got, err := ParsePurge(tt.payload)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePurge(%q) = %+v, %v; want %+v ok=%v", tt.payload, got, err, tt.want, tt.ok)
		}
	}
}

// listenEvent is one callback of a Listener.
type listenEvent struct {
	listening *bool
	purge     Purge
}

func recordListener(ch chan<- listenEvent) Listener {
	return Listener{
		Listening: func(ok bool, _ error) { ch <- listenEvent{listening: &ok} },
		Purge:     func(p Purge) { ch <- listenEvent{purge: p} },
		Retry:     50 * time.Millisecond, Timeout: 2 * time.Second,
		Idle: time.Minute, // the kill below finds the listener by its last query, LISTEN
	}
}

func next(t *testing.T, ch <-chan listenEvent) listenEvent {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no listener event within 10 s")
		return listenEvent{}
	}
}

// TestDeletesAreAnnounced: every committed delete reaches a listener, and a
// listener whose connection is killed says so and listens again.
func TestDeletesAreAnnounced(t *testing.T) {
	s, pool := newStore(t)
	ch := make(chan listenEvent, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ListenPurges(ctx, recordListener(ch))
	}()
	defer func() { cancel(); <-done }()
	if e := next(t, ch); e.listening == nil || !*e.listening {
		t.Fatalf("first event %+v, want listening", e)
	}

	eps := mustWrite(t, s, ep("ann", "first", 0), ep("ann", "second", 0))
	if ok, err := s.Delete(testCtx(t), "ann", eps[0].ID); err != nil || !ok {
		t.Fatalf("Delete: %v %v", ok, err)
	}
	if e := next(t, ch); e.purge != (Purge{Namespace: "ann", ID: eps[0].ID}) {
		t.Fatalf("after Delete: %+v", e)
	}
	if _, err := s.DeleteNamespace(testCtx(t), "ann"); err != nil {
		t.Fatal(err)
	}
	if e := next(t, ch); e.purge != (Purge{Namespace: "ann"}) {
		t.Fatalf("after DeleteNamespace: %+v", e)
	}

	// A transaction that rolls back announces nothing.
	tx, err := pool.Begin(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(testCtx(t), notifyPurgeSQL, Purge{Namespace: "rolled-back"}.payload()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	// Kill the listener's connection (the server restarting, a firewall):
	// it reports the loss and listens again.
	var killed int
	if err := pool.QueryRow(testCtx(t), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query ILIKE 'LISTEN %' AND pid <> pg_backend_pid() AND datname = current_database()`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listeners: %v", killed, err)
	}
	e := next(t, ch)
	if e.purge == (Purge{Namespace: "ann"}) {
		e = next(t, ch) // the erase's last batch, which found nothing, announced too
	}
	if e.listening == nil || *e.listening {
		t.Fatalf("after the kill: %+v, want not listening (the rolled-back announcement must not arrive)", e)
	}
	if e := next(t, ch); e.listening == nil || !*e.listening {
		t.Fatalf("after the kill: %+v, want listening again", e)
	}
	if _, err := s.DeleteNamespace(testCtx(t), "again"); err != nil {
		t.Fatal(err)
	}
	if e := next(t, ch); e.purge != (Purge{Namespace: "again"}) {
		t.Fatalf("after reconnecting: %+v", e)
	}
}

// TestListenerIdleChecks: checking an idle connection keeps it listening.
func TestListenerIdleChecks(t *testing.T) {
	s, _ := newStore(t)
	ch := make(chan listenEvent, 16)
	l := recordListener(ch)
	l.Idle = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ListenPurges(ctx, l)
	}()
	defer func() { cancel(); <-done }()
	if e := next(t, ch); e.listening == nil || !*e.listening {
		t.Fatalf("first event %+v, want listening", e)
	}
	time.Sleep(300 * time.Millisecond) // many idle checks
	if _, err := s.DeleteNamespace(testCtx(t), "idle"); err != nil {
		t.Fatal(err)
	}
	if e := next(t, ch); e.purge != (Purge{Namespace: "idle"}) {
		t.Fatalf("after idle checks: %+v, want the announcement", e)
	}
}
