package labs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Bounds of writing a session's buffer at the end of a run.
const (
	// MaxSaveAttempts bounds the compare-and-set attempts. A writer loses
	// only to another writer's success with the version it read, and reads
	// again after each loss, so each loss is a different turn's success:
	// n concurrent turns of one session all succeed within n attempts.
	MaxSaveAttempts = 10
	// SaveTimeout bounds the whole write, attempts included.
	SaveTimeout = time.Second
)

// SessionOutcome is what the end of a run did with the session's buffer.
type SessionOutcome struct {
	SessionID string
	// Items is the buffer written (or that would have been), best first.
	Items []SessionItem
	// Evictions are this turn's, LAB_011's merge and the settling.
	Evictions []Eviction
	// Version is the buffer's version after the turn: the new one when
	// saved, else the one read.
	Version  int64
	Saved    bool
	Reason   string
	Attempts int
}

// SaveSession settles LAB_011's turn with LAB_010's attention and LAB_007's
// predictions (either may be nil when those LABs did not produce one) and
// writes it with compare-and-set: on a conflict it reads the buffer again,
// merges this turn's recall into it again, settles and retries, at most
// MaxSaveAttempts times. It never fails the run: an outcome not saved says
// why.
func SaveSession(ctx context.Context, sm SessionMemory, req Request, turn *SessionTurn, att *Attention, pre *Preload) SessionOutcome {
	out := SessionOutcome{SessionID: turn.SessionID, Version: turn.Version}
	attention := map[string]AttentionOf{}
	if att != nil {
		for _, it := range att.Items {
			if it.Item.real() {
				attention[it.Item.EpisodeID] = AttentionOf{Score: it.Score, Share: it.Attention}
			}
		}
	} else {
		attention = nil
	}
	var preds []Prediction
	if pre != nil {
		preds = pre.Predictions
	}
	now := req.AsOf
	state, merged, version := turn.State, turn.Evictions, turn.Version
	for {
		out.Attempts++
		items, settled := SettleTurn(slices.Clone(state), attention, preds, now, turn.Rules)
		out.Items, out.Evictions = items, append(slices.Clone(merged), settled...)
		v, err := sm.PutWorkingMemory(ctx, req.Namespace, turn.SessionID, version, items)
		if err == nil {
			out.Saved, out.Version = true, v
			return out
		}
		if !errors.Is(err, ErrSessionConflict) {
			out.Reason = fmt.Sprintf("working memory not written: %v", err)
			return out
		}
		if out.Attempts >= MaxSaveAttempts {
			out.Reason = fmt.Sprintf("working memory not written: still conflicting after %d attempts", out.Attempts)
			return out
		}
		buf, err := sm.GetWorkingMemory(ctx, req.Namespace, turn.SessionID)
		if err != nil {
			out.Reason = fmt.Sprintf("working memory not written: reading it again after a conflict: %v", err)
			return out
		}
		version, out.Version = buf.Version, buf.Version
		state, merged = MergeTurn(buf.Items, turn.Recalled, now, turn.Rules)
	}
}
