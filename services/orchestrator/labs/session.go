package labs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Origin says how an item came to be in a session's working memory.
type Origin int

// Origins; OriginNone marks an item of a run without a session.
const (
	OriginNone Origin = iota
	// OriginRecalled: recalled (or recalled again) by this turn's query.
	OriginRecalled
	// OriginHeld: kept from an earlier turn, not recalled by this one.
	OriginHeld
	// OriginPredicted: preloaded from LAB_007; first to go when the next
	// turn neither recalls nor attends it.
	OriginPredicted
)

func (o Origin) String() string {
	switch o {
	case OriginRecalled:
		return "recalled"
	case OriginHeld:
		return "held"
	case OriginPredicted:
		return "predicted"
	}
	return "none"
}

// SessionItem is one item of a session's working memory as memory stores
// it between turns.
type SessionItem struct {
	EpisodeID string
	Content   string
	Origin    Origin
	// Attention is the item's attention score 0..1 when it was last
	// attended (LAB_010's score; before that, its recall total or its
	// prediction's confidence).
	Attention float64
	// TurnsSinceAttended counts the finished turns that neither recalled
	// nor attended it.
	TurnsSinceAttended int
	// Rehearsals counts the turns that recalled or attended it again.
	Rehearsals     int
	AddedAt        time.Time
	LastAttendedAt time.Time
}

// SessionBuffer is a session's working memory as read from memory.
// Version 0: the session has none yet.
type SessionBuffer struct {
	Version int64
	Items   []SessionItem
}

// ErrSessionConflict is what SessionMemory.PutWorkingMemory returns when
// the buffer's version moved since it was read.
var ErrSessionConflict = errors.New("working memory changed since it was read")

// SessionMemory is what a run with a session id needs of memory. When the
// Memory given to the LABs also implements it (the memory client does),
// LAB_011 keeps a session's working memory between turns.
type SessionMemory interface {
	GetWorkingMemory(ctx context.Context, namespace, session string) (SessionBuffer, error)
	// PutWorkingMemory writes items if the version is still expected and
	// returns the new one; ErrSessionConflict when it is not.
	PutWorkingMemory(ctx context.Context, namespace, session string, expected int64, items []SessionItem) (int64, error)
}

// EvictionReason says why an item left the working memory.
type EvictionReason int

// Eviction reasons.
const (
	EvictedDecayTurns EvictionReason = iota + 1
	EvictedDecayTime
	EvictedCapacity
	EvictedPredictionUnused
)

func (r EvictionReason) String() string {
	switch r {
	case EvictedDecayTurns:
		return "decay_turns"
	case EvictedDecayTime:
		return "decay_time"
	case EvictedCapacity:
		return "capacity"
	case EvictedPredictionUnused:
		return "prediction_unused"
	}
	return "unspecified"
}

// Eviction is an item that left the working memory this turn.
type Eviction struct {
	Item   SessionItem
	Reason EvictionReason
	// Detail is the reason in words, with the numbers.
	Detail string
}

// SessionRules are a session's decay and capacity options.
type SessionRules struct {
	Capacity   int
	DecayTurns int
	DecayAfter time.Duration
}

// rules returns the session rules of defaulted options.
func (o Options) rules() SessionRules {
	return SessionRules{Capacity: o.Capacity, DecayTurns: o.DecayTurns, DecayAfter: o.DecayAfter}
}

// The hybrid eviction rank (see Priority).
const (
	attentionShare = 0.5
	useShare       = 1 - attentionShare
)

// Priority is an item's rank for eviction, the hybrid of attention and
// recency of use (the prototype's attention + LRU):
//
//	priority = 0.5·attention + 0.5·1/(1 + turns_since_attended)
//
// so an item of this turn (turns 0) keeps its whole use share, one held for
// a turn half of it, one held for three turns a quarter. Lowest goes first.
func Priority(it SessionItem) float64 {
	return attentionShare*clamp(it.Attention, 0, 1) + useShare/float64(1+max(it.TurnsSinceAttended, 0))
}

// MergeTurn is the first half of a turn, in LAB_011: it merges the session's
// held buffer with this turn's recalled items (MMR's choice), at now.
//
//   - A held item recalled again is rehearsed: origin recalled, turns 0,
//     rehearsals + 1, last attended now, attention max(held, recall total).
//   - Any other held item decays when it already spent DecayTurns finished
//     turns unattended, or was last attended more than DecayAfter ago;
//     otherwise it stays, as held (a prediction stays predicted: this is the
//     turn that confirms it or not).
//   - A new recalled item enters with attention = its recall total.
//   - Over Capacity, the lowest go: unconfirmed predictions first, then by
//     Priority; ties keep the recalled items, then the earlier ones.
//
// It returns the buffer best first (that order) and the evictions.
func MergeTurn(held []SessionItem, recalled []BufferItem, now time.Time, r SessionRules) ([]SessionItem, []Eviction) {
	byID := make(map[string]BufferItem, len(recalled))
	for _, b := range recalled {
		if b.real() {
			byID[b.EpisodeID] = b
		}
	}
	var (
		out     []SessionItem
		evicted []Eviction
		seen    = make(map[string]bool, len(held)+len(recalled))
	)
	for _, h := range held {
		if seen[h.EpisodeID] || h.EpisodeID == "" {
			continue
		}
		seen[h.EpisodeID] = true
		if b, ok := byID[h.EpisodeID]; ok {
			h.Origin, h.TurnsSinceAttended, h.LastAttendedAt = OriginRecalled, 0, now
			h.Rehearsals++
			h.Attention = max(h.Attention, clamp(b.Scores.Total, 0, 1))
			h.Content = b.Content
			out = append(out, h)
			continue
		}
		switch idle := now.Sub(h.LastAttendedAt); {
		case h.TurnsSinceAttended >= r.DecayTurns:
			evicted = append(evicted, Eviction{Item: h, Reason: EvictedDecayTurns, Detail: fmt.Sprintf(
				"%d turns without attention (decay_turns %d)", h.TurnsSinceAttended, r.DecayTurns)})
			continue
		case idle > r.DecayAfter:
			evicted = append(evicted, Eviction{Item: h, Reason: EvictedDecayTime, Detail: fmt.Sprintf(
				"%s without attention (decay_after %s)", idle.Round(time.Second), r.DecayAfter)})
			continue
		}
		if h.Origin != OriginPredicted {
			h.Origin = OriginHeld
		}
		out = append(out, h)
	}
	for _, b := range recalled {
		if !b.real() || seen[b.EpisodeID] {
			continue
		}
		seen[b.EpisodeID] = true
		out = append(out, SessionItem{EpisodeID: b.EpisodeID, Content: b.Content, Origin: OriginRecalled,
			Attention: clamp(b.Scores.Total, 0, 1), AddedAt: now, LastAttendedAt: now})
	}
	return evictToCapacity(out, evicted, r.Capacity, true)
}

