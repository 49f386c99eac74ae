package recall

import (
	"math"
	"testing"
	"time"

	"github.com/brainhq/brain/services/memory/episode"
)

func TestWeightsNormalized(t *testing.T) {
	tests := []struct {
		name string
		in   Weights
		want Weights
	}{
		{"zero means defaults", Weights{}, Weights{0.8, 0.1, 0.1}},
		{"scaled to sum 1", Weights{1, 1, 2}, Weights{0.25, 0.25, 0.5}},
		{"negative clamped", Weights{-1, 1, 0}, Weights{0, 1, 0}},
		{"all negative means defaults", Weights{-1, -1, -1}, Weights{0.8, 0.1, 0.1}},
		{"NaN and Inf ignored", Weights{math.NaN(), math.Inf(1), 1}, Weights{0, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.Normalized()
			for _, p := range [][2]float64{{got.Relevance, tt.want.Relevance}, {got.Importance, tt.want.Importance}, {got.Recency, tt.want.Recency}} {
				if math.Abs(p[0]-p[1]) > 1e-12 {
					t.Fatalf("Normalized(%+v) = %+v, want %+v", tt.in, got, tt.want)
				}
			}
		})
	}
}

func TestRecency(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		age, halfLife time.Duration
		want          float64
	}{
		{0, 7 * day, 1},
		{-day, 7 * day, 1},
		{7 * day, 7 * day, 0.5},
		{14 * day, 7 * day, 0.25},
		{7 * day, 0, 0.5},
		{time.Hour, time.Hour, 0.5},
	}
	for _, tt := range tests {
		if got := Recency(tt.age, tt.halfLife); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("Recency(%v, %v) = %v, want %v", tt.age, tt.halfLife, got, tt.want)
		}
	}
}

func TestTotal(t *testing.T) {
	w := Weights{1, 1, 2}.Normalized()
	if got := w.Total(Scores{Relevance: 1, Importance: 0.5, Recency: 0.25}); math.Abs(got-(0.25+0.125+0.125)) > 1e-12 {
		t.Fatalf("Total = %v", got)
	}
}

func TestNormalizedQuery(t *testing.T) {
	q := Query{}.Normalized()
	if q.Limit != episode.DefaultLimit || q.HalfLife != DefaultHalfLife || q.Weights != DefaultWeights() {
		t.Fatalf("defaults not filled: %+v", q)
	}
	if got := (Query{Limit: 1000}).Normalized().Limit; got != episode.MaxLimit {
		t.Fatalf("limit 1000 normalised to %d", got)
	}
}

func TestKey(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	minImp := 0.3
	base := Query{Namespace: "ns", Text: "Where is my cat?", AsOf: at}
	same := []Query{
		{Namespace: "ns", Text: "cat where my is", AsOf: at},
		{Namespace: "ns", Text: "CAT!!", AsOf: at.In(time.FixedZone("x", 3600)), Limit: 7},
		{Namespace: "ns", Text: "cat", AsOf: at, Weights: Weights{8, 1, 1}, HalfLife: DefaultHalfLife},
		// The clock is not the question: Rescore moves recency.
		{Namespace: "ns", Text: "cat", AsOf: at.Add(time.Second)},
		{Namespace: "ns", Text: "cat"},
	}
	for _, q := range same {
		if q.Key() != base.Key() {
			t.Errorf("Key(%+v) = %s, want same as %s", q, q.Key(), base.Key())
		}
	}
	differ := []Query{
		{Namespace: "ns2", Text: "cat", AsOf: at},
		{Namespace: "ns", Text: "dog", AsOf: at},
		{Namespace: "ns", Text: "cat", AsOf: at, Limit: 8},
		{Namespace: "ns", Text: "cat", AsOf: at, SessionID: "s"},
		{Namespace: "ns", Text: "cat", AsOf: at, CreatedAfter: &at},
		{Namespace: "ns", Text: "cat", AsOf: at, CreatedBefore: &at},
		{Namespace: "ns", Text: "cat", AsOf: at, MinImportance: &minImp},
		{Namespace: "ns", Text: "cat", AsOf: at, Mode: Substring},
		{Namespace: "ns", Text: "cat", AsOf: at, Weights: Weights{1, 0, 0}},
		{Namespace: "ns", Text: "cat", AsOf: at, HalfLife: time.Hour},
	}
	seen := map[string]int{base.Key(): -1}
	for i, q := range differ {
		k := q.Key()
		if j, dup := seen[k]; dup {
			t.Errorf("query %d has the same key as %d: %s", i, j, k)
		}
		seen[k] = i
	}
	// Substring keys on the exact text: case and punctuation matter there.
	a := Query{Namespace: "ns", Text: "Cat?", Mode: Substring}
	b := Query{Namespace: "ns", Text: "cat", Mode: Substring}
	if a.Key() == b.Key() {
		t.Error("substring queries with different text share a key")
	}
	// Namespace quoting keeps fields apart.
	c := Query{Namespace: `ns";mode=x`, Text: "cat"}
	if c.Key() == (Query{Namespace: "ns", Text: "cat"}).Key() {
		t.Error("namespace text leaks into other fields")
	}
}
