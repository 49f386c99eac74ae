package labs

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Option defaults and limits (see OrchestrateOptions in the proto).
const (
	DefaultRecallLimit          = 7 // Miller's seven
	DefaultCandidatePool        = 50
	DefaultRecencyHalfLife      = 7 * 24 * time.Hour
	DefaultContentMaxChars      = 280
	DefaultPreloadK             = 5
	DefaultPreloadMinConfidence = 0.3
	// Session working memory (a run with a session id): Miller's seven,
	// and held items decay after five turns or half an hour unattended.
	DefaultCapacity   = 7
	DefaultDecayTurns = 5
	DefaultDecayAfter = 30 * time.Minute

	MaxRecallLimit     = 20
	MaxCandidatePool   = 100
	MinRecencyHalfLife = time.Second
	// MaxRecencyHalfLife is ten Julian years.
	MaxRecencyHalfLife = 10 * 8766 * time.Hour
	MinContentMaxChars = 16
	MaxContentMaxChars = 4096
	MaxPreloadK        = 20
	// MaxCapacity is memory's bound on a session buffer's items.
	MaxCapacity   = 20
	MaxDecayTurns = 1000
	MaxDecayAfter = 30 * 24 * time.Hour
)

// DefaultWeights returns LAB_010's default attention weights.
func DefaultWeights() AttentionWeights {
	return AttentionWeights{Relevance: 0.5, Recency: 0.2, Salience: 0.2, Overlap: 0.1}
}

// AttentionWeights weigh LAB_010's attention score; each 0..1.
type AttentionWeights struct {
	Relevance float64
	Recency   float64
	Salience  float64
	Overlap   float64
}

func (w AttentionWeights) sum() float64 { return w.Relevance + w.Recency + w.Salience + w.Overlap }

// normalized scales the weights to sum 1 so scores stay in 0..1 whatever
// the caller's scale; all zero means the defaults.
func (w AttentionWeights) normalized() AttentionWeights {
	s := w.sum()
	if s <= 0 {
		return DefaultWeights()
	}
	return AttentionWeights{w.Relevance / s, w.Recency / s, w.Salience / s, w.Overlap / s}
}

// Options tune a run. Zero values mean the defaults; call WithDefaults, then
// Validate, before handing them to the LABs.
type Options struct {
	// RecallLimit is the working-memory size kept by LAB_011: 1..20.
	RecallLimit int
	// CandidatePool is how many candidates LAB_011 asks memory for:
	// RecallLimit..100.
	CandidatePool int
	// RecencyHalfLife is LAB_010's recency half-life: 1 s..10 years.
	RecencyHalfLife time.Duration
	// Weights are LAB_010's attention weights; all zero means the defaults.
	Weights AttentionWeights
	// ContentMaxChars is the characters of content kept per item: 16..4096.
	ContentMaxChars int
	// PreloadK is how many predictions LAB_007 keeps: 1..20.
	PreloadK int
	// PreloadMinConfidence is LAB_007's minimum confidence 0..1; nil means
	// the default (0.3), so that 0 can be asked for.
	PreloadMinConfidence *float64
	// Capacity is the items a session's working memory keeps: 1..20.
	Capacity int
	// DecayTurns is the turns a held item survives unattended: 1..1000.
	DecayTurns int
	// DecayAfter is the time a held item survives unattended: up to 30 days.
	DecayAfter time.Duration
}

// DefaultOptions returns the defaults, complete.
func DefaultOptions() Options { return Options{}.WithDefaults() }

// WithDefaults returns o with every unset field set to its default.
func (o Options) WithDefaults() Options {
	if o.RecallLimit == 0 {
		o.RecallLimit = DefaultRecallLimit
	}
	if o.CandidatePool == 0 {
		o.CandidatePool = DefaultCandidatePool
	}
	if o.RecencyHalfLife == 0 {
		o.RecencyHalfLife = DefaultRecencyHalfLife
	}
	if o.Weights == (AttentionWeights{}) {
		o.Weights = DefaultWeights()
	}
	if o.ContentMaxChars == 0 {
		o.ContentMaxChars = DefaultContentMaxChars
	}
	if o.PreloadK == 0 {
		o.PreloadK = DefaultPreloadK
	}
	if o.PreloadMinConfidence == nil {
		v := DefaultPreloadMinConfidence
		o.PreloadMinConfidence = &v
	}
	if o.Capacity == 0 {
		o.Capacity = DefaultCapacity
	}
	if o.DecayTurns == 0 {
		o.DecayTurns = DefaultDecayTurns
	}
	if o.DecayAfter == 0 {
		o.DecayAfter = DefaultDecayAfter
	}
	return o
}

// preloadMin returns the minimum preload confidence, defaulted.
func (o Options) preloadMin() float64 {
	if o.PreloadMinConfidence == nil {
		return DefaultPreloadMinConfidence
	}
	return *o.PreloadMinConfidence
}

// FieldError names one invalid option by its proto field name.
type FieldError struct {
	Field  string // e.g. "recall_limit", "weights.salience"
	Reason string
}

// ValidationError lists every invalid option.
type ValidationError []FieldError

func (e ValidationError) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "invalid options: " + strings.Join(parts, "; ")
}

// Validate checks the ranges of defaulted options. It returns nil or a
// ValidationError naming each bad field.
func (o Options) Validate() error {
	var errs ValidationError
	intRange := func(field string, v, lo, hi int) {
		if v < lo || v > hi {
			errs = append(errs, FieldError{field, fmt.Sprintf("must be between %d and %d, got %d", lo, hi, v)})
		}
	}
	unit := func(field string, v float64) {
		if math.IsNaN(v) || v < 0 || v > 1 {
			errs = append(errs, FieldError{field, fmt.Sprintf("must be between 0 and 1, got %g", v)})
		}
	}
	intRange("recall_limit", o.RecallLimit, 1, MaxRecallLimit)
	// An out-of-range limit is reported once, not again as a bound of the pool.
	lo := min(max(o.RecallLimit, 1), MaxRecallLimit)
	intRange("candidate_pool", o.CandidatePool, lo, MaxCandidatePool)
	if o.RecencyHalfLife < MinRecencyHalfLife || o.RecencyHalfLife > MaxRecencyHalfLife {
		errs = append(errs, FieldError{"recency_half_life", fmt.Sprintf("must be between %s and %s, got %s",
			MinRecencyHalfLife, MaxRecencyHalfLife, o.RecencyHalfLife)})
	}
	unit("weights.relevance", o.Weights.Relevance)
	unit("weights.recency", o.Weights.Recency)
	unit("weights.salience", o.Weights.Salience)
	unit("weights.overlap", o.Weights.Overlap)
	intRange("content_max_chars", o.ContentMaxChars, MinContentMaxChars, MaxContentMaxChars)
	intRange("preload_k", o.PreloadK, 1, MaxPreloadK)
	unit("preload_min_confidence", o.preloadMin())
	intRange("working_memory_capacity", o.Capacity, 1, MaxCapacity)
	intRange("decay_turns", o.DecayTurns, 0, MaxDecayTurns)
	if o.DecayAfter < 0 || o.DecayAfter > MaxDecayAfter {
		errs = append(errs, FieldError{"decay_after", fmt.Sprintf("must be between 0 and %s, got %s", MaxDecayAfter, o.DecayAfter)})
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}
