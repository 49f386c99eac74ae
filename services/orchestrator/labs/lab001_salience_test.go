package labs

import (
	"context"
	"testing"
)

func TestLexiconAffect(t *testing.T) {
	tests := []struct {
		text         string
		v, a, i, sal float64
		hits         int
	}{
		// happy (0.8, 0.5); intensity 1/3.
		// salience = 0.4·0.8 + 0.3·0.5 + 0.3·(1/3) = 0.32 + 0.15 + 0.1 = 0.57
		{"I am happy", 0.8, 0.5, 1.0 / 3, 0.57, 1},
		// "very" intensifies: v = 0.8·1.5 = 1.2 → clamped 1; a = 0.75; i = 1.5/3 = 0.5.
		// salience = 0.4 + 0.225 + 0.15 = 0.775
		{"very happy", 1, 0.75, 0.5, 0.775, 1},
		// negated: v = 0.8·(−0.5) = −0.4; a 0.5; i 1/3. salience = 0.16 + 0.15 + 0.1 = 0.41
		{"not happy", -0.4, 0.5, 1.0 / 3, 0.41, 1},
		// hate (−0.9, 0.9), negated by "don’t" two words before and intensified by
		// "really": v = −0.9·(−0.5)·1.5 = 0.675; a = 0.9·1.5 = 1.35 → 1; i = 1.5/3 = 0.5.
		// salience = 0.27 + 0.3 + 0.15 = 0.72
		{"I don’t really hate it", 0.675, 1, 0.5, 0.72, 1},
		// failed (−0.7, 0.6) and stressed (−0.6, 0.8): v = −0.65, a = 0.7, i = 2/3.
		// salience = 0.26 + 0.21 + 0.2 = 0.67
		{"The deploy failed and I was stressed", -0.65, 0.7, 2.0 / 3, 0.67, 2},
		// "never" is 4 words before "bad", outside the 3-word window: v = −0.5, a = 0.5, i = 1/3.
		// salience = 0.2 + 0.15 + 0.1 = 0.45
		{"never said it was bad", -0.5, 0.5, 1.0 / 3, 0.45, 1},
		// Four hits saturate intensity: great, success, happy, good.
		// v = (0.8+0.8+0.8+0.5)/4 = 0.725; a = (0.5+0.5+0.5+0.3)/4 = 0.45; i = min(1, 4/3) = 1.
		// salience = 0.29 + 0.135 + 0.3 = 0.725
		{"great success, happy and good", 0.725, 0.45, 1, 0.725, 4},
		{"meeting notes for tuesday", 0, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			a, hits := lexiconAffect(tc.text)
			if hits != tc.hits {
				t.Errorf("hits = %d, want %d", hits, tc.hits)
			}
			near(t, "valence", a.Valence, tc.v)
			near(t, "arousal", a.Arousal, tc.a)
			near(t, "intensity", a.Intensity, tc.i)
			near(t, "salience", textSalience("", tc.text).Salience, tc.sal)
		})
	}
}

func TestSalience(t *testing.T) {
	wm := WorkingMemory{Items: []BufferItem{
		{EpisodeID: "a", Content: "ignored: the affect wins", Affect: &Affect{Valence: 0.5, Arousal: 0.2, Intensity: 0.4}},
		{EpisodeID: "b", Content: "great success"},
	}}
	in := Inputs{Request: request("why did the deploy fail"), Deps: map[string]Outcome{IDWorkingMemory: ok(wm)}}
	out, err := NewSalience().Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	s := out.Value.(Salience)
	// Query: fail (−0.7, 0.6), i = 1/3 → 0.28 + 0.18 + 0.1 = 0.56.
	near(t, "query salience", s.Query.Salience, 0.56)
	if s.Query.Basis != BasisLexicon {
		t.Errorf("query basis = %q", s.Query.Basis)
	}
	// a: affect 0.4·0.5 + 0.3·0.2 + 0.3·0.4 = 0.2 + 0.06 + 0.12 = 0.38.
	near(t, "a salience", s.Items[0].Salience, 0.38)
	// b: great, success (0.8, 0.5) each; i = 2/3 → 0.32 + 0.15 + 0.2 = 0.67.
	near(t, "b salience", s.Items[1].Salience, 0.67)
	if s.Items[0].Basis != BasisAffect || s.Items[1].Basis != BasisLexicon {
		t.Errorf("bases = %q, %q", s.Items[0].Basis, s.Items[1].Basis)
	}
	if s.Items[0].EpisodeID != "a" || s.Items[1].EpisodeID != "b" {
		t.Errorf("items out of buffer order: %+v", s.Items)
	}
	if out.Degraded || len(out.Used) != 1 || out.Used[0] != IDWorkingMemory {
		t.Errorf("degraded = %v, used = %v", out.Degraded, out.Used)
	}
}

func TestSalienceWithoutBuffer(t *testing.T) {
	in := Inputs{Request: request("I am happy"), Deps: map[string]Outcome{
		IDWorkingMemory: {Status: StatusFailed, Detail: "exceeded its budget"}}}
	out, err := NewSalience().Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	s := out.Value.(Salience)
	if !out.Degraded || len(s.Items) != 0 || len(out.Used) != 0 {
		t.Errorf("want degraded with no items and no used signal, got %+v %+v", out, s)
	}
	near(t, "query salience", s.Query.Salience, 0.57)
}
