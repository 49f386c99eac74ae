package labs

import (
	"context"
	"fmt"
)

// callerWeight is the caller's share in LAB_008's blend: the caller knows
// its own state better than its memories imply, so it leads, while the
// attended memories still colour it.
const callerWeight = 0.6

// Contagion is LAB_008's result.
type Contagion struct {
	// State is the resulting emotional state.
	State Emotion
	// Buffer is the attention-weighted affect of the buffer.
	Buffer Emotion
	// Caller is the caller's state as given (zero when none was given).
	Caller Emotion
	// CallerWeight is the caller's share in the blend.
	CallerWeight float64
}

func (Contagion) labValue() {}

type contagionLab struct{ base }

// NewContagion returns LAB_008, emotional_contagion.
//
//	buffer = Σ_i attention_i · (valence_i, arousal_i, intensity_i) over the
//	         buffer, with LAB_001's values and LAB_010's attention (uniform
//	         1/n without LAB_010)
//	w      = 0.6 when the caller gave current_emotion and the buffer is not
//	         empty; 1 when the buffer is empty; 0 without a caller state
//	state  = w·caller + (1−w)·buffer, per dimension
//	labels = the caller's own when given, else the valence/arousal quadrant:
//	         |v| < 0.1 and a < 0.3 → neutral; v ≥ 0: a ≥ 0.5 → excited, else
//	         calm; v < 0: a ≥ 0.5 → anxious, else sad.
func NewContagion() Lab {
	return &contagionLab{base{
		id: IDContagion, name: "emotional_contagion", deps: []string{IDSalience, IDAttention},
		requires: []string{IDSalience}, budget: budgetCompute,
		description: "The resulting emotional state: state = w·caller + (1−w)·buffer per dimension, where buffer " +
			"is the attention-weighted mean of LAB_001's valence/arousal/intensity of the buffered items (uniform " +
			"weights without LAB_010) and w = 0.6 when current_emotion is given (1 when the buffer is empty, 0 " +
			"without a caller state). Labels from the valence/arousal quadrant: neutral, excited, calm, anxious, sad.",
	}}
}

func (l *contagionLab) Run(_ context.Context, in Inputs) (Output, error) {
	sal, so, ok := dep[Salience](in, IDSalience)
	if !ok {
		return Output{}, fmt.Errorf("no salience: %s", missing(IDSalience, so))
	}
	out := Output{Used: []string{IDSalience}}

	weights := make([]float64, len(sal.Items))
	att, ao, haveAtt := dep[Attention](in, IDAttention)
	if haveAtt && len(att.Items) == len(sal.Items) {
		for _, it := range att.Items {
			weights[it.Index] = it.Attention
		}
		out.Used = append(out.Used, IDAttention)
	} else {
		for i := range weights {
			weights[i] = 1 / float64(len(weights))
		}
		out.Degraded = true
		reason := missing(IDAttention, ao)
		if haveAtt {
			reason = fmt.Sprintf("LAB_010 has %d items for %d saliences", len(att.Items), len(sal.Items))
		}
		out.Detail = "uniform weights: " + reason + "; "
	}

	var buf Emotion
	for i, s := range sal.Items {
		buf.Valence += weights[i] * s.Valence
		buf.Arousal += weights[i] * s.Arousal
		buf.Intensity += weights[i] * s.Intensity
	}
	buf = labelled(Emotion{Valence: clamp(buf.Valence, -1, 1), Arousal: clamp(buf.Arousal, 0, 1),
		Intensity: clamp(buf.Intensity, 0, 1)})

	c := Contagion{Buffer: buf}
	if e := in.Request.CurrentEmotion; e != nil {
		c.Caller = *e
		if c.Caller.Label == "" {
			c.Caller = labelled(c.Caller)
		}
		c.CallerWeight = callerWeight
		if len(sal.Items) == 0 {
			c.CallerWeight = 1
		}
	}
	w := c.CallerWeight
	c.State = labelled(Emotion{
		Valence:   w*c.Caller.Valence + (1-w)*buf.Valence,
		Arousal:   w*c.Caller.Arousal + (1-w)*buf.Arousal,
		Intensity: w*c.Caller.Intensity + (1-w)*buf.Intensity,
	})
	out.Value = c
	out.Detail += fmt.Sprintf("%s (valence %.2f, arousal %.2f), caller weight %.1f",
		c.State.Label, c.State.Valence, c.State.Arousal, w)
	return out, nil
}

// labelled returns e with its label set from its valence/arousal quadrant.
func labelled(e Emotion) Emotion {
	e.Label = quadrant(e.Valence, e.Arousal)
	return e
}

func quadrant(v, a float64) string {
	switch {
	case v > -0.1 && v < 0.1 && a < 0.3:
		return "neutral"
	case v >= 0 && a >= 0.5:
		return "excited"
	case v >= 0:
		return "calm"
	case a >= 0.5:
		return "anxious"
	}
	return "sad"
}
