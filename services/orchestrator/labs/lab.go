// Package labs holds the nine cognitive LABs of layer 2. Each LAB is a pure,
// deterministic function of the request, its "now" (as_of) and the results of
// the LABs it depends on; only LAB_011, LAB_007 and LAB_009 reach memory, and
// only through the small Memory and AccessRecorder interfaces defined here.
// The package knows nothing of gRPC: the graph package schedules the LABs and
// the api package maps their domain outputs to protos.
package labs

import (
	"context"
	"time"
)

// LAB ids, as the prototype named them.
const (
	IDWorkingMemory   = "LAB_011"
	IDSalience        = "LAB_001"
	IDAttention       = "LAB_010"
	IDReconsolidation = "LAB_009"
	IDPreload         = "LAB_007"
	IDContagion       = "LAB_008"
	IDRegulation      = "LAB_028"
	IDFutureThinking  = "LAB_012"
	IDMetacognition   = "LAB_006"
)

// Lab is one node of the LAB graph.
type Lab interface {
	// ID is the LAB id such as "LAB_011".
	ID() string
	// Name is the LAB name such as "working_memory_buffer".
	Name() string
	// Layer is the cognitive layer (2 for all nine).
	Layer() int
	// DependsOn lists the LABs whose results Run receives in Inputs.Deps.
	DependsOn() []string
	// Requires is the subset of DependsOn without which the LAB cannot run:
	// when one of them FAILED or was SKIPPED, the scheduler SKIPS this LAB.
	// The other dependencies may be missing; Run then degrades.
	Requires() []string
	// Budget is the LAB's time budget within a run.
	Budget() time.Duration
	// Description says what the LAB computes, with its formula.
	Description() string
	// Run computes the LAB's output. It must honour ctx and must not modify
	// anything reachable from in: dependency outputs are shared.
	Run(ctx context.Context, in Inputs) (Output, error)
}

// Status is how a LAB ended.
type Status int

// Statuses, in increasing order of trouble.
const (
	StatusOK Status = iota + 1
	StatusDegraded
	StatusFailed
	StatusSkipped
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusDegraded:
		return "DEGRADED"
	case StatusFailed:
		return "FAILED"
	case StatusSkipped:
		return "SKIPPED"
	}
	return "UNSPECIFIED"
}

// Value is the typed result of one LAB: WorkingMemory, Salience, Attention,
// Reconsolidation, Preload, Contagion, Regulation, FutureThinking or
// Metacognition. The interface is sealed to those types.
type Value interface{ labValue() }

// Output is what Run returns on success.
type Output struct {
	// Value is the typed result; never nil.
	Value Value
	// Degraded says the result was computed from incomplete inputs or a
	// degraded dependency; Detail says why.
	Degraded bool
	// Detail is a human-readable note; for a degraded result, the reason.
	Detail string
	// Used lists the dependencies whose results the LAB actually used.
	Used []string
}

// Outcome is a finished dependency as a dependent LAB sees it.
type Outcome struct {
	Status Status
	Detail string
	// Value is nil when the LAB FAILED or was SKIPPED.
	Value Value
}

// Inputs is everything a LAB may read.
type Inputs struct {
	Request Request
	// Deps holds the outcome of every LAB in DependsOn.
	Deps map[string]Outcome
}

// dep returns the value of dependency id when it has one of type T.
func dep[T Value](in Inputs, id string) (T, Outcome, bool) {
	o, ok := in.Deps[id]
	if !ok || o.Value == nil {
		var zero T
		return zero, o, false
	}
	v, ok := o.Value.(T)
	return v, o, ok
}

// missing describes a dependency that produced no value.
func missing(id string, o Outcome) string {
	if o.Status == 0 {
		return id + " did not run"
	}
	if o.Detail == "" {
		return id + " " + o.Status.String()
	}
	return id + " " + o.Status.String() + ": " + o.Detail
}

// Request is one orchestration request in domain terms. Options must have
// been completed with WithDefaults and validated.
type Request struct {
	Namespace string
	Query     string
	SessionID string
	Goal      string
	// CurrentEmotion is the caller's state; nil when none was given.
	CurrentEmotion *Emotion
	// AsOf is the "now" of the run.
	AsOf    time.Time
	Options Options
}

// base carries the static description shared by every LAB.
type base struct {
	id, name    string
	deps        []string
	requires    []string
	budget      time.Duration
	description string
}

func (b base) ID() string            { return b.id }
func (b base) Name() string          { return b.name }
func (b base) Layer() int            { return 2 }
func (b base) DependsOn() []string   { return append([]string(nil), b.deps...) }
func (b base) Requires() []string    { return append([]string(nil), b.requires...) }
func (b base) Budget() time.Duration { return b.budget }
func (b base) Description() string   { return b.description }

// Budgets. The longest chain, LAB_011 → LAB_001 → LAB_010 → LAB_007 →
// LAB_006, sums to 300 ms, the default run budget; the scheduler scales
// them in proportion to a run's budget, shorter or longer. LAB_011 and LAB_007 wait on
// memory; the others compute in microseconds.
const (
	budgetRecall  = 180 * time.Millisecond
	budgetPreload = 60 * time.Millisecond
	budgetCompute = 20 * time.Millisecond
)

// Catalog returns the nine LABs in dependency order, wired to mem (for
// LAB_011 and LAB_007) and acc (for LAB_009). Either may be nil: the LABs
// that need them then degrade.
func Catalog(mem Memory, acc AccessRecorder) []Lab {
	return []Lab{
		NewWorkingMemory(mem),
		NewSalience(),
		NewAttention(),
		NewReconsolidation(acc),
		NewPreload(mem),
		NewContagion(),
		NewRegulation(),
		NewFutureThinking(),
		NewMetacognition(),
	}
}
