package labs

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestMetacognition(t *testing.T) {
	a := BufferItem{EpisodeID: "a", Content: "deploy failed friday"}
	b := BufferItem{EpisodeID: "b", Content: "lunch notes", Metadata: map[string]string{"topic": "deploy"}}
	synth := BufferItem{Content: "why did the deploy fail on friday", Synthetic: true}
	wm := WorkingMemory{Items: []BufferItem{a, b}, Source: SourcePostgres, Candidates: 10}
	att := Attention{Items: []AttentionItem{{Item: a, Attention: 0.7}, {Item: b, Attention: 0.2}}}
	all := func() map[string]Outcome {
		return map[string]Outcome{
			IDWorkingMemory:   ok(wm),
			IDSalience:        ok(Salience{}),
			IDAttention:       ok(att),
			IDReconsolidation: ok(Reconsolidation{Touched: 2}),
			IDPreload:         ok(Preload{}),
			IDContagion:       ok(Contagion{State: Emotion{Label: "calm"}}),
			IDRegulation:      ok(Regulation{Strategy: "maintain"}),
			IDFutureThinking:  ok(FutureThinking{SuccessProbability: 0.5}),
		}
	}
	with := func(change func(map[string]Outcome)) map[string]Outcome {
		d := all()
		change(d)
		return d
	}
	// Query "why did the deploy fail on friday": keywords [deploy, fail, friday].
	// Stored items' keywords {deploy, failed, friday, lunch, notes, topic}:
	// deploy and friday found → coverage 2/3. Margin = 0.7 − 0.2 = 0.5.
	// Base = 0.6·(2/3) + 0.4·0.5 = 0.4 + 0.2 = 0.6.
	tests := []struct {
		name         string
		deps         map[string]Outcome
		wantConf     float64
		wantCoverage float64
		wantMargin   float64
		wantDegraded []string
	}{
		{"all OK", all(), 0.6, 2.0 / 3, 0.5, nil},
		// LAB_011 degraded (cache): 0.6 × 0.5 = 0.3. LAB_010 merely degraded by it costs nothing more.
		{"recall degraded", with(func(d map[string]Outcome) {
			d[IDWorkingMemory] = Outcome{Status: StatusDegraded, Detail: "cache", Value: wm}
			d[IDAttention] = Outcome{Status: StatusDegraded, Detail: "inputs", Value: att}
		}), 0.3, 2.0 / 3, 0.5, []string{IDWorkingMemory, IDAttention}},
		// Two LABs lost: 0.6 × 0.8² = 0.384.
		{"labs lost", with(func(d map[string]Outcome) {
			d[IDPreload] = Outcome{Status: StatusFailed, Detail: "exceeded its budget"}
			d[IDFutureThinking] = Outcome{Status: StatusSkipped}
		}), 0.384, 2.0 / 3, 0.5, []string{IDPreload, IDFutureThinking}},
		// A single stored item: margin = its attention 0.7; 0.6·(2/3)... only "a" is
		// buffered now: keywords {deploy, failed, friday} → coverage 2/3;
		// 0.4 + 0.4·0.7 = 0.68.
		{"single item", with(func(d map[string]Outcome) {
			d[IDWorkingMemory] = ok(WorkingMemory{Items: []BufferItem{a}, Source: SourcePostgres})
			d[IDAttention] = ok(Attention{Items: []AttentionItem{{Item: a, Attention: 0.7}}})
		}), 0.68, 2.0 / 3, 0.7, nil},
		// Only the query itself: no stored item → coverage 0, margin 0, and the
		// degraded recall halves nothing: confidence 0.
		{"synthetic only", with(func(d map[string]Outcome) {
			d[IDWorkingMemory] = Outcome{Status: StatusDegraded, Detail: "memory unreachable",
				Value: WorkingMemory{Items: []BufferItem{synth}, Source: SourceNone, Degraded: true}}
			d[IDAttention] = Outcome{Status: StatusDegraded, Value: Attention{Items: []AttentionItem{{Item: synth, Attention: 1}}}}
		}), 0, 0, 0, []string{IDWorkingMemory, IDAttention}},
		// Working memory failed, so attention was skipped: 0 × ... = 0.
		{"no working memory", with(func(d map[string]Outcome) {
			d[IDWorkingMemory] = Outcome{Status: StatusFailed, Detail: "exceeded its budget"}
			d[IDAttention] = Outcome{Status: StatusSkipped}
		}), 0, 0, 0, []string{IDWorkingMemory, IDAttention}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Inputs{Request: request("why did the deploy fail on friday"), Deps: tc.deps}
			out, err := NewMetacognition().Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			m := out.Value.(Metacognition)
			near(t, "confidence", m.Confidence, tc.wantConf)
			near(t, "coverage", m.KeywordCoverage, tc.wantCoverage)
			near(t, "margin", m.RetrievalMargin, tc.wantMargin)
			if !slices.Equal(m.DegradedLabs, tc.wantDegraded) {
				t.Errorf("degraded labs = %v, want %v", m.DegradedLabs, tc.wantDegraded)
			}
			if out.Degraded != (len(tc.wantDegraded) > 0) {
				t.Errorf("degraded = %v", out.Degraded)
			}
			if strings.Count(m.Reasoning, "\n") != 0 || !strings.Contains(m.Reasoning, "Confidence") {
				t.Errorf("reasoning is not one paragraph with its confidence: %q", m.Reasoning)
			}
			for _, id := range tc.wantDegraded {
				if !strings.Contains(m.Reasoning, id) {
					t.Errorf("reasoning does not name %s: %q", id, m.Reasoning)
				}
			}
		})
	}
}
