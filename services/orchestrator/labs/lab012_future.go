package labs

import (
	"context"
	"fmt"
	"math"
	"time"
)

// FutureThinking is LAB_012's result.
type FutureThinking struct {
	// Goal is the goal considered, empty when the request had none.
	Goal string
	// SuccessProbability = (successes + 1) / (successes + failures + 2).
	SuccessProbability float64
	Successes          int
	Failures           int
	// EvidenceIDs are the episodes counted, in attention order.
	EvidenceIDs []string
	// Horizon is the mean gap between the evidence and as_of.
	Horizon time.Duration
}

func (FutureThinking) labValue() {}

type futureLab struct{ base }

// NewFutureThinking returns LAB_012, episodic_future_thinking.
//
//	relevant = attended stored episodes sharing at least one keyword with
//	           the goal (content or metadata)
//	outcome  = LAB_001's valence of the episode (its affect when present):
//	           > 0 success, < 0 failure, 0 no evidence
//	p        = (successes + 1) / (successes + failures + 2)   (Laplace)
//	horizon  = mean(as_of − created_at) over the evidence
//	No goal: p = 0.5 (the uniform prior), OK.
func NewFutureThinking() Lab {
	return &futureLab{base{
		id: IDFutureThinking, name: "episodic_future_thinking", deps: []string{IDAttention}, budget: budgetCompute,
		description: "For the request's goal: the attended stored episodes sharing a keyword with it are the " +
			"evidence, each a success when its valence (affect, else lexicon) is > 0 and a failure when < 0; " +
			"success probability = (successes + 1) / (successes + failures + 2); horizon = mean gap between the " +
			"evidence and as_of. Without a goal, probability 0.5.",
	}}
}

func (l *futureLab) Run(_ context.Context, in Inputs) (Output, error) {
	goal := in.Request.Goal
	if goal == "" {
		return Output{Value: FutureThinking{SuccessProbability: 0.5},
			Detail: "no goal given: uniform prior 0.5"}, nil
	}
	att, o, ok := dep[Attention](in, IDAttention)
	if !ok {
		return Output{Value: FutureThinking{Goal: goal, SuccessProbability: 0.5}, Degraded: true,
			Detail: "no attended episodes, uniform prior 0.5: " + missing(IDAttention, o)}, nil
	}
	gk := keywords(goal)
	ft := FutureThinking{Goal: goal}
	var gapSum float64 // seconds, so that a sum of long gaps cannot overflow a Duration
	for _, it := range att.Items {
		if !it.Item.real() || it.Valence == 0 {
			continue
		}
		if overlap(gk, itemKeywords(it.Item.Content, it.Item.Metadata)) == 0 {
			continue
		}
		if it.Valence > 0 {
			ft.Successes++
		} else {
			ft.Failures++
		}
		ft.EvidenceIDs = append(ft.EvidenceIDs, it.Item.EpisodeID)
		gapSum += max(0, in.Request.AsOf.Sub(it.Item.CreatedAt)).Seconds()
	}
	n := ft.Successes + ft.Failures
	ft.SuccessProbability = float64(ft.Successes+1) / float64(n+2)
	if n > 0 {
		ft.Horizon = seconds(gapSum / float64(n))
	}
	return Output{
		Value: ft,
		Used:  []string{IDAttention},
		Detail: fmt.Sprintf("success probability %.2f from %d successes and %d failures",
			ft.SuccessProbability, ft.Successes, ft.Failures),
	}, nil
}

// seconds converts seconds to a Duration, saturating instead of overflowing.
func seconds(s float64) time.Duration {
	ns := s * float64(time.Second)
	if ns >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ns)
}
