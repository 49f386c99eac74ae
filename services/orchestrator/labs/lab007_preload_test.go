package labs

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPreload(t *testing.T) {
	t0 := asOf.Add(-24 * time.Hour)
	ep := func(id string, after time.Duration) Episode {
		return Episode{ID: id, SessionID: "s1", Content: "episode " + id, CreatedAt: t0.Add(after)}
	}
	// Session s1 in time order: A, B (+10m), W (+15m), X (+30m), Y (+3h).
	session := []Episode{ep("A", 0), ep("B", 10*time.Minute), ep("W", 15*time.Minute),
		ep("X", 30*time.Minute), ep("Y", 3*time.Hour), {ID: "O", SessionID: "other", CreatedAt: t0.Add(time.Minute)}}
	buf := func(e Episode) BufferItem {
		return BufferItem{EpisodeID: e.ID, SessionID: e.SessionID, CreatedAt: e.CreatedAt}
	}
	// A and B are buffered (attention 0.6 and 0.25); C has no session.
	att := Attention{Items: []AttentionItem{
		{Item: buf(session[0]), Attention: 0.6},
		{Item: buf(session[1]), Attention: 0.25},
		{Item: BufferItem{EpisodeID: "C", CreatedAt: t0}, Attention: 0.15},
	}}
	// From A (attention 0.6), followers B(pos 0, buffered), W(1), X(2), Y(3):
	//   W = 0.6 · 1/2 · e^(−15/60) = 0.3 · 0.778801 = 0.233640
	//   X = 0.6 · 1/3 · e^(−30/60) = 0.2 · 0.606531 = 0.121306
	//   Y = 0.6 · 1/4 · e^(−3)     = 0.15 · 0.049787 = 0.007468
	// From B (attention 0.25), followers W(0), X(1), Y(2):
	//   W = 0.25 · 1   · e^(−5/60)  = 0.25 · 0.920044 = 0.230011 < 0.233640: A's kept
	//   X = 0.25 · 1/2 · e^(−20/60) = 0.125 · 0.716531 = 0.089566 < 0.121306
	type want struct {
		id, follows string
		gap         time.Duration
		conf        float64
	}
	tests := []struct {
		name      string
		k         int
		min       float64
		listErr   error
		want      []want
		wantCalls int
		degraded  bool
	}{
		{"min 0.1, k 5", 5, 0.1, nil, []want{{"W", "A", 15 * time.Minute, 0.233640},
			{"X", "A", 30 * time.Minute, 0.121306}}, 2, false},
		// k = 1: only A is looked up (page 1 + 3 buffered = 4: B, W, X, Y); W is best.
		{"k 1", 1, 0.1, nil, []want{{"W", "A", 15 * time.Minute, 0.233640}}, 1, false},
		// Default 0.3: only A qualifies as a source, and W's 0.233640 < 0.3.
		{"default min", 5, 0.3, nil, nil, 1, false},
		// Nothing reaches 0.7: no lookup at all.
		{"no source", 5, 0.7, nil, nil, 0, false},
		{"lookups fail", 5, 0.1, errors.New("unavailable"), nil, 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := &fakeMemory{episodes: session, listErr: tc.listErr}
			req := request("q")
			req.Options.PreloadK = tc.k
			req.Options.PreloadMinConfidence = &tc.min
			in := Inputs{Request: req, Deps: map[string]Outcome{IDAttention: ok(att)}}
			out, err := NewPreload(mem).Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			preds := out.Value.(Preload).Predictions
			if len(preds) != len(tc.want) {
				t.Fatalf("predictions = %+v, want %d", preds, len(tc.want))
			}
			for i, w := range tc.want {
				p := preds[i]
				if p.EpisodeID != w.id || p.FollowsEpisodeID != w.follows || p.Gap != w.gap || p.SessionID != "s1" {
					t.Errorf("prediction %d = %+v, want %+v", i, p, w)
				}
				near(t, w.id+" confidence", p.Confidence, w.conf)
				if p.Content != "episode "+w.id {
					t.Errorf("content = %q", p.Content)
				}
			}
			if len(mem.listCalls) != tc.wantCalls {
				t.Errorf("ListEpisodes calls = %d, want %d", len(mem.listCalls), tc.wantCalls)
			}
			for _, q := range mem.listCalls {
				if q.SessionID != "s1" || q.Namespace != "ns" || q.Limit != tc.k+len(att.Items) {
					t.Errorf("list query = %+v", q)
				}
			}
			if out.Degraded != tc.degraded {
				t.Errorf("degraded = %v (%s), want %v", out.Degraded, out.Detail, tc.degraded)
			}
		})
	}
}
