package labs

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestCatalog(t *testing.T) {
	cat := Catalog(nil, nil)
	want := []string{"LAB_011", "LAB_001", "LAB_010", "LAB_009", "LAB_007", "LAB_008", "LAB_028", "LAB_012", "LAB_006"}
	seen := map[string]bool{}
	for i, l := range cat {
		if l.ID() != want[i] {
			t.Errorf("catalog[%d] = %s, want %s", i, l.ID(), want[i])
		}
		for _, d := range l.DependsOn() {
			if !seen[d] {
				t.Errorf("%s depends on %s, which does not come before it", l.ID(), d)
			}
		}
		for _, r := range l.Requires() {
			if !slices.Contains(l.DependsOn(), r) {
				t.Errorf("%s requires %s without depending on it", l.ID(), r)
			}
		}
		if l.Name() == "" || l.Description() == "" || l.Budget() <= 0 || l.Layer() != 2 {
			t.Errorf("%s is incompletely described", l.ID())
		}
		seen[l.ID()] = true
	}
	// LAB_006 waits for every other LAB.
	if got := cat[8].DependsOn(); len(got) != 8 {
		t.Errorf("LAB_006 depends on %v", got)
	}
	// The critical path 011 → 001 → 010 → 007 → 006 is the default run budget.
	if sum := cat[0].Budget() + cat[1].Budget() + cat[2].Budget() + cat[4].Budget() + cat[8].Budget(); sum != 300*time.Millisecond {
		t.Errorf("critical path = %s, want 300ms", sum)
	}
}

func TestOptions(t *testing.T) {
	d := DefaultOptions()
	if d.RecallLimit != 7 || d.CandidatePool != 50 || d.RecencyHalfLife != 7*24*time.Hour ||
		d.ContentMaxChars != 280 || d.PreloadK != 5 || *d.PreloadMinConfidence != 0.3 || d.Weights != DefaultWeights() {
		t.Errorf("defaults = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	zero := 0.0
	if got := (Options{PreloadMinConfidence: &zero}).WithDefaults(); *got.PreloadMinConfidence != 0 {
		t.Errorf("explicit 0 min confidence replaced by %g", *got.PreloadMinConfidence)
	}
	two := 2.0
	tests := []struct {
		name   string
		opts   Options
		fields []string
	}{
		{"limit too big", Options{RecallLimit: 21}, []string{"recall_limit"}},
		{"negative limit", Options{RecallLimit: -1}, []string{"recall_limit"}},
		{"pool below limit", Options{RecallLimit: 10, CandidatePool: 9}, []string{"candidate_pool"}},
		{"pool too big", Options{CandidatePool: 101}, []string{"candidate_pool"}},
		{"half-life too short", Options{RecencyHalfLife: time.Millisecond}, []string{"recency_half_life"}},
		{"weight out of range", Options{Weights: AttentionWeights{Salience: 1.5}}, []string{"weights.salience"}},
		{"content too short", Options{ContentMaxChars: 15}, []string{"content_max_chars"}},
		{"k too big", Options{PreloadK: 21}, []string{"preload_k"}},
		{"min confidence above 1", Options{PreloadMinConfidence: &two}, []string{"preload_min_confidence"}},
		{"capacity too big", Options{Capacity: 21}, []string{"working_memory_capacity"}},
		{"negative decay", Options{DecayTurns: -1, DecayAfter: -time.Second}, []string{"decay_turns", "decay_after"}},
		{"decay too long", Options{DecayTurns: 1001, DecayAfter: MaxDecayAfter + 1}, []string{"decay_turns", "decay_after"}},
		{"all bounds at once", Options{RecallLimit: 20, CandidatePool: 20, ContentMaxChars: 4096, PreloadK: 20,
			RecencyHalfLife: MaxRecencyHalfLife, Capacity: 20, DecayTurns: 1000, DecayAfter: MaxDecayAfter}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.WithDefaults().Validate()
			var ve ValidationError
			if tc.fields == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a ValidationError", err)
			}
			var got []string
			for _, f := range ve {
				got = append(got, f.Field)
			}
			if !slices.Equal(got, tc.fields) {
				t.Errorf("fields = %v, want %v", got, tc.fields)
			}
		})
	}
}
