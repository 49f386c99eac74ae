package labs

import (
	"context"
	"fmt"
	"math"
	"strings"
)

// Metacognition weights and penalties.
const (
	coverageWeight = 0.6
	marginWeight   = 0.4
	// recallPenalty multiplies the confidence when LAB_011 was not OK: the
	// buffer then came from a cache, from nothing, or not at all.
	recallPenalty = 0.5
	// lostLabPenalty multiplies it once per other LAB that FAILED or was
	// SKIPPED; LABs merely DEGRADED by a degraded input are already paid for
	// by recallPenalty.
	lostLabPenalty = 0.8
)

// Metacognition is LAB_006's result.
type Metacognition struct {
	// Confidence in this answer 0..1.
	Confidence float64
	// RetrievalMargin is the attention gap between the first and second
	// stored items.
	RetrievalMargin float64
	// KeywordCoverage is the share of the query's keywords found in the
	// buffer's stored items.
	KeywordCoverage float64
	// DegradedLabs are the LABs that were not OK, in catalog order.
	DegradedLabs []string
	// Reasoning is a one-paragraph trace.
	Reasoning string
}

func (Metacognition) labValue() {}

type metacognitionLab struct{ base }

// NewMetacognition returns LAB_006, metacognition.
//
//	margin     = attention(1st) − attention(2nd) over the stored items in
//	             LAB_010's order (attention(1st) when only one, 0 when none)
//	coverage   = share of the query's keywords found in the stored buffered
//	             items' content or metadata (0 when the query has none)
//	confidence = (0.6·coverage + 0.4·margin) · 0.5^[LAB_011 not OK]
//	             · 0.8^(other LABs FAILED or SKIPPED)
func NewMetacognition() Lab {
	return &metacognitionLab{base{
		id: IDMetacognition, name: "metacognition",
		deps: []string{IDWorkingMemory, IDSalience, IDAttention, IDReconsolidation, IDPreload,
			IDContagion, IDRegulation, IDFutureThinking},
		budget: budgetCompute,
		description: "Confidence in this answer: (0.6·keyword coverage + 0.4·retrieval margin) × 0.5 when " +
			"LAB_011 was not OK × 0.8 per other LAB that FAILED or was SKIPPED, where coverage is the share of " +
			"the query's keywords found in the stored buffered items and margin the attention gap between the " +
			"first two stored items; lists the LABs that were not OK with their reasons and writes a " +
			"one-paragraph reasoning trace.",
	}}
}

func (l *metacognitionLab) Run(_ context.Context, in Inputs) (Output, error) {
	var m Metacognition
	var used, reasons []string
	var trace []string
	lost := 0
	for _, id := range l.deps {
		o := in.Deps[id]
		if o.Value != nil {
			used = append(used, id)
		}
		if o.Status == StatusOK {
			continue
		}
		m.DegradedLabs = append(m.DegradedLabs, id)
		reasons = append(reasons, missing(id, o))
		if id != IDWorkingMemory && (o.Status == StatusFailed || o.Status == StatusSkipped || o.Status == 0) {
			lost++
		}
	}

	query := keywords(in.Request.Query)
	if wm, o, ok := dep[WorkingMemory](in, IDWorkingMemory); ok {
		var found wordSet
		stored := 0
		for _, it := range wm.Items {
			if it.real() {
				stored++
				found = append(found, itemKeywords(it.Content, it.Metadata)...)
			}
		}
		m.KeywordCoverage = overlap(query, newWordSet(found))
		trace = append(trace, fmt.Sprintf("Memory answered from %s with %d candidates; %d stored episodes kept "+
			"in working memory, %d near-duplicates suppressed.", wm.Source, wm.Candidates, stored,
			wm.SuppressedDuplicates))
		if stored == 0 && len(wm.Items) > 0 {
			trace = append(trace, "The buffer holds only the query itself, not a memory.")
		}
		trace = append(trace, fmt.Sprintf("%d of %d query keywords (%.0f%%) appear in it.",
			int(math.Round(m.KeywordCoverage*float64(len(query)))), len(query), 100*m.KeywordCoverage))
	} else {
		trace = append(trace, "No working memory: "+missing(IDWorkingMemory, o)+".")
	}
	if s, _, ok := dep[Salience](in, IDSalience); ok {
		trace = append(trace, fmt.Sprintf("The query's emotional salience is %.2f.", s.Query.Salience))
	}
	if att, _, ok := dep[Attention](in, IDAttention); ok {
		var top []float64
		for _, it := range att.Items {
			if it.Item.real() && len(top) < 2 {
				top = append(top, it.Attention)
			}
		}
		switch len(top) {
		case 2:
			m.RetrievalMargin = clamp(top[0]-top[1], 0, 1)
		case 1:
			m.RetrievalMargin = top[0]
		}
		trace = append(trace, fmt.Sprintf("The most attended memory leads the next by %.2f attention.",
			m.RetrievalMargin))
	}
	if c, _, ok := dep[Contagion](in, IDContagion); ok {
		s := fmt.Sprintf("The emotional state is %s (valence %.2f, arousal %.2f)", c.State.Label,
			c.State.Valence, c.State.Arousal)
		if r, _, ok := dep[Regulation](in, IDRegulation); ok {
			s += ", strategy " + r.Strategy
		}
		trace = append(trace, s+".")
	}
	if f, _, ok := dep[FutureThinking](in, IDFutureThinking); ok && f.Goal != "" {
		trace = append(trace, fmt.Sprintf("The goal's success probability is %.2f from %d successes and %d failures.",
			f.SuccessProbability, f.Successes, f.Failures))
	}
	if p, _, ok := dep[Preload](in, IDPreload); ok {
		trace = append(trace, fmt.Sprintf("%d episodes are predicted next.", len(p.Predictions)))
	}
	if r, _, ok := dep[Reconsolidation](in, IDReconsolidation); ok {
		trace = append(trace, fmt.Sprintf("%d accesses were submitted for recording.", r.Touched))
	}

	penalty := math.Pow(lostLabPenalty, float64(lost))
	if o := in.Deps[IDWorkingMemory]; o.Status != StatusOK {
		penalty *= recallPenalty
	}
	m.Confidence = clamp((coverageWeight*m.KeywordCoverage+marginWeight*m.RetrievalMargin)*penalty, 0, 1)
	if len(reasons) == 0 {
		trace = append(trace, "Every LAB was OK.")
	} else {
		trace = append(trace, "Not OK: "+strings.Join(reasons, "; ")+".")
	}
	trace = append(trace, fmt.Sprintf("Confidence %.2f = (0.6×%.2f coverage + 0.4×%.2f margin) × %.2f.",
		m.Confidence, m.KeywordCoverage, m.RetrievalMargin, penalty))
	m.Reasoning = strings.Join(trace, " ")

	out := Output{Value: m, Used: used, Detail: fmt.Sprintf("confidence %.2f", m.Confidence)}
	if len(m.DegradedLabs) > 0 {
		out.Degraded = true
		out.Detail += "; not OK: " + strings.Join(m.DegradedLabs, ", ")
	}
	return out, nil
}
