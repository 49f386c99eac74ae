// Package recall turns a recall request into what the store needs to answer
// it: the query's content terms, a safe OR tsquery, an escaped LIKE pattern,
// and the scoring rules (weights, recency decay) that rank the results. It is
// pure Go: the store runs the SQL and mirrors the formulas documented here.
//
// Ranking (MatchMode Ranked) scores every candidate episode as
//
//	total = w_rel·relevance + w_imp·importance + w_rec·recency
//
// where relevance is the episode's BM25 score for the query's terms divided
// by the best score among the candidates (so the best match scores 1),
// importance is the episode's own 0..1 value, and
// recency = exp(-ln2 · age / halfLife), age = AsOf − CreatedAt clamped at 0.
// The weights default to 0.8/0.1/0.1 (relevance dominates: on the
// evaluation set heavier recency and importance lowered MRR) and are normalised to sum 1; the
// half-life defaults to 7 days.
package recall

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/brainhq/brain/services/memory/episode"
)

// MatchMode selects how a query matches content.
type MatchMode int

const (
	// Ranked is full-text OR matching of the query's content words, ranked
	// by relevance, importance and recency (the default).
	Ranked MatchMode = iota
	// Substring is the prototype's semantics: content contains the whole
	// query, case-insensitively, with %, _ and \ taken literally; ordered by
	// importance, then recency.
	Substring
)

// String names the mode for logs and cache keys.
func (m MatchMode) String() string {
	switch m {
	case Ranked:
		return "ranked"
	case Substring:
		return "substring"
	default:
		return "mode(" + strconv.Itoa(int(m)) + ")"
	}
}

// Default scoring parameters.
const (
	DefaultRelevanceWeight  = 0.8
	DefaultImportanceWeight = 0.1
	DefaultRecencyWeight    = 0.1
	DefaultHalfLife         = 7 * 24 * time.Hour
)

// Weights weigh the parts of a ranked score. Negative weights count as 0;
// all zero means the defaults (relevance 0.8, importance 0.1, recency 0.1).
// Normalized scales them to sum 1.
type Weights struct {
	Relevance, Importance, Recency float64
}

// DefaultWeights returns the documented defaults.
func DefaultWeights() Weights {
	return Weights{DefaultRelevanceWeight, DefaultImportanceWeight, DefaultRecencyWeight}
}

// Normalized returns the weights clamped at 0 and scaled to sum 1, or the
// defaults when they sum to 0 (or are not finite).
func (w Weights) Normalized() Weights {
	clamp := func(v float64) float64 {
		if v > 0 && !math.IsInf(v, 1) {
			return v
		}
		return 0
	}
	w = Weights{clamp(w.Relevance), clamp(w.Importance), clamp(w.Recency)}
	sum := w.Relevance + w.Importance + w.Recency
	if !(sum > 0) || math.IsInf(sum, 0) {
		return DefaultWeights()
	}
	return Weights{w.Relevance / sum, w.Importance / sum, w.Recency / sum}
}

// Total is the weighted sum of the parts with w as given (normalise first).
func (w Weights) Total(s Scores) float64 {
	return w.Relevance*s.Relevance + w.Importance*s.Importance + w.Recency*s.Recency
}

// Recency is exp(-ln2·age/halfLife): 1 for age ≤ 0 (future episodes are
// clamped), 0.5 at one half-life. A non-positive halfLife means the default.
func Recency(age, halfLife time.Duration) float64 {
	if halfLife <= 0 {
		halfLife = DefaultHalfLife
	}
	if age <= 0 {
		return 1
	}
	return math.Exp(-math.Ln2 * age.Seconds() / halfLife.Seconds())
}

// Query is one recall request, in domain terms.
type Query struct {
	Namespace string
	Text      string
	// SessionID, when set, restricts recall to one session.
	SessionID string
	// Speaker, when set, restricts recall to one speaker's episodes.
	Speaker string
	// Metadata, when set, keeps only episodes whose metadata holds every
	// one of these pairs.
	Metadata map[string]string
	// Limit is 1..episode.MaxLimit; 0 means episode.DefaultLimit.
	Limit int
	// CreatedAfter (inclusive) and CreatedBefore (exclusive) bound CreatedAt.
	CreatedAfter, CreatedBefore *time.Time
	// MinImportance, when set, keeps only episodes at least this important.
	MinImportance *float64
	Mode          MatchMode
	// AsOf is the "now" of recency; zero means the store's clock.
	AsOf    time.Time
	Weights Weights
	// HalfLife of recency; 0 means DefaultHalfLife.
	HalfLife time.Duration
}

// Normalized returns q with defaults filled in: Limit (clamped to
// 1..episode.MaxLimit), Weights (normalised) and HalfLife. AsOf is left as
// given, because "now" is the store's to choose.
func (q Query) Normalized() Query {
	switch {
	case q.Limit <= 0:
		q.Limit = episode.DefaultLimit
	case q.Limit > episode.MaxLimit:
		q.Limit = episode.MaxLimit
	}
	q.Weights = q.Weights.Normalized()
	if q.HalfLife <= 0 {
		q.HalfLife = DefaultHalfLife
	}
	return q
}

