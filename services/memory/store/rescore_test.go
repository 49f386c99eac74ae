package store

import (
	"math"
	"testing"
	"time"

	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/recall"
)

// TestRescoreMatchesTheStore: an answer recalled at one as_of and re-scored
// by recall.Rescore at another equals what the store answers at that other
// as_of (same candidates: the limit holds them all), scores and order.
func TestRescoreMatchesTheStore(t *testing.T) {
	s, _ := newStore(t)
	ns := "rescore"
	imp := func(e episode.Episode, v float64) episode.Episode { e.Importance = v; return e }
	mustWrite(t, s,
		imp(ep(ns, "the harbour crane broke down", 3), 0.9),
		imp(ep(ns, "harbour fees went up", 0.01), 0.2),
		imp(ep(ns, "a harbour seal and a harbour crane", 1), 0.5),
		imp(ep(ns, "seal pups near the pier", 0.5), 0.7),
	)
	for _, mode := range []recall.MatchMode{recall.Ranked, recall.Substring} {
		q := recall.Query{Namespace: ns, Text: "harbour", Mode: mode, Limit: 10,
			Weights: recall.Weights{Relevance: 0.3, Importance: 0.1, Recency: 0.6}, HalfLife: 12 * time.Hour, AsOf: t0}
		stored, err := s.Recall(testCtx(t), q)
		if err != nil {
			t.Fatal(err)
		}
		reordered := false
		for _, later := range []time.Duration{time.Minute, 36 * time.Hour, 30 * 24 * time.Hour} {
			q2 := q
			q2.AsOf = t0.Add(later)
			want, err := s.Recall(testCtx(t), q2)
			if err != nil {
				t.Fatal(err)
			}
			got := recall.Rescore(stored, q2)
			if len(got) != len(want) || len(want) != 3 {
				t.Fatalf("%s +%s: %d rescored, store answered %d (want 3)", mode, later, len(got), len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				reordered = reordered || w.Episode.ID != stored[i].Episode.ID
				if g.Episode.ID != w.Episode.ID || math.Abs(g.Scores.Total-w.Scores.Total) > 1e-9 || math.Abs(g.Scores.Recency-w.Scores.Recency) > 1e-9 {
					t.Errorf("%s +%s #%d: rescored %q %+v, store %q %+v", mode, later, i, g.Episode.Content, g.Scores, w.Episode.Content, w.Scores)
				}
			}
		}
		if mode == recall.Ranked && !reordered {
			t.Error("the ranked order never changed with as_of: the test does not exercise re-sorting")
		}
	}
}
