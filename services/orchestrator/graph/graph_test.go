package graph

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/brainhq/brain/services/orchestrator/labs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLab is a LAB whose behaviour the test supplies. Its value is a
// labs.Reconsolidation carrying a marker, the simplest sealed Value.
type testLab struct {
	id       string
	deps     []string
	requires []string
	budget   time.Duration
	run      func(ctx context.Context, in labs.Inputs) (labs.Output, error)
}

func (l *testLab) ID() string            { return l.id }
func (l *testLab) Name() string          { return strings.ToLower(l.id) }
func (l *testLab) Layer() int            { return 2 }
func (l *testLab) DependsOn() []string   { return l.deps }
func (l *testLab) Requires() []string    { return l.requires }
func (l *testLab) Description() string   { return "test lab " + l.id }
func (l *testLab) Budget() time.Duration { return l.budget }
func (l *testLab) Run(ctx context.Context, in labs.Inputs) (labs.Output, error) {
	if l.run == nil {
		return value(1), nil
	}
	return l.run(ctx, in)
}

func value(n int) labs.Output { return labs.Output{Value: labs.Reconsolidation{Touched: n}} }

func lab(id string, deps ...string) *testLab {
	return &testLab{id: id, deps: deps, budget: time.Second}
}

// collect runs s and returns the emitted results and summary.
func collect(t *testing.T, s *Scheduler, ctx context.Context, budget time.Duration) ([]Result, Summary) {
	t.Helper()
	var results []Result
	var sum *Summary
	err := s.Run(ctx, labs.Request{Query: "q"}, budget, func(e Event) error {
		switch {
		case e.Result != nil && sum == nil:
			results = append(results, *e.Result)
		case e.Summary != nil && sum == nil:
			sum = e.Summary
		default:
			t.Errorf("event after the summary: %+v", e)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sum == nil {
		t.Fatal("no summary")
	}
	if len(sum.Results) != len(results) {
		t.Errorf("summary has %d results, %d emitted", len(sum.Results), len(results))
	}
	return results, *sum
}

func byID(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.LabID] = r
	}
	return m
}

func TestNewValidates(t *testing.T) {
	self := lab("A", "A")
	req := lab("B", "A")
	req.requires = []string{"C"}
	zero := lab("Z")
	zero.budget = 0
	tests := []struct {
		name string
		set  []labs.Lab
		want string
	}{
		{"unknown dependency", []labs.Lab{lab("A", "X")}, "unknown lab X"},
		{"cycle", []labs.Lab{lab("A", "C"), lab("B", "A"), lab("C", "B"), lab("D")}, "cycle among A, B, C"},
		{"self", []labs.Lab{self}, "depends on itself"},
		{"duplicate", []labs.Lab{lab("A"), lab("A")}, "appears twice"},
		{"requires a non-dependency", []labs.Lab{lab("A"), lab("C"), req}, "requires C without depending"},
		{"no budget", []labs.Lab{zero}, "budget"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCatalogOrder(t *testing.T) {
	// Given out of order, the scheduler sorts the catalog by dependency.
	cat := labs.Catalog(nil, nil)
	slices.Reverse(cat)
	s, err := New(cat)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range s.Labs() {
		for _, d := range l.DependsOn() {
			if !seen[d] {
				t.Errorf("%s listed before its dependency %s", l.ID(), d)
			}
		}
		seen[l.ID()] = true
	}
	if s.CriticalPath() != 300*time.Millisecond {
		t.Errorf("critical path = %s, want 300ms", s.CriticalPath())
	}
}

func TestDependencyOrder(t *testing.T) {
	var mu sync.Mutex
	var log []string
	note := func(s string) {
		mu.Lock()
		log = append(log, s)
		mu.Unlock()
	}
	mk := func(id string, deps ...string) *testLab {
		l := lab(id, deps...)
		l.run = func(_ context.Context, in labs.Inputs) (labs.Output, error) {
			note("start " + id)
			for _, d := range deps {
				if in.Deps[d].Status != labs.StatusOK {
					return labs.Output{}, fmt.Errorf("dependency %s not finished", d)
				}
			}
			note("end " + id)
			return value(1), nil
		}
		return l
	}
	s, err := New([]labs.Lab{mk("D", "C"), mk("C", "A", "B"), mk("A"), mk("B")})
	if err != nil {
		t.Fatal(err)
	}
	results, _ := collect(t, s, context.Background(), time.Second)
	at := func(e string) int { return slices.Index(log, e) }
	if at("start C") < at("end A") || at("start C") < at("end B") || at("start D") < at("end C") {
		t.Errorf("dependencies not respected: %v", log)
	}
	var order []string
	for _, r := range results {
		order = append(order, r.LabID)
		if r.Status != labs.StatusOK {
			t.Errorf("%s: %s %s", r.LabID, r.Status, r.Detail)
		}
	}
	if slices.Index(order, "C") < slices.Index(order, "A") || slices.Index(order, "C") < slices.Index(order, "B") ||
		order[3] != "D" {
		t.Errorf("emission order %v does not follow completion", order)
	}
}

// A and B can only both succeed if they run at the same time: each waits for
// the other to have started.
func TestIndependentLabsOverlap(t *testing.T) {
	aStarted, bStarted := make(chan struct{}), make(chan struct{})
	wait := func(mine, other chan struct{}) func(context.Context, labs.Inputs) (labs.Output, error) {
		return func(ctx context.Context, _ labs.Inputs) (labs.Output, error) {
			close(mine)
			select {
			case <-other:
				return value(1), nil
			case <-ctx.Done():
				return labs.Output{}, ctx.Err()
			}
		}
	}
	a, b := lab("A"), lab("B")
	a.run, b.run = wait(aStarted, bStarted), wait(bStarted, aStarted)
	s, err := New([]labs.Lab{a, b, lab("C", "A", "B")})
	if err != nil {
		t.Fatal(err)
	}
	results, _ := collect(t, s, context.Background(), 5*time.Second)
	for _, r := range results {
		if r.Status != labs.StatusOK {
			t.Errorf("%s = %s (%s): independent LABs did not overlap", r.LabID, r.Status, r.Detail)
		}
	}
}

func blockUntilDone(ctx context.Context, _ labs.Inputs) (labs.Output, error) {
	<-ctx.Done()
	return labs.Output{}, ctx.Err()
}

func TestOverBudgetFailsAndTheRestFinish(t *testing.T) {
	slow := lab("SLOW")
	slow.budget = 20 * time.Millisecond
	slow.run = blockUntilDone
	needs := lab("NEEDS", "SLOW")
	needs.requires = []string{"SLOW"}
	after := lab("AFTER", "NEEDS") // requires nothing, but NEEDS was skipped
	after.requires = []string{"NEEDS"}
	tolerant := lab("TOLERANT", "SLOW")
	var sawFailed labs.Outcome
	tolerant.run = func(_ context.Context, in labs.Inputs) (labs.Output, error) {
		sawFailed = in.Deps["SLOW"]
		return value(2), nil
	}
	s, err := New([]labs.Lab{slow, needs, after, tolerant, lab("OTHER")})
	if err != nil {
		t.Fatal(err)
	}
	results, sum := collect(t, s, context.Background(), 5*time.Second)
	got := byID(results)
	want := map[string]labs.Status{"SLOW": labs.StatusFailed, "NEEDS": labs.StatusSkipped,
		"AFTER": labs.StatusSkipped, "TOLERANT": labs.StatusOK, "OTHER": labs.StatusOK}
	for id, st := range want {
		if got[id].Status != st {
			t.Errorf("%s = %s (%s), want %s", id, got[id].Status, got[id].Detail, st)
		}
	}
	if !strings.Contains(got["SLOW"].Detail, "budget") || got["SLOW"].Value != nil {
		t.Errorf("SLOW detail = %q, value %v", got["SLOW"].Detail, got["SLOW"].Value)
	}
	if !strings.Contains(got["NEEDS"].Detail, "SLOW") {
		t.Errorf("NEEDS detail = %q does not name its failed input", got["NEEDS"].Detail)
	}
	if sawFailed.Status != labs.StatusFailed || sawFailed.Value != nil {
		t.Errorf("TOLERANT saw SLOW as %+v", sawFailed)
	}
	if !slices.Contains(sum.Degraded, "SLOW") || !slices.Contains(sum.Degraded, "AFTER") || len(sum.Degraded) != 3 {
		t.Errorf("summary degraded = %v", sum.Degraded)
	}
	if el := got["SLOW"].Elapsed; el < 20*time.Millisecond || el > 2*time.Second {
		t.Errorf("SLOW elapsed %s for a 20ms budget", el)
	}
}

// A LAB that ignores its context does not hold the stream: its FAILED result
// and the summary come at its budget; only Run's return waits for it.
func TestStuckLabDoesNotHoldTheRun(t *testing.T) {
	release := make(chan struct{})
	stuck := lab("STUCK")
	stuck.budget = 30 * time.Millisecond
	stuck.run = func(context.Context, labs.Inputs) (labs.Output, error) {
		<-release // ignores ctx
		return value(1), nil
	}
	s, err := New([]labs.Lab{stuck, lab("OK")})
	if err != nil {
		t.Fatal(err)
	}
	summary := make(chan Summary, 1)
	returned := make(chan error, 1)
	start := time.Now()
	go func() {
		returned <- s.Run(context.Background(), labs.Request{}, 5*time.Second, func(e Event) error {
			if e.Summary != nil {
				summary <- *e.Summary
			}
			return nil
		})
	}()
	var sum Summary
	select {
	case sum = <-summary:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("no summary while a LAB is stuck")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("summary after %s for a 30ms budget", el)
	}
	if r, _ := sum.Result("STUCK"); r.Status != labs.StatusFailed {
		t.Errorf("STUCK = %s", r.Status)
	}
	select {
	case <-returned:
		t.Fatal("Run returned while its LAB goroutine was still running")
	default:
	}
	close(release)
	if err := <-returned; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestCancelledContextLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	started := make(chan struct{}, 3)
	mk := func(id string, deps ...string) *testLab {
		l := lab(id, deps...)
		l.run = func(ctx context.Context, in labs.Inputs) (labs.Output, error) {
			started <- struct{}{}
			return blockUntilDone(ctx, in)
		}
		return l
	}
	s, err := New([]labs.Lab{mk("A"), mk("B"), mk("C", "A")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		<-started
		cancel()
	}()
	results, sum := collect(t, s, ctx, time.Minute)
	got := byID(results)
	for _, id := range []string{"A", "B", "C"} { // C was never started: the run had ended
		if got[id].Status != labs.StatusFailed {
			t.Errorf("%s = %s (%s), want FAILED", id, got[id].Status, got[id].Detail)
		}
	}
	if len(sum.Degraded) != 3 {
		t.Errorf("degraded = %v", sum.Degraded)
	}
}

func TestPanicIsAFailure(t *testing.T) {
	p := lab("P")
	p.run = func(context.Context, labs.Inputs) (labs.Output, error) { panic("boom") }
	s, _ := New([]labs.Lab{p})
	results, _ := collect(t, s, context.Background(), time.Second)
	if results[0].Status != labs.StatusFailed || !strings.Contains(results[0].Detail, "boom") {
		t.Errorf("panic gave %s %q", results[0].Status, results[0].Detail)
	}
}

func TestDegradedInputsPropagate(t *testing.T) {
	a := lab("A")
	a.run = func(context.Context, labs.Inputs) (labs.Output, error) {
		return labs.Output{Value: labs.Reconsolidation{}, Degraded: true, Detail: "from cache"}, nil
	}
	uses := lab("USES", "A")
	uses.run = func(context.Context, labs.Inputs) (labs.Output, error) {
		return labs.Output{Value: labs.Reconsolidation{}, Used: []string{"A"}, Detail: "fine"}, nil
	}
	ignores := lab("IGNORES", "A") // depends on A but did not use its result
	s, _ := New([]labs.Lab{a, uses, ignores})
	results, _ := collect(t, s, context.Background(), time.Second)
	got := byID(results)
	if got["A"].Status != labs.StatusDegraded || got["A"].Detail != "from cache" {
		t.Errorf("A = %s %q", got["A"].Status, got["A"].Detail)
	}
	if got["USES"].Status != labs.StatusDegraded || got["USES"].Detail != "fine; degraded inputs: A" ||
		!slices.Equal(got["USES"].UsedSignals, []string{"A"}) {
		t.Errorf("USES = %s %q %v", got["USES"].Status, got["USES"].Detail, got["USES"].UsedSignals)
	}
	if got["IGNORES"].Status != labs.StatusOK {
		t.Errorf("IGNORES = %s", got["IGNORES"].Status)
	}
}

func TestEmitErrorStopsTheRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	slow := lab("SLOW")
	slow.run = blockUntilDone
	s, _ := New([]labs.Lab{lab("FAST"), slow, lab("LATER", "SLOW")})
	stop := errors.New("client went away")
	var events int
	start := time.Now()
	err := s.Run(context.Background(), labs.Request{}, time.Minute, func(Event) error {
		events++
		return stop
	})
	if !errors.Is(err, stop) || events != 1 {
		t.Errorf("Run = %v after %d events, want the emit error after 1", err, events)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("a stopped run took %s", el)
	}
}

func TestLabBudget(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct{ own, run, critical, want time.Duration }{
		{180 * ms, 300 * ms, 300 * ms, 180 * ms},    // full run: own budget
		{180 * ms, time.Second, 300 * ms, 600 * ms}, // a longer run: a larger share each
		{20 * ms, 30 * time.Second, 300 * ms, 2 * time.Second},
		{180 * ms, 100 * ms, 300 * ms, 60 * ms}, // a third of the critical path: a third each
		{20 * ms, 10 * ms, 300 * ms, 20 * ms / 30},
	} {
		if got := labBudget(tc.own, tc.run, tc.critical); got != tc.want {
			t.Errorf("labBudget(%s, %s, %s) = %s, want %s", tc.own, tc.run, tc.critical, got, tc.want)
		}
	}
}

// In a run shorter than the critical path, each LAB's context deadline is
// its scaled budget.
func TestBudgetsScaleInShortRuns(t *testing.T) {
	var got time.Duration
	a := lab("A")
	a.budget = 400 * time.Millisecond
	a.run = func(ctx context.Context, _ labs.Inputs) (labs.Output, error) {
		dl, _ := ctx.Deadline()
		got = time.Until(dl)
		return value(1), nil
	}
	b := lab("B", "A")
	b.budget = 600 * time.Millisecond
	s, _ := New([]labs.Lab{a, b}) // critical path 1s
	collect(t, s, context.Background(), 500*time.Millisecond)
	// A gets 400ms × 500/1000 = 200ms.
	if got > 200*time.Millisecond || got < 100*time.Millisecond {
		t.Errorf("A's deadline was %s away, want about 200ms", got)
	}
}
