package recall

import (
	"math"
	"time"

	"github.com/brainhq/brain/services/memory/timeexpr"
)

// TimeWindow is a soft time preference taken from a query: episodes written
// inside [Start, End) score 1, those outside decay exponentially with their
// distance, with time constant Before on the early side and After on the
// late side. After is the longer: people talk about an event in the days
// after it ("last weekend"), less often before it.
type TimeWindow struct {
	Start, End    time.Time
	Before, After time.Duration
}

// slack is the (Before, After) decay of a window of each granularity: a
// named day reaches into the next few days, a named year by a month or two.
var slack = map[timeexpr.Granularity][2]time.Duration{
	timeexpr.Day:    {24 * time.Hour, 4 * 24 * time.Hour},
	timeexpr.Week:   {2 * 24 * time.Hour, 5 * 24 * time.Hour},
	timeexpr.Month:  {5 * 24 * time.Hour, 10 * 24 * time.Hour},
	timeexpr.Season: {10 * 24 * time.Hour, 20 * 24 * time.Hour},
	timeexpr.Year:   {30 * 24 * time.Hour, 60 * 24 * time.Hour},
}

// Score is the window's preference for an episode written at t: 1 inside,
// exp(−distance/decay) outside.
func (w TimeWindow) Score(t time.Time) float64 {
	switch {
	case t.Before(w.Start):
		return math.Exp(-w.Start.Sub(t).Seconds() / w.Before.Seconds())
	case !t.Before(w.End):
		return math.Exp(-t.Sub(w.End).Seconds() / w.After.Seconds())
	}
	return 1
}

// Reach is the span outside which an episode's time score is below
// exp(-3) (5%): where time-only candidates are looked for.
func (w TimeWindow) Reach() (from, to time.Time) {
	return w.Start.Add(-3 * w.Before), w.End.Add(3 * w.After)
}

// TimeScore is the best score of t over the windows, 0 without windows.
func TimeScore(t time.Time, ws []TimeWindow) float64 {
	best := 0.0
	for _, w := range ws {
		best = max(best, w.Score(t))
	}
	return best
}

// Analysis is what ranked recall takes from a query's text.
type Analysis struct {
	// Terms are the content words left once time expressions are removed.
	Terms []string
	// Windows are the query's time expressions, resolved against as_of.
	Windows []TimeWindow
}

// Analyze splits a ranked query into its content terms and its time
// preferences, relative to asOf (which must be set).
func Analyze(text string, asOf time.Time) Analysis {
	p := timeexpr.Parse(text, asOf)
	a := Analysis{Terms: Terms(p.Rest)}
	for _, r := range p.Ranges {
		s := slack[r.Granularity]
		a.Windows = append(a.Windows, TimeWindow{Start: r.Start, End: r.End, Before: s[0], After: s[1]})
	}
	return a
}

// Conversational context: an episode's relevance adds these shares of the
// raw word scores of the episode just before it and just after it in its
// session. The previous one weighs more: an answer follows its question.
const (
	ContextFromPrevious = 0.8
	ContextFromNext     = 0.1
	// ContextAfterStatement scales ContextFromPrevious when the previous
	// episode asks nothing (has no question mark): a reply to a statement
	// rarely holds what the statement was about.
	ContextAfterStatement = 0.1
)

// MinContextShare is the least context (relative to the best candidate's
// relevance) that keeps a candidate sharing no word with the query.
const MinContextShare = 0.15

// DefaultSpeakerWeight weighs the speaker part (1 when the query names the
// episode's speaker) against the rest (which sums to 1), when the query
// names a speaker of the namespace; the total is then divided by 1 plus
// this weight.
const DefaultSpeakerWeight = 0.3

// NamedSpeakerTermWeight scales the word weight of a named speaker's name:
// it says who the question is about, which the speaker part rewards, and
// counts a little where content mentions the name.
const NamedSpeakerTermWeight = 0.3

// DefaultTimeWeight weighs the time score against relevance (0.8),
// importance and recency (0.1 each) when the query names a time.
const DefaultTimeWeight = 0.8

// BlendWeights are the normalised weights of a ranked total.
type BlendWeights struct {
	Relevance, Importance, Recency, Time float64
}

// WithTime returns the weights of a total, normalised to sum 1, with a time
// part when the query named a time.
func (w Weights) WithTime(named bool) BlendWeights {
	w = w.Normalized()
	if !named {
		return BlendWeights{Relevance: w.Relevance, Importance: w.Importance, Recency: w.Recency}
	}
	sum := 1 + float64(DefaultTimeWeight)
	return BlendWeights{w.Relevance / sum, w.Importance / sum, w.Recency / sum, float64(DefaultTimeWeight) / sum}
}

// Total is the weighted sum of the parts of s.
func (w BlendWeights) Total(s Scores) float64 {
	return w.Relevance*s.Relevance + w.Importance*s.Importance + w.Recency*s.Recency + w.Time*s.Time
}

// Contribution is how much each part of a ranked score added to its total.
type Contribution struct {
	OwnWords, Context, Speaker, Time, Importance, Recency float64
}

// Contributions splits each result's total into its parts, with the
// weights the store used for q at asOf; substring answers (not weighed by
// words, context, speaker or time) split only importance and recency.
func Contributions(results []Result, q Query, asOf time.Time) []Contribution {
	q = q.Normalized()
	w := q.Weights.WithTime(q.Mode == Ranked && len(Analyze(q.Text, asOf).Windows) > 0)
	out := make([]Contribution, len(results))
	for i, r := range results {
		s := r.Scores
		den := 1.0
		if s.SpeakerNamed {
			den += DefaultSpeakerWeight
		}
		out[i] = Contribution{
			OwnWords:   w.Relevance * s.OwnWords / den,
			Context:    w.Relevance * s.Context / den,
			Speaker:    DefaultSpeakerWeight * s.Speaker / den,
			Time:       w.Time * s.Time / den,
			Importance: w.Importance * s.Importance / den,
			Recency:    w.Recency * s.Recency / den,
		}
		if q.Mode == Substring {
			out[i].OwnWords = w.Relevance * s.Relevance
		}
	}
	return out
}
