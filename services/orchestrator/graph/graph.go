// Package graph runs a set of LABs as a dependency graph: a LAB starts as
// soon as all its dependencies have finished, independent LABs run
// concurrently, each under its own budget inside the run's, and results are
// handed out in completion order, then a summary. Nothing of a run outlives
// the call to Run.
package graph

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/brainhq/brain/services/orchestrator/labs"
)

// Result is one finished LAB.
type Result struct {
	LabID     string
	Name      string
	DependsOn []string
	Status    labs.Status
	// StartedOffset is when it started (or was skipped), from the start of
	// the run.
	StartedOffset time.Duration
	Elapsed       time.Duration
	// Detail is the LAB's note; for a status other than OK, the reason.
	Detail string
	// UsedSignals are the LABs whose results it used.
	UsedSignals []string
	// Value is nil when the LAB FAILED or was SKIPPED.
	Value labs.Value
}

// Summary ends a run.
type Summary struct {
	// Results are every LAB's, in completion order.
	Results []Result
	// Degraded are the ids of the LABs that were not OK, in completion order.
	Degraded []string
	// Elapsed is the wall time of the run.
	Elapsed time.Duration
}

// Result returns the result of LAB id.
func (s Summary) Result(id string) (Result, bool) {
	for _, r := range s.Results {
		if r.LabID == id {
			return r, true
		}
	}
	return Result{}, false
}

// Event is one thing a run hands out: exactly one of Result or Summary.
type Event struct {
	Result  *Result
	Summary *Summary
}

// Scheduler runs a fixed, validated set of LABs. It is safe for concurrent
// runs.
type Scheduler struct {
	labs       []labs.Lab // dependency order
	deps       [][]int    // indexes of each LAB's dependencies
	requires   [][]int
	dependents [][]int
	critical   time.Duration
}

// New validates the set (unique non-empty ids, known dependencies, required
// inputs among the dependencies, positive budgets, no cycle) and returns its
// scheduler.
func New(set []labs.Lab) (*Scheduler, error) {
	index := make(map[string]int, len(set))
	for i, l := range set {
		switch {
		case l == nil:
			return nil, fmt.Errorf("lab %d is nil", i)
		case l.ID() == "":
			return nil, fmt.Errorf("lab %d has no id", i)
		case l.Budget() <= 0:
			return nil, fmt.Errorf("lab %s: budget %s is not positive", l.ID(), l.Budget())
		}
		if _, dup := index[l.ID()]; dup {
			return nil, fmt.Errorf("lab %s appears twice", l.ID())
		}
		index[l.ID()] = i
	}
	deps := make([][]int, len(set))
	for i, l := range set {
		for _, d := range l.DependsOn() {
			j, ok := index[d]
			if !ok {
				return nil, fmt.Errorf("lab %s depends on unknown lab %s", l.ID(), d)
			}
			if j == i {
				return nil, fmt.Errorf("lab %s depends on itself", l.ID())
			}
			deps[i] = append(deps[i], j)
		}
		for _, r := range l.Requires() {
			if !slices.Contains(l.DependsOn(), r) {
				return nil, fmt.Errorf("lab %s requires %s without depending on it", l.ID(), r)
			}
		}
	}

	// Kahn's algorithm, taking ready LABs in the order given so the result
	// is deterministic.
	pending := make([]int, len(set))
	dependents := make([][]int, len(set))
	for i := range set {
		pending[i] = len(deps[i])
		for _, j := range deps[i] {
			dependents[j] = append(dependents[j], i)
		}
	}
	var order []int
	placed := make([]bool, len(set))
	for len(order) < len(set) {
		progressed := false
		for i := range set {
			if placed[i] || pending[i] > 0 {
				continue
			}
			placed[i], progressed = true, true
			order = append(order, i)
			for _, k := range dependents[i] {
				pending[k]--
			}
		}
		if !progressed {
			var cyc []string
			for i, l := range set {
				if !placed[i] {
					cyc = append(cyc, l.ID())
				}
			}
			return nil, fmt.Errorf("dependency cycle among %s", strings.Join(cyc, ", "))
		}
	}

	s := &Scheduler{}
	pos := make([]int, len(set)) // old index → position in order
	for p, i := range order {
		pos[i] = p
		s.labs = append(s.labs, set[i])
	}
	remap := func(ix []int) []int {
		out := make([]int, len(ix))
		for k, i := range ix {
			out[k] = pos[i]
		}
		return out
	}
	s.deps = make([][]int, len(set))
	s.requires = make([][]int, len(set))
	s.dependents = make([][]int, len(set))
	for p, i := range order {
		s.deps[p] = remap(deps[i])
		s.dependents[p] = remap(dependents[i])
		for _, r := range set[i].Requires() {
			s.requires[p] = append(s.requires[p], pos[index[r]])
		}
	}

	// Longest chain of budgets, over the dependency order.
	finish := make([]time.Duration, len(s.labs))
	for p, l := range s.labs {
		var start time.Duration
		for _, d := range s.deps[p] {
			start = max(start, finish[d])
		}
		finish[p] = start + l.Budget()
		s.critical = max(s.critical, finish[p])
	}
	return s, nil
}

