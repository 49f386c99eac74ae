package labs

import (
	"context"
	"fmt"
)

// Reconsolidation is LAB_009's result.
type Reconsolidation struct {
	// Touched is how many accesses were submitted for recording.
	Touched int
	// EpisodeIDs are their ids, in buffer order.
	EpisodeIDs []string
}

func (Reconsolidation) labValue() {}

type reconsolidationLab struct {
	base
	acc AccessRecorder
}

// NewReconsolidation returns LAB_009, memory_reconsolidation, submitting
// accesses to acc.
//
//	ids = the buffered episodes that are real (not synthetic)
//	touched = len(ids) when acc.Submit(namespace, ids) takes them, else 0.
//	Submit never blocks, so recording never delays the stream; it is
//	DEGRADED when there is nothing real to touch or the queue is full.
func NewReconsolidation(acc AccessRecorder) Lab {
	return &reconsolidationLab{
		base: base{
			id: IDReconsolidation, name: "memory_reconsolidation", deps: []string{IDWorkingMemory},
			requires: []string{IDWorkingMemory}, budget: budgetCompute,
			description: "Submits the access of every real buffered episode for recording (memory RecordAccess: " +
				"access count and last access) to a bounded background queue, so the stream never waits on it; " +
				"touched = number of ids submitted. DEGRADED when there is nothing real to touch or the queue is full.",
		},
		acc: acc,
	}
}

func (l *reconsolidationLab) Run(_ context.Context, in Inputs) (Output, error) {
	wm, o, ok := dep[WorkingMemory](in, IDWorkingMemory)
	if !ok {
		return Output{}, fmt.Errorf("no working memory: %s", missing(IDWorkingMemory, o))
	}
	used := []string{IDWorkingMemory}
	var ids []string
	for _, it := range wm.Items {
		if it.real() {
			ids = append(ids, it.EpisodeID)
		}
	}
	switch {
	case len(ids) == 0:
		return Output{Value: Reconsolidation{}, Degraded: true, Used: used,
			Detail: "nothing to touch: the buffer holds no stored episode"}, nil
	case l.acc == nil:
		return Output{Value: Reconsolidation{}, Degraded: true, Used: used,
			Detail: "no access recorder configured"}, nil
	case !l.acc.Submit(in.Request.Namespace, ids):
		return Output{Value: Reconsolidation{}, Degraded: true, Used: used,
			Detail: fmt.Sprintf("access queue full: %d accesses not recorded", len(ids))}, nil
	}
	return Output{
		Value:  Reconsolidation{Touched: len(ids), EpisodeIDs: ids},
		Used:   used,
		Detail: fmt.Sprintf("%d accesses submitted for recording", len(ids)),
	}, nil
}
