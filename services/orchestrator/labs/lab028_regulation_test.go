package labs

import (
	"context"
	"testing"
)

func TestRegulation(t *testing.T) {
	tests := []struct {
		name     string
		state    Emotion
		strategy string
		want     Emotion
	}{
		// v −0.5·0.5 = −0.25, a 0.8·0.6 = 0.48, i 0.6·0.7 = 0.42 → sad (v < 0, a < 0.5)
		{"high arousal, negative", Emotion{Valence: -0.5, Arousal: 0.8, Intensity: 0.6}, "down_regulate",
			Emotion{"sad", -0.25, 0.48, 0.42}},
		// v −0.25, a 0.4, i 0.5·0.8 = 0.4
		{"negative, calm", Emotion{Valence: -0.5, Arousal: 0.4, Intensity: 0.5}, "reappraise",
			Emotion{"sad", -0.25, 0.4, 0.4}},
		// a 0.9·0.75 = 0.675 → excited
		{"very high arousal, positive", Emotion{Valence: 0.5, Arousal: 0.9, Intensity: 0.5}, "steady",
			Emotion{"excited", 0.5, 0.675, 0.5}},
		{"workable", Emotion{Valence: 0.2, Arousal: 0.3, Intensity: 0.2}, "maintain",
			Emotion{"calm", 0.2, 0.3, 0.2}},
		// valence exactly −0.2 is not "< −0.2", arousal 0.7 not "> 0.8": maintain.
		{"boundary", Emotion{Valence: -0.2, Arousal: 0.7, Intensity: 0.5}, "maintain",
			Emotion{"anxious", -0.2, 0.7, 0.5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Inputs{Request: request("q"), Deps: map[string]Outcome{IDContagion: ok(Contagion{State: tc.state})}}
			out, err := NewRegulation().Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			r := out.Value.(Regulation)
			if r.Strategy != tc.strategy || r.Rule == "" {
				t.Errorf("strategy = %q (%q), want %q", r.Strategy, r.Rule, tc.strategy)
			}
			sameEmotion(t, "regulated", r.Regulated, tc.want)
		})
	}
}
