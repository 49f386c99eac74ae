package labs

import (
	"context"
	"fmt"
	"math"
)

// Bases of a salience.
const (
	BasisAffect  = "affect"
	BasisLexicon = "lexicon"
)

// ItemSalience is the emotional salience of one text.
type ItemSalience struct {
	// EpisodeID is empty for the query and the synthetic item.
	EpisodeID string
	Valence   float64
	Arousal   float64
	Intensity float64
	// Salience = 0.4·|valence| + 0.3·arousal + 0.3·intensity.
	Salience float64
	// Basis is BasisAffect or BasisLexicon.
	Basis string
}

// Salience is LAB_001's result.
type Salience struct {
	Query ItemSalience
	// Items are in LAB_011's buffer order.
	Items []ItemSalience
}

func (Salience) labValue() {}

type salienceLab struct{ base }

// NewSalience returns LAB_001, emotional_salience.
//
//	(valence, arousal, intensity) = the episode's affect when present, else
//	the lexicon's (see lexicon.go); the query always uses the lexicon.
//	salience = 0.4·|valence| + 0.3·arousal + 0.3·intensity   (0..1)
func NewSalience() Lab {
	return &salienceLab{base{
		id: IDSalience, name: "emotional_salience", deps: []string{IDWorkingMemory}, budget: budgetCompute,
		description: "Salience 0..1 of the query and of each buffered item: 0.4·|valence| + 0.3·arousal + " +
			"0.3·intensity, with valence/arousal/intensity from the episode's affect when present, else from a " +
			"built-in lexicon (intensifier before a word ×1.5; negator among the 3 words before it flips and " +
			"halves valence; valence and arousal are means over lexicon hits; intensity = min(1, Σgain/3)).",
	}}
}

func (l *salienceLab) Run(_ context.Context, in Inputs) (Output, error) {
	out := Salience{Query: textSalience("", in.Request.Query)}
	wm, o, ok := dep[WorkingMemory](in, IDWorkingMemory)
	if !ok {
		return Output{Value: out, Degraded: true,
			Detail: "query salience only: " + missing(IDWorkingMemory, o)}, nil
	}
	out.Items = make([]ItemSalience, len(wm.Items))
	fromAffect := 0
	for i, it := range wm.Items {
		if it.Affect != nil {
			out.Items[i] = affectSalience(it.EpisodeID, *it.Affect)
			fromAffect++
			continue
		}
		out.Items[i] = textSalience(it.EpisodeID, it.Content)
	}
	return Output{
		Value: out,
		Used:  []string{IDWorkingMemory},
		Detail: fmt.Sprintf("query salience %.2f; %d items (%d from affect, %d from lexicon)",
			out.Query.Salience, len(out.Items), fromAffect, len(out.Items)-fromAffect),
	}, nil
}

func textSalience(id, text string) ItemSalience {
	a, _ := lexiconAffect(text)
	s := affectSalience(id, a)
	s.Basis = BasisLexicon
	return s
}

func affectSalience(id string, a Affect) ItemSalience {
	v := clamp(a.Valence, -1, 1)
	ar := clamp(a.Arousal, 0, 1)
	in := clamp(a.Intensity, 0, 1)
	return ItemSalience{
		EpisodeID: id,
		Valence:   v,
		Arousal:   ar,
		Intensity: in,
		Salience:  salience(v, ar, in),
		Basis:     BasisAffect,
	}
}

func salience(v, ar, in float64) float64 {
	return clamp(0.4*math.Abs(v)+0.3*ar+0.3*in, 0, 1)
}
