package recall

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/brainhq/brain/services/memory/episode"
)

func TestRescore(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res := func(id string, created time.Time, rel, imp float64) Result {
		return Result{Episode: episode.Episode{ID: id, CreatedAt: created, Importance: imp},
			Scores: Scores{Relevance: rel, Importance: imp}}
	}
	// Stored as of t0 with recency-heavy weights and a one-hour half-life:
	// "old" (best match, a day old) below "new" (weaker, just written)...
	w := Weights{Relevance: 0.5, Recency: 0.5}
	old := res("b-old", t0.Add(-24*time.Hour), 1, 0.5)
	fresh := res("a-new", t0, 0.2, 0.5)
	tests := []struct {
		name    string
		in      []Result
		q       Query
		wantIDs []string
	}{
		{"fresh ranks first at the time it was stored", []Result{old, fresh},
			Query{AsOf: t0, Weights: w, HalfLife: time.Hour}, []string{"a-new", "b-old"}},
		// ...but a day later both are old and relevance decides.
		{"a day later relevance wins", []Result{fresh, old},
			Query{AsOf: t0.Add(24 * time.Hour), Weights: w, HalfLife: time.Hour}, []string{"b-old", "a-new"}},
		{"equal totals: newest first, then id", []Result{res("z", t0, 1, 0), res("y", t0.Add(-time.Hour), 1, 0), res("x", t0, 1, 0)},
			Query{AsOf: t0, Weights: Weights{Relevance: 1}}, []string{"x", "z", "y"}},
		{"substring keeps its importance order", []Result{res("low-new", t0, 1, 0.1), res("high-old", t0.Add(-48*time.Hour), 1, 0.9)},
			Query{AsOf: t0, Mode: Substring, Weights: Weights{Recency: 1}}, []string{"low-new", "high-old"}},
		{"cut at the limit", []Result{old, fresh},
			Query{AsOf: t0.Add(24 * time.Hour), Weights: w, HalfLife: time.Hour, Limit: 1}, []string{"b-old"}},
		{"empty stays empty", []Result{}, Query{AsOf: t0}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.in)
			got := Rescore(tt.in, tt.q)
			ids := make([]string, len(got))
			for i, r := range got {
				ids[i] = r.Episode.ID
				q := tt.q.Normalized()
				rec := Recency(q.AsOf.Sub(r.Episode.CreatedAt), q.HalfLife)
				total := q.Weights.Total(Scores{Relevance: r.Scores.Relevance, Importance: r.Scores.Importance, Recency: rec})
				if math.Abs(r.Scores.Recency-rec) > 1e-12 || math.Abs(r.Scores.Total-total) > 1e-12 {
					t.Errorf("%s scored %+v, want recency %v total %v", r.Episode.ID, r.Scores, rec, total)
				}
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("order %v, want %v", ids, tt.wantIDs)
			}
			if !slices.EqualFunc(tt.in, before, func(a, b Result) bool { return a.Episode.ID == b.Episode.ID && a.Scores == b.Scores }) {
				t.Errorf("input modified: %+v", tt.in)
			}
		})
	}
	// A zero AsOf leaves the scores alone.
	kept := Result{Episode: episode.Episode{ID: "k", CreatedAt: t0}, Scores: Scores{Relevance: 1, Recency: 0.3, Total: 0.7}}
	if got := Rescore([]Result{kept}, Query{}); got[0].Scores != kept.Scores {
		t.Errorf("zero AsOf rescored %+v", got[0].Scores)
	}
}