// Filtered reports whether q restricts candidates beyond its namespace
// (session, time range or minimum importance).
func (q Query) Filtered() bool {
	return q.SessionID != "" || q.Speaker != "" || len(q.Metadata) > 0 || q.CreatedAfter != nil || q.CreatedBefore != nil || q.MinImportance != nil
}

// Key is a canonical cache key of the question q asks: two queries with
// equal keys get the same candidates from the same data. Ranked queries are
// keyed by their content terms (so "The cats?" and "cats" share a key);
// substring queries by their exact text. AsOf is not part of it: it only
// moves recency, which Rescore recomputes, and a caller asking "as of now"
// (the orchestrator, every run) asks the same question each time.
func (q Query) Key() string {
	q = q.Normalized()
	var b strings.Builder
	field := func(name, value string) {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(value))
		b.WriteByte(';')
	}
	timeField := func(name string, t *time.Time) {
		if t != nil {
			field(name, t.UTC().Format(time.RFC3339Nano))
		}
	}
	field("ns", q.Namespace)
	field("mode", q.Mode.String())
	if q.Mode == Substring {
		field("text", q.Text)
	} else {
		// Time expressions resolve against as_of ("last week" is another
		// week next Monday): the resolved windows are part of the question,
		// the clock otherwise is not.
		asOf := q.AsOf
		if asOf.IsZero() {
			asOf = time.Now()
		}
		an := Analyze(q.Text, asOf)
		slices.Sort(an.Terms)
		field("terms", strings.Join(an.Terms, " "))
		for _, w := range an.Windows {
			field("when", w.Start.UTC().Format(time.RFC3339)+"/"+w.End.UTC().Format(time.RFC3339))
		}
	}
	field("session", q.SessionID)
	if q.Speaker != "" {
		field("speaker", q.Speaker)
	}
	for _, k := range slices.Sorted(maps.Keys(q.Metadata)) {
		field("meta "+strconv.Quote(k), q.Metadata[k])
	}
	field("limit", strconv.Itoa(q.Limit))
	timeField("after", q.CreatedAfter)
	timeField("before", q.CreatedBefore)
	if q.MinImportance != nil {
		field("minimp", strconv.FormatFloat(*q.MinImportance, 'g', -1, 64))
	}
	w := q.Weights
	field("weights", fmt.Sprintf("%g/%g/%g", w.Relevance, w.Importance, w.Recency))
	field("halflife", q.HalfLife.String())
	return b.String()
}

// Scores explains a ranked score; each part is 0..1.
type Scores struct {
	Relevance, Importance, Recency, Total float64
	// OwnWords and Context split Relevance: the episode's own words, and
	// the words of its session neighbours (see ContextFromPrevious).
	OwnWords, Context float64
	// Time is the closeness to a time the query names (0 when it names
	// none).
	Time float64
	// Speaker is 1 when the query names the episode's speaker.
	Speaker float64
	// SpeakerNamed says the query named a speaker of the namespace (so the
	// speaker part was weighed into Total).
	SpeakerNamed bool
}

// Result is one recalled episode with its scores.
type Result struct {
	Episode episode.Episode
	Scores  Scores
}

// Rescore returns results, an answer to a query with q's key computed at
// another "now", as the store would score and order them at q.AsOf: recency
// and total recomputed with q's weights and half-life, ranked answers
// re-sorted (total, then newest, then id, as the store sorts), cut at q's
// limit. Relevance (relative to the best candidate) and importance do not
// depend on the clock, so only recency moves. Episodes that were outside the
// stored answer cannot enter it: it is a stand-in, served degraded. A zero
// AsOf leaves the scores as they are. results is not modified.
func Rescore(results []Result, q Query) []Result {
	q = q.Normalized()
	out := slices.Clone(results)
	if !q.AsOf.IsZero() {
		w := q.Weights.WithTime(q.Mode == Ranked && len(Analyze(q.Text, q.AsOf).Windows) > 0)
		for i := range out {
			s := &out[i].Scores
			s.Recency = Recency(q.AsOf.Sub(out[i].Episode.CreatedAt), q.HalfLife)
			s.Total = w.Total(*s)
			if s.SpeakerNamed {
				s.Total = (s.Total + DefaultSpeakerWeight*s.Speaker) / (1 + DefaultSpeakerWeight)
			}
		}
		if q.Mode == Ranked {
			// Substring answers are ordered by importance and age, which
			// the clock does not change.
			slices.SortStableFunc(out, func(a, b Result) int {
				if c := cmp.Compare(b.Scores.Total, a.Scores.Total); c != 0 {
					return c
				}
				if c := b.Episode.CreatedAt.Compare(a.Episode.CreatedAt); c != 0 {
					return c
				}
				return strings.Compare(a.Episode.ID, b.Episode.ID)
			})
		}
	}
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}