// Labs returns the LABs in dependency order.
func (s *Scheduler) Labs() []labs.Lab { return slices.Clone(s.labs) }

// CriticalPath is the largest sum of budgets along a dependency chain: the
// run budget at which every LAB gets its full budget.
func (s *Scheduler) CriticalPath() time.Duration { return s.critical }

// labBudget is a LAB's budget in a run of the given budget: its own, scaled
// by run/critical. Down, so that a slow LAB early in the chain cannot eat
// its dependents' time; up, so that a caller granting a longer run gives
// every LAB (LAB_011's recall above all) its share of it.
func labBudget(own, run, critical time.Duration) time.Duration {
	if run <= 0 || critical <= 0 || run == critical {
		return own
	}
	return time.Duration(float64(own) * (float64(run) / float64(critical)))
}

// Run runs every LAB for req within budget (capped by ctx's deadline; the
// critical path when budget ≤ 0). emit is called on the calling goroutine,
// once per LAB in completion order and then once with the summary; it
// should not block for long, since no LAB starts while it runs. When emit
// returns an error, the run is cancelled, nothing more is emitted and Run
// returns that error once every LAB goroutine has ended.
//
// A LAB that errors, panics, or has not returned when its budget ends is
// FAILED; the run stops waiting for it at that moment, but Run returns only
// after its goroutine has ended, so LABs must honour their context. A LAB
// whose required input FAILED or was SKIPPED is SKIPPED; one that used a
// result that was not OK is DEGRADED.
func (s *Scheduler) Run(ctx context.Context, req labs.Request, budget time.Duration, emit func(Event) error) error {
	if budget <= 0 {
		budget = s.critical
	}
	runCtx, cancel := context.WithTimeout(ctx, budget)
	r := &run{
		s:        s,
		req:      req,
		ctx:      runCtx,
		cancel:   cancel,
		start:    time.Now(),
		budget:   budget,
		emit:     emit,
		state:    make([]labState, len(s.labs)),
		outcomes: make(map[string]labs.Outcome, len(s.labs)),
		done:     make(chan completion, len(s.labs)), // one send per LAB: never blocks
	}
	defer func() {
		cancel()
		r.wg.Wait() // no goroutine of the run outlives it
	}()
	r.loop()
	if r.emitErr == nil {
		sum := Summary{Results: r.results, Elapsed: time.Since(r.start)}
		for _, res := range r.results {
			if res.Status != labs.StatusOK {
				sum.Degraded = append(sum.Degraded, res.LabID)
			}
		}
		r.emitErr = emit(Event{Summary: &sum})
	}
	return r.emitErr
}

type labState struct {
	pending  int
	running  bool
	finished bool
	started  time.Time
	deadline time.Time
	budget   time.Duration
	cancel   context.CancelFunc
}

type completion struct {
	i    int
	out  labs.Output
	err  error
	late bool
	end  time.Time
}

// run is the state of one Run, touched only by the calling goroutine
// (LAB goroutines talk to it through done).
type run struct {
	s      *Scheduler
	req    labs.Request
	ctx    context.Context
	cancel context.CancelFunc // ends ctx
	start  time.Time
	budget time.Duration
	emit   func(Event) error

	state    []labState
	outcomes map[string]labs.Outcome
	results  []Result
	ready    []int
	unsent   []Result
	finished int
	emitErr  error

	done chan completion
	wg   sync.WaitGroup
}