// AttentionOf is what SettleTurn needs of LAB_010 for one item.
type AttentionOf struct {
	// Score is LAB_010's weighted score 0..1; Share its softmax share.
	Score, Share float64
}

// SettleTurn is the second half of a turn, when the run ends: it applies
// LAB_010's attention and LAB_007's predictions to MergeTurn's buffer.
//
//   - An item is attended when its share of attention is at least the
//     uniform share 1/n of the n attended items (attention nil: none is).
//     Its attention becomes LAB_010's score; a held or predicted item that
//     is attended is rehearsed (turns 0, rehearsals + 1, last attended now)
//     and held from now on.
//   - A prediction from an earlier turn that this turn neither recalled nor
//     attended is evicted (prediction_unused).
//   - A held item not attended has spent one more turn unattended.
//   - Each prediction not already buffered enters as predicted, attention =
//     its confidence.
//   - Over Capacity, the lowest Priority go (ties keep the earlier).
//
// It returns the buffer to write, best first, and the evictions.
func SettleTurn(items []SessionItem, attention map[string]AttentionOf, preds []Prediction, now time.Time, r SessionRules) ([]SessionItem, []Eviction) {
	uniform := 0.0
	if n := len(attention); n > 0 {
		uniform = 1 / float64(n)
	}
	var (
		out     = make([]SessionItem, 0, len(items)+len(preds))
		evicted []Eviction
		seen    = make(map[string]bool, len(items)+len(preds))
	)
	for _, it := range items {
		seen[it.EpisodeID] = true
		a, ok := attention[it.EpisodeID]
		// A float share of exactly 1/n may come out a hair below it.
		attended := ok && a.Share >= uniform-1e-9
		switch {
		case attended:
			it.Attention = clamp(a.Score, 0, 1)
			if it.Origin != OriginRecalled {
				it.Origin, it.TurnsSinceAttended, it.LastAttendedAt = OriginHeld, 0, now
				it.Rehearsals++
			}
		case it.Origin == OriginPredicted:
			evicted = append(evicted, Eviction{Item: it, Reason: EvictedPredictionUnused,
				Detail: "predicted last turn, neither recalled nor attended in this one"})
			continue
		case it.Origin == OriginHeld:
			it.TurnsSinceAttended++
		}
		out = append(out, it)
	}
	for _, p := range preds {
		if p.EpisodeID == "" || seen[p.EpisodeID] {
			continue
		}
		seen[p.EpisodeID] = true
		out = append(out, SessionItem{EpisodeID: p.EpisodeID, Content: p.Content, Origin: OriginPredicted,
			Attention: clamp(p.Confidence, 0, 1), AddedAt: now, LastAttendedAt: now})
	}
	return evictToCapacity(out, evicted, r.Capacity, false)
}

// evictToCapacity orders items best first and evicts those past capacity.
// With predictionsFirst, predicted items rank below every other.
func evictToCapacity(items []SessionItem, evicted []Eviction, capacity int, predictionsFirst bool) ([]SessionItem, []Eviction) {
	tier := func(it SessionItem) int {
		if predictionsFirst && it.Origin == OriginPredicted {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(items, func(a, b SessionItem) int {
		if c := cmp.Compare(tier(b), tier(a)); c != 0 {
			return c
		}
		if c := cmp.Compare(Priority(b), Priority(a)); c != 0 {
			return c
		}
		// Recalled this turn beats held at equal priority.
		return cmp.Compare(b2i(b.Origin == OriginRecalled), b2i(a.Origin == OriginRecalled))
	})
	if capacity < 0 {
		capacity = 0
	}
	for i := capacity; i < len(items); i++ {
		it := items[i]
		detail := fmt.Sprintf("over capacity %d: priority %.3f = 0.5·attention %.3f + 0.5/(1+%d turns unattended), rank %d of %d",
			capacity, Priority(it), it.Attention, it.TurnsSinceAttended, i+1, len(items))
		if tier(it) == 0 {
			detail = fmt.Sprintf("over capacity %d: an unconfirmed prediction goes first (rank %d of %d)", capacity, i+1, len(items))
		}
		evicted = append(evicted, Eviction{Item: it, Reason: EvictedCapacity, Detail: detail})
	}
	if len(items) > capacity {
		items = items[:capacity]
	}
	return items, evicted
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
