package labs

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestFutureThinking(t *testing.T) {
	day := 24 * time.Hour
	item := func(id, content string, valence float64, age time.Duration) AttentionItem {
		return AttentionItem{Item: BufferItem{EpisodeID: id, Content: content, CreatedAt: asOf.Add(-age)}, Valence: valence}
	}
	att := Attention{Items: []AttentionItem{
		item("i0", "deploy pipeline went great", 0.7, 2*day), // relevant, success
		item("i1", "deploy failed badly", -0.6, 4*day),       // relevant, failure
		item("i2", "lunch with bob", 0.5, day),               // not relevant
		{Item: BufferItem{EpisodeID: "i3", Content: "shipping notes", Metadata: map[string]string{"project": "pipeline"}}}, // relevant, neutral
		{Item: BufferItem{Content: "ship the deploy pipeline", Synthetic: true}, Valence: 0.9},                             // not a memory
		item("i5", "ship it", 0.3, 6*day), // relevant, success
	}}
	tests := []struct {
		name         string
		goal         string
		deps         map[string]Outcome
		wantP        float64
		wantS, wantF int
		wantIDs      []string
		wantHorizon  time.Duration
		degraded     bool
	}{
		// Goal keywords [ship, deploy, pipeline]. Evidence i0 (+), i1 (−), i5 (+):
		// p = (2+1)/(3+2) = 0.6; horizon = (2+4+6)/3 = 4 days.
		{"evidence", "ship the deploy pipeline", map[string]Outcome{IDAttention: ok(att)},
			0.6, 2, 1, []string{"i0", "i1", "i5"}, 4 * day, false},
		// Nothing relevant: p = (0+1)/(0+2) = 0.5.
		{"no relevant episode", "learn the cello", map[string]Outcome{IDAttention: ok(att)},
			0.5, 0, 0, nil, 0, false},
		{"no goal", "", map[string]Outcome{IDAttention: ok(att)}, 0.5, 0, 0, nil, 0, false},
		{"goal without attention", "ship it", map[string]Outcome{IDAttention: {Status: StatusSkipped}},
			0.5, 0, 0, nil, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := request("q")
			req.Goal = tc.goal
			out, err := NewFutureThinking().Run(context.Background(), Inputs{Request: req, Deps: tc.deps})
			if err != nil {
				t.Fatal(err)
			}
			f := out.Value.(FutureThinking)
			near(t, "p", f.SuccessProbability, tc.wantP)
			if f.Successes != tc.wantS || f.Failures != tc.wantF || !slices.Equal(f.EvidenceIDs, tc.wantIDs) {
				t.Errorf("got %d/%d %v, want %d/%d %v", f.Successes, f.Failures, f.EvidenceIDs, tc.wantS, tc.wantF, tc.wantIDs)
			}
			if f.Horizon != tc.wantHorizon || f.Goal != tc.goal {
				t.Errorf("horizon = %s goal = %q", f.Horizon, f.Goal)
			}
			if out.Degraded != tc.degraded || out.Detail == "" {
				t.Errorf("degraded = %v (%q), want %v", out.Degraded, out.Detail, tc.degraded)
			}
		})
	}
}