func (r *run) loop() {
	for i := range r.s.labs {
		r.state[i].pending = len(r.s.deps[i])
		if r.state[i].pending == 0 {
			r.ready = append(r.ready, i)
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	r.advance()
	for r.finished < len(r.s.labs) {
		var timeout <-chan time.Time
		if dl, ok := r.earliestDeadline(); ok {
			timer.Reset(time.Until(dl))
			timeout = timer.C
		}
		select {
		case c := <-r.done:
			if !r.state[c.i].finished {
				r.complete(c)
			}
		case now := <-timeout:
			for i := range r.state {
				if st := &r.state[i]; st.running && !now.Before(st.deadline) {
					r.fail(i, now, fmt.Sprintf("exceeded its budget of %s and was abandoned", st.budget))
				}
			}
		case <-r.ctx.Done():
			now := time.Now()
			for i := range r.state {
				if r.state[i].running {
					r.fail(i, now, "run ended before it finished: "+r.ctx.Err().Error())
				}
			}
		}
		timer.Stop()
		r.advance()
	}
}

// advance starts what became ready, then emits what finished.
func (r *run) advance() {
	for len(r.ready) > 0 {
		i := r.ready[0]
		r.ready = r.ready[1:]
		r.launch(i)
	}
	for _, res := range r.unsent {
		if r.emitErr != nil {
			break
		}
		if err := r.emit(Event{Result: &res}); err != nil {
			r.emitErr = err
			r.cancel() // nobody listens any more: end the run fast
		}
	}
	r.unsent = r.unsent[:0]
}

func (r *run) earliestDeadline() (time.Time, bool) {
	var dl time.Time
	found := false
	for _, st := range r.state {
		if st.running && (!found || st.deadline.Before(dl)) {
			dl, found = st.deadline, true
		}
	}
	return dl, found
}

// launch starts LAB i, or skips or fails it at once when it cannot run.
func (r *run) launch(i int) {
	lab := r.s.labs[i]
	now := time.Now()
	for _, d := range r.s.requires[i] {
		o := r.outcomes[r.s.labs[d].ID()]
		if o.Status == labs.StatusFailed || o.Status == labs.StatusSkipped {
			r.finish(i, Result{Status: labs.StatusSkipped, StartedOffset: now.Sub(r.start),
				Detail: fmt.Sprintf("not run: required input %s %s", r.s.labs[d].ID(), o.Status)})
			return
		}
	}
	if err := r.ctx.Err(); err != nil {
		r.finish(i, Result{Status: labs.StatusFailed, StartedOffset: now.Sub(r.start),
			Detail: "not started: run ended: " + err.Error()})
		return
	}
	in := labs.Inputs{Request: r.req, Deps: make(map[string]labs.Outcome, len(r.s.deps[i]))}
	for _, d := range r.s.deps[i] {
		id := r.s.labs[d].ID()
		in.Deps[id] = r.outcomes[id]
	}
	budget := labBudget(lab.Budget(), r.budget, r.s.critical)
	labCtx, cancel := context.WithTimeout(r.ctx, budget)
	dl, _ := labCtx.Deadline()
	r.state[i] = labState{running: true, started: now, deadline: dl, budget: budget, cancel: cancel}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer cancel()
		out, err := safeRun(labCtx, lab, in)
		r.done <- completion{i: i, out: out, err: err, late: labCtx.Err() != nil, end: time.Now()}
	}()
}

func safeRun(ctx context.Context, lab labs.Lab, in labs.Inputs) (out labs.Output, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return lab.Run(ctx, in)
}

// complete turns a LAB's return into its result.
func (r *run) complete(c completion) {
	st := &r.state[c.i]
	res := Result{StartedOffset: st.started.Sub(r.start), Elapsed: c.end.Sub(st.started)}
	switch {
	case c.err != nil && c.late:
		res.Status, res.Detail = labs.StatusFailed, fmt.Sprintf("exceeded its budget of %s: %v", st.budget, c.err)
	case c.err != nil:
		res.Status, res.Detail = labs.StatusFailed, c.err.Error()
	case c.late:
		res.Status, res.Detail = labs.StatusFailed, fmt.Sprintf("answered after its budget of %s", st.budget)
	case c.out.Value == nil:
		res.Status, res.Detail = labs.StatusFailed, "returned no output"
	default:
		res.Status, res.Detail, res.Value = labs.StatusOK, c.out.Detail, c.out.Value
		res.UsedSignals = slices.Clone(c.out.Used)
		if c.out.Degraded {
			res.Status = labs.StatusDegraded
		}
		var weak []string
		for _, id := range c.out.Used {
			if o, ok := r.outcomes[id]; ok && o.Status != labs.StatusOK {
				weak = append(weak, id)
			}
		}
		if len(weak) > 0 {
			res.Status = labs.StatusDegraded
			res.Detail = joinDetail(res.Detail, "degraded inputs: "+strings.Join(weak, ", "))
		}
	}
	r.finish(c.i, res)
}

// fail marks a running LAB FAILED without waiting for it any longer.
func (r *run) fail(i int, now time.Time, detail string) {
	st := &r.state[i]
	st.cancel()
	r.finish(i, Result{Status: labs.StatusFailed, StartedOffset: st.started.Sub(r.start),
		Elapsed: now.Sub(st.started), Detail: detail})
}

// finish records LAB i's result, queues it for emission and readies the
// dependents it unblocks.
func (r *run) finish(i int, res Result) {
	lab := r.s.labs[i]
	res.LabID, res.Name, res.DependsOn = lab.ID(), lab.Name(), lab.DependsOn()
	st := &r.state[i]
	st.running, st.finished = false, true
	r.finished++
	r.outcomes[res.LabID] = labs.Outcome{Status: res.Status, Detail: res.Detail, Value: res.Value}
	r.results = append(r.results, res)
	r.unsent = append(r.unsent, res)
	for _, j := range r.s.dependents[i] {
		if r.state[j].pending--; r.state[j].pending == 0 {
			r.ready = append(r.ready, j)
		}
	}
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
