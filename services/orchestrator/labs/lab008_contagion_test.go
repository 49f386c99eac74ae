package labs

import (
	"context"
	"testing"
)

func TestContagion(t *testing.T) {
	sal := Salience{Items: []ItemSalience{
		{EpisodeID: "p", Valence: 0.8, Arousal: 0.5, Intensity: 0.4},
		{EpisodeID: "n", Valence: -0.6, Arousal: 0.8, Intensity: 0.6},
	}}
	// LAB_010 put "n" (buffer index 1) first with 0.75.
	att := Attention{Items: []AttentionItem{{Index: 1, Attention: 0.75}, {Index: 0, Attention: 0.25}}}
	tests := []struct {
		name       string
		sal        Salience
		att        *Attention
		caller     *Emotion
		wantState  Emotion
		wantBuffer Emotion
		wantCaller Emotion
		wantWeight float64
		degraded   bool
	}{
		{
			// buffer v = 0.25·0.8 + 0.75·(−0.6) = 0.2 − 0.45 = −0.25
			//        a = 0.25·0.5 + 0.75·0.8 = 0.125 + 0.6 = 0.725
			//        i = 0.25·0.4 + 0.75·0.6 = 0.1 + 0.45 = 0.55 → anxious (v < 0, a ≥ 0.5)
			name: "no caller: the buffer's state", sal: sal, att: &att,
			wantState:  Emotion{"anxious", -0.25, 0.725, 0.55},
			wantBuffer: Emotion{"anxious", -0.25, 0.725, 0.55},
		},
		{
			// state = 0.6·caller + 0.4·buffer:
			//   v = 0.3 − 0.1 = 0.2; a = 0.12 + 0.29 = 0.41; i = 0.18 + 0.22 = 0.40 → calm
			// the caller's empty label is derived: v 0.5, a 0.2 → calm.
			name: "caller blended at 0.6", sal: sal, att: &att,
			caller:     &Emotion{Valence: 0.5, Arousal: 0.2, Intensity: 0.3},
			wantState:  Emotion{"calm", 0.2, 0.41, 0.40},
			wantBuffer: Emotion{"anxious", -0.25, 0.725, 0.55},
			wantCaller: Emotion{"calm", 0.5, 0.2, 0.3},
			wantWeight: 0.6,
		},
		{
			name: "caller's own label kept", sal: sal, att: &att,
			caller:     &Emotion{Label: "focused", Valence: 0.5, Arousal: 0.2, Intensity: 0.3},
			wantState:  Emotion{"calm", 0.2, 0.41, 0.40},
			wantBuffer: Emotion{"anxious", -0.25, 0.725, 0.55},
			wantCaller: Emotion{"focused", 0.5, 0.2, 0.3},
			wantWeight: 0.6,
		},
		{
			// uniform: v = 0.5·0.8 + 0.5·(−0.6) = 0.1; a = 0.65; i = 0.5 → excited
			name: "without attention: uniform weights", sal: sal, att: nil,
			wantState:  Emotion{"excited", 0.1, 0.65, 0.5},
			wantBuffer: Emotion{"excited", 0.1, 0.65, 0.5},
			degraded:   true,
		},
		{
			name: "empty buffer: the caller alone", sal: Salience{}, att: &Attention{},
			caller:     &Emotion{Valence: -0.4, Arousal: 0.7, Intensity: 0.5},
			wantState:  Emotion{"anxious", -0.4, 0.7, 0.5},
			wantBuffer: Emotion{"neutral", 0, 0, 0},
			wantCaller: Emotion{"anxious", -0.4, 0.7, 0.5},
			wantWeight: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := request("q")
			req.CurrentEmotion = tc.caller
			deps := map[string]Outcome{IDSalience: ok(tc.sal), IDAttention: {Status: StatusSkipped}}
			if tc.att != nil {
				deps[IDAttention] = ok(*tc.att)
			}
			out, err := NewContagion().Run(context.Background(), Inputs{Request: req, Deps: deps})
			if err != nil {
				t.Fatal(err)
			}
			c := out.Value.(Contagion)
			sameEmotion(t, "state", c.State, tc.wantState)
			sameEmotion(t, "buffer", c.Buffer, tc.wantBuffer)
			sameEmotion(t, "caller", c.Caller, tc.wantCaller)
			near(t, "caller weight", c.CallerWeight, tc.wantWeight)
			if out.Degraded != tc.degraded {
				t.Errorf("degraded = %v, want %v", out.Degraded, tc.degraded)
			}
		})
	}
}

func sameEmotion(t *testing.T, what string, got, want Emotion) {
	t.Helper()
	if got.Label != want.Label {
		t.Errorf("%s label = %q, want %q", what, got.Label, want.Label)
	}
	near(t, what+" valence", got.Valence, want.Valence)
	near(t, what+" arousal", got.Arousal, want.Arousal)
	near(t, what+" intensity", got.Intensity, want.Intensity)
}

func TestQuadrant(t *testing.T) {
	for _, tc := range []struct {
		v, a float64
		want string
	}{
		{0, 0, "neutral"}, {0.05, 0.29, "neutral"}, {0.05, 0.3, "calm"}, {0.5, 0.5, "excited"},
		{0.5, 0.49, "calm"}, {-0.5, 0.5, "anxious"}, {-0.5, 0.2, "sad"}, {-0.1, 0.1, "sad"},
	} {
		if got := quadrant(tc.v, tc.a); got != tc.want {
			t.Errorf("quadrant(%g, %g) = %q, want %q", tc.v, tc.a, got, tc.want)
		}
	}
}
