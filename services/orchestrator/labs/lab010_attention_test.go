package labs

import (
	"context"
	"testing"
	"time"
)

func TestAttention(t *testing.T) {
	// Query "why did the deploy fail": keywords [deploy, fail].
	// x: relevance 0.8, 7 days old → recency 0.5, salience 0.5,
	//    keywords {deploy, failed, friday} → overlap 1/2 ("failed" ≠ "fail").
	// y: relevance 0.6, created at as_of → recency 1, salience 0,
	//    metadata topic=deploy → overlap 1/2.
	x := BufferItem{EpisodeID: "x", Content: "deploy failed friday", CreatedAt: asOf.Add(-7 * 24 * time.Hour),
		Scores: Scores{Relevance: 0.8}}
	y := BufferItem{EpisodeID: "y", Content: "lunch notes", CreatedAt: asOf, Metadata: map[string]string{"topic": "deploy"},
		Scores: Scores{Relevance: 0.6}}
	sal := func(items ...BufferItem) Salience {
		s := Salience{}
		for _, it := range items {
			v := 0.0
			if it.EpisodeID == "x" {
				v = 0.5
			}
			s.Items = append(s.Items, ItemSalience{EpisodeID: it.EpisodeID, Salience: v, Valence: -v})
		}
		return s
	}
	tests := []struct {
		name      string
		buffer    []BufferItem
		weights   AttentionWeights
		noSal     bool
		wantOrder []string
		wantScore map[string]float64
		wantAtt   map[string]float64
	}{
		{
			// x: 0.5·0.8 + 0.2·0.5 + 0.2·0.5 + 0.1·0.5 = 0.4 + 0.1 + 0.1 + 0.05 = 0.65
			// y: 0.5·0.6 + 0.2·1   + 0.2·0   + 0.1·0.5 = 0.3 + 0.2 + 0   + 0.05 = 0.55
			// softmax at T = 0.1: e^0 = 1, e^−1 = 0.367879; x = 1/1.367879 = 0.731059.
			name: "default weights", buffer: []BufferItem{x, y}, weights: DefaultWeights(),
			wantOrder: []string{"x", "y"},
			wantScore: map[string]float64{"x": 0.65, "y": 0.55},
			wantAtt:   map[string]float64{"x": 0.731059, "y": 0.268941},
		},
		{
			name: "buffer re-ordered by attention", buffer: []BufferItem{y, x}, weights: DefaultWeights(),
			wantOrder: []string{"x", "y"},
			wantAtt:   map[string]float64{"x": 0.731059, "y": 0.268941},
		},
		{
			// Weights (1, 1, 0, 0) normalise to (0.5, 0.5, 0, 0):
			// x: 0.4 + 0.25 = 0.65; y: 0.3 + 0.5 = 0.8; e^−1.5 = 0.223130;
			// y = 1/1.223130 = 0.817574.
			name: "weights normalised", buffer: []BufferItem{x, y}, weights: AttentionWeights{Relevance: 1, Recency: 1},
			wantOrder: []string{"y", "x"},
			wantScore: map[string]float64{"x": 0.65, "y": 0.8},
			wantAtt:   map[string]float64{"y": 0.817574, "x": 0.182426},
		},
		{
			// Without LAB_001 salience is 0: x = 0.4 + 0.1 + 0.05 = 0.55, y = 0.55;
			// equal attention 0.5 each, buffer order kept.
			name: "missing salience", buffer: []BufferItem{x, y}, weights: DefaultWeights(), noSal: true,
			wantOrder: []string{"x", "y"},
			wantScore: map[string]float64{"x": 0.55, "y": 0.55},
			wantAtt:   map[string]float64{"x": 0.5, "y": 0.5},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := request("why did the deploy fail")
			req.Options.Weights = tc.weights
			deps := map[string]Outcome{IDWorkingMemory: ok(WorkingMemory{Items: tc.buffer})}
			if tc.noSal {
				deps[IDSalience] = Outcome{Status: StatusFailed, Detail: "boom"}
			} else {
				deps[IDSalience] = ok(sal(tc.buffer...))
			}
			out, err := NewAttention().Run(context.Background(), Inputs{Request: req, Deps: deps})
			if err != nil {
				t.Fatal(err)
			}
			items := out.Value.(Attention).Items
			sum := 0.0
			for i, it := range items {
				if it.Item.EpisodeID != tc.wantOrder[i] {
					t.Errorf("position %d = %q, want %q", i, it.Item.EpisodeID, tc.wantOrder[i])
				}
				if tc.buffer[it.Index].EpisodeID != it.Item.EpisodeID {
					t.Errorf("index %d does not point at %q", it.Index, it.Item.EpisodeID)
				}
				if s, ok := tc.wantScore[it.Item.EpisodeID]; ok {
					near(t, it.Item.EpisodeID+" score", it.Score, s)
				}
				near(t, it.Item.EpisodeID+" attention", it.Attention, tc.wantAtt[it.Item.EpisodeID])
				sum += it.Attention
			}
			near(t, "attention sum", sum, 1)
			if out.Degraded != tc.noSal {
				t.Errorf("degraded = %v, want %v", out.Degraded, tc.noSal)
			}
		})
	}
}

func TestAttentionParts(t *testing.T) {
	// One item checks each part: 14 days at a 7-day half-life → recency 0.25;
	// valence passed on from LAB_001.
	it := BufferItem{EpisodeID: "x", Content: "deploy", CreatedAt: asOf.Add(-14 * 24 * time.Hour),
		Scores: Scores{Relevance: 0.4}}
	deps := map[string]Outcome{
		IDWorkingMemory: ok(WorkingMemory{Items: []BufferItem{it}}),
		IDSalience:      ok(Salience{Items: []ItemSalience{{Salience: 0.3, Valence: -0.6}}}),
	}
	out, err := NewAttention().Run(context.Background(), Inputs{Request: request("deploy fail"), Deps: deps})
	if err != nil {
		t.Fatal(err)
	}
	a := out.Value.(Attention).Items[0]
	near(t, "recency", a.Recency, 0.25)
	near(t, "overlap", a.Overlap, 0.5)
	near(t, "valence", a.Valence, -0.6)
	// 0.5·0.4 + 0.2·0.25 + 0.2·0.3 + 0.1·0.5 = 0.2 + 0.05 + 0.06 + 0.05 = 0.36
	near(t, "score", a.Score, 0.36)
	near(t, "attention", a.Attention, 1)
}

func TestAttentionNeedsBuffer(t *testing.T) {
	_, err := NewAttention().Run(context.Background(), Inputs{Request: request("q"),
		Deps: map[string]Outcome{IDWorkingMemory: {Status: StatusFailed}}})
	if err == nil {
		t.Fatal("want an error without a working memory")
	}
}
