package labs

import (
	"context"
	"fmt"
)

// Regulation is LAB_028's result.
type Regulation struct {
	// Strategy is down_regulate, reappraise, steady or maintain.
	Strategy string
	// Rule is the rule of the table that fired, in words.
	Rule string
	// Regulated is the state after regulation.
	Regulated Emotion
}

func (Regulation) labValue() {}

// regulationRule is one row of LAB_028's table; the first row whose when
// holds fires.
type regulationRule struct {
	strategy string
	rule     string
	when     func(e Emotion) bool
	apply    func(e Emotion) Emotion
}

// regulationTable is LAB_028's rule table, first match wins.
func regulationTable() []regulationRule {
	return []regulationRule{
		{
			strategy: "down_regulate",
			rule:     "arousal > 0.6 and valence < -0.2: calm first (arousal ×0.6, valence ×0.5, intensity ×0.7)",
			when:     func(e Emotion) bool { return e.Arousal > 0.6 && e.Valence < -0.2 },
			apply: func(e Emotion) Emotion {
				return Emotion{Valence: e.Valence * 0.5, Arousal: e.Arousal * 0.6, Intensity: e.Intensity * 0.7}
			},
		},
		{
			strategy: "reappraise",
			rule:     "valence < -0.2 at arousal ≤ 0.6: reframe (valence ×0.5, intensity ×0.8)",
			when:     func(e Emotion) bool { return e.Valence < -0.2 },
			apply: func(e Emotion) Emotion {
				return Emotion{Valence: e.Valence * 0.5, Arousal: e.Arousal, Intensity: e.Intensity * 0.8}
			},
		},
		{
			strategy: "steady",
			rule:     "arousal > 0.8 at valence ≥ -0.2: settle excitement (arousal ×0.75)",
			when:     func(e Emotion) bool { return e.Arousal > 0.8 },
			apply: func(e Emotion) Emotion {
				return Emotion{Valence: e.Valence, Arousal: e.Arousal * 0.75, Intensity: e.Intensity}
			},
		},
		{
			strategy: "maintain",
			rule:     "otherwise: the state is workable, keep it",
			when:     func(Emotion) bool { return true },
			apply:    func(e Emotion) Emotion { return e },
		},
	}
}

type regulationLab struct{ base }

// NewRegulation returns LAB_028, emotional_intelligence: the first matching
// row of regulationTable applied to LAB_008's state, relabelled by
// quadrant.
func NewRegulation() Lab {
	return &regulationLab{base{
		id: IDRegulation, name: "emotional_intelligence", deps: []string{IDContagion},
		requires: []string{IDContagion}, budget: budgetCompute,
		description: "A regulation strategy for LAB_008's state from a rule table, first match wins: " +
			"arousal > 0.6 and valence < -0.2 → down_regulate (arousal ×0.6, valence ×0.5, intensity ×0.7); " +
			"valence < -0.2 → reappraise (valence ×0.5, intensity ×0.8); arousal > 0.8 → steady (arousal ×0.75); " +
			"otherwise maintain. The regulated state is relabelled by its quadrant.",
	}}
}

func (l *regulationLab) Run(_ context.Context, in Inputs) (Output, error) {
	c, o, ok := dep[Contagion](in, IDContagion)
	if !ok {
		return Output{}, fmt.Errorf("no emotional state: %s", missing(IDContagion, o))
	}
	for _, r := range regulationTable() {
		if !r.when(c.State) {
			continue
		}
		reg := Regulation{Strategy: r.strategy, Rule: r.rule, Regulated: labelled(r.apply(c.State))}
		return Output{
			Value:  reg,
			Used:   []string{IDContagion},
			Detail: fmt.Sprintf("%s: %s → %s", reg.Strategy, c.State.Label, reg.Regulated.Label),
		}, nil
	}
	return Output{}, fmt.Errorf("no regulation rule matched") // unreachable: the last row always matches
}
