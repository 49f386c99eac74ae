package access

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type call struct {
	namespace string
	ids       []string
	at        time.Time
}

// fakeSink records calls; block makes each call wait for its context.
type fakeSink struct {
	err   error
	block bool

	mu    sync.Mutex
	calls []call
	seen  chan struct{}
}

func newSink() *fakeSink { return &fakeSink{seen: make(chan struct{}, 100)} }

func (s *fakeSink) RecordAccess(ctx context.Context, ns string, ids []string, at time.Time) (int, error) {
	if _, ok := ctx.Deadline(); !ok {
		panic("RecordAccess without a deadline")
	}
	s.mu.Lock()
	s.calls = append(s.calls, call{ns, slices.Clone(ids), at})
	s.mu.Unlock()
	s.seen <- struct{}{}
	if s.block {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	if s.err != nil {
		return 0, s.err
	}
	return len(ids), nil
}

func (s *fakeSink) got() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// clock returns t0, t0+1s, t0+2s, ... on successive calls.
func clock() func() time.Time {
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func run(t *testing.T, r *Recorder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	return func() { cancel(); <-done }
}

func TestBatchesPerNamespace(t *testing.T) {
	sink := newSink()
	now := clock()
	r, err := New(sink, Options{BatchSize: 2, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// Queued before Run starts, so the first flush merges all three.
	for _, s := range []struct {
		ns  string
		ids []string
	}{{"ns1", []string{"a", "b"}}, {"ns2", []string{"x"}}, {"ns1", []string{"b", "c"}}} {
		if !r.Submit(s.ns, s.ids) {
			t.Fatalf("Submit(%s) refused", s.ns)
		}
	}
	stop := run(t, r)
	for range 3 {
		<-sink.seen
	}
	stop()

	// Submissions were stamped t0+1s, t0+2s, t0+3s.
	t2, t3 := time.Date(2025, 1, 1, 0, 0, 2, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 3, 0, time.UTC)
	// ns1: a, b, c deduplicated and cut in chunks of 2, stamped with the
	// latest submission (t3); ns2: x at t2.
	want := []call{{"ns1", []string{"a", "b"}, t3}, {"ns1", []string{"c"}, t3}, {"ns2", []string{"x"}, t2}}
	got := sink.got()
	if len(got) != len(want) {
		t.Fatalf("calls = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].namespace != want[i].namespace || !slices.Equal(got[i].ids, want[i].ids) || !got[i].at.Equal(want[i].at) {
			t.Errorf("call %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	st := r.Stats()
	if st.Submitted != 3 || st.Recorded != 4 || st.Updated != 4 || st.Failed != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSubmitNeverBlocks(t *testing.T) {
	r, err := New(newSink(), Options{QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Submit("ns", []string{"a"}) || !r.Submit("ns", []string{"b"}) {
		t.Fatal("submissions within the queue size refused")
	}
	done := make(chan bool)
	go func() { done <- r.Submit("ns", []string{"c"}) }()
	select {
	case ok := <-done:
		if ok {
			t.Error("Submit to a full queue returned true")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Submit blocked on a full queue")
	}
	if st := r.Stats(); st.Submitted != 2 || st.Refused != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSubmitCopiesIDs(t *testing.T) {
	sink := newSink()
	r, _ := New(sink, Options{})
	ids := []string{"a"}
	r.Submit("ns", ids)
	ids[0] = "changed"
	stop := run(t, r)
	<-sink.seen
	stop()
	if got := sink.got()[0].ids[0]; got != "a" {
		t.Errorf("recorded %q, want the id as submitted", got)
	}
}

func TestDrainsOnShutdownThenRefuses(t *testing.T) {
	sink := newSink()
	r, _ := New(sink, Options{})
	r.Submit("ns1", []string{"a"})
	r.Submit("ns2", []string{"b"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // already over: Run only drains
	r.Run(ctx)
	if got := sink.got(); len(got) != 2 {
		t.Errorf("drain made %d calls, want 2", len(got))
	}
	if r.Submit("ns", []string{"late"}) {
		t.Error("Submit after Run ended returned true")
	}
}

func TestFailuresCountedAndLogged(t *testing.T) {
	sink := newSink()
	sink.err = errors.New("memory unavailable")
	core, logs := observer.New(zapcore.WarnLevel)
	r, _ := New(sink, Options{Logger: zap.New(core)})
	r.Submit("ns", []string{"a", "b"})
	stop := run(t, r)
	<-sink.seen
	stop()
	st := r.Stats()
	if st.Failed != 2 || st.FailedCalls != 1 || st.Recorded != 0 {
		t.Errorf("stats = %+v", st)
	}
	if logs.FilterMessageSnippet("RecordAccess failed").Len() != 1 {
		t.Errorf("failure not logged once: %v", logs.All())
	}
}

func TestDrainIsBounded(t *testing.T) {
	sink := newSink()
	sink.block = true // a memory that never answers
	r, _ := New(sink, Options{DrainTimeout: 50 * time.Millisecond, CallTimeout: time.Minute})
	r.Submit("ns1", []string{"a"})
	r.Submit("ns2", []string{"b"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	r.Run(ctx)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("drain took %s with a 50ms drain timeout", el)
	}
	if st := r.Stats(); st.Failed != 2 || st.Recorded != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestNewValidates(t *testing.T) {
	for _, o := range []Options{{BatchSize: 101}, {QueueSize: -1}, {CallTimeout: -1}} {
		if _, err := New(newSink(), o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New accepted a nil sink")
	}
}

// TestStopFlushesWithinItsContext: Stop's context bounds the final flush,
// below DrainTimeout, so a process stopping within a deadline can stop
// the recorder inside it; what is left is counted as failed.
func TestStopFlushesWithinItsContext(t *testing.T) {
	sink := newSink()
	sink.block = true // a memory that never answers
	r, _ := New(sink, Options{DrainTimeout: time.Minute, CallTimeout: time.Minute})
	r.Submit("ns1", []string{"a"})
	r.Submit("ns2", []string{"b"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(context.Background())
	}()
	<-sink.seen // Run is flushing ns1, stuck in the call
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r.Stop(ctx)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Stop took %s with a 100ms context", el)
	}
	<-done
	if r.Submit("ns", []string{"late"}) {
		t.Error("Submit after Stop returned true")
	}
	r.Stop(ctx) // after Run returned: returns at once
}
