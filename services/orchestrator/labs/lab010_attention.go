package labs

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// attentionTemperature is the softmax temperature of LAB_010. Scores lie in
// 0..1; at 0.1 a lead of 0.1 in score is a factor e ≈ 2.7 in attention, so
// the best items stand out, while at 1 seven items would share attention
// almost evenly whatever their scores.
const attentionTemperature = 0.1

// AttentionItem is one buffered item's attention.
type AttentionItem struct {
	// Index is the item's position in LAB_011's buffer.
	Index int
	// Item is the buffered item.
	Item      BufferItem
	Relevance float64
	Recency   float64
	Salience  float64
	Overlap   float64
	// Score is the weighted sum before the softmax.
	Score float64
	// Attention is the softmax share; all items sum to 1.
	Attention float64
	// Valence is LAB_001's valence of the item (0 without LAB_001), passed
	// on for LAB_012's outcomes.
	Valence float64
}

// Attention is LAB_010's result: the buffer re-ordered by attention.
type Attention struct {
	// Items are most attended first.
	Items []AttentionItem
}

func (Attention) labValue() {}

type attentionLab struct{ base }

// NewAttention returns LAB_010, attention.
//
//	relevance = memory's relevance score (0..1)
//	recency   = exp(−ln2 · max(0, as_of − created_at) / half_life)
//	salience  = LAB_001's salience of the item
//	overlap   = share of the query's keywords found in the item's content or metadata
//	score     = w_rel·relevance + w_rec·recency + w_sal·salience + w_ovl·overlap,
//	            weights normalised to sum 1 (default 0.5, 0.2, 0.2, 0.1)
//	attention = softmax(score / T), T = 0.1; items sorted by attention,
//	            ties in buffer order.
func NewAttention() Lab {
	return &attentionLab{base{
		id: IDAttention, name: "attention", deps: []string{IDSalience, IDWorkingMemory},
		requires: []string{IDWorkingMemory}, budget: budgetCompute,
		description: "Per buffered item: score = 0.5·relevance + 0.2·recency + 0.2·salience + 0.1·overlap " +
			"(weights are options, normalised to sum 1), with recency = exp(−ln2·age/half-life) from as_of " +
			"(half-life default 7 days), salience from LAB_001 and overlap = share of the query's keywords " +
			"found in the item's content or metadata; attention = softmax(score/0.1); the buffer is re-ordered " +
			"by attention.",
	}}
}

func (l *attentionLab) Run(_ context.Context, in Inputs) (Output, error) {
	wm, o, ok := dep[WorkingMemory](in, IDWorkingMemory)
	if !ok {
		return Output{}, fmt.Errorf("no working memory: %s", missing(IDWorkingMemory, o))
	}
	req := in.Request
	sal, so, haveSal := dep[Salience](in, IDSalience)
	if haveSal && len(sal.Items) != len(wm.Items) {
		return Output{}, fmt.Errorf("salience has %d items for a buffer of %d", len(sal.Items), len(wm.Items))
	}
	w := req.Options.Weights.normalized()
	query := keywords(req.Query)

	items := make([]AttentionItem, len(wm.Items))
	for i, it := range wm.Items {
		a := AttentionItem{
			Index:     i,
			Item:      it,
			Relevance: clamp(it.Scores.Relevance, 0, 1),
			Recency:   recency(req.AsOf, it.CreatedAt, req.Options.RecencyHalfLife),
			Overlap:   overlap(query, itemKeywords(it.Content, it.Metadata)),
		}
		if haveSal {
			a.Salience = sal.Items[i].Salience
			a.Valence = sal.Items[i].Valence
		}
		a.Score = w.Relevance*a.Relevance + w.Recency*a.Recency + w.Salience*a.Salience + w.Overlap*a.Overlap
		items[i] = a
	}
	softmax(items)
	slices.SortStableFunc(items, func(a, b AttentionItem) int {
		switch {
		case a.Attention > b.Attention:
			return -1
		case a.Attention < b.Attention:
			return 1
		}
		return 0
	})

	out := Output{Value: Attention{Items: items}, Used: []string{IDWorkingMemory}}
	if haveSal {
		out.Used = []string{IDSalience, IDWorkingMemory}
	} else {
		out.Degraded = true
		out.Detail = "salience taken as 0: " + missing(IDSalience, so) + "; "
	}
	if len(items) > 0 {
		out.Detail += fmt.Sprintf("%d items; top attention %.2f", len(items), items[0].Attention)
	} else {
		out.Detail += "empty buffer"
	}
	return out, nil
}

// recency is exp(−ln2·age/halfLife) with age from asOf, a future or unknown
// time counting as now.
func recency(asOf, created time.Time, halfLife time.Duration) float64 {
	if created.IsZero() || halfLife <= 0 {
		return 0
	}
	age := asOf.Sub(created)
	if age < 0 {
		age = 0
	}
	return math.Exp(-math.Ln2 * float64(age) / float64(halfLife))
}

// softmax sets Attention = exp((score−max)/T) / Σ, subtracting the maximum
// for numerical stability.
func softmax(items []AttentionItem) {
	if len(items) == 0 {
		return
	}
	hi := items[0].Score
	for _, it := range items[1:] {
		hi = max(hi, it.Score)
	}
	sum := 0.0
	for i := range items {
		items[i].Attention = math.Exp((items[i].Score - hi) / attentionTemperature)
		sum += items[i].Attention
	}
	for i := range items {
		items[i].Attention /= sum
	}
}
