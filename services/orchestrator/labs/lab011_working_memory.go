package labs

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// MMR parameters of LAB_011.
const (
	// mmrLambda trades relevance against novelty: 0.7 keeps relevance first
	// while a candidate that repeats a buffered one loses to a fresh one
	// less than 0.3·similarity below it.
	mmrLambda = 0.7
	// duplicateJaccard is the token-Jaccard similarity from which a
	// candidate is a near-duplicate of a buffered item and is dropped.
	duplicateJaccard = 0.8
	// recallReserveMax caps the share of LAB_011's own deadline kept back
	// from the Recall call, so a memory that never answers still leaves
	// time to build the synthetic item instead of failing the LAB.
	recallReserveMax = 10 * time.Millisecond
)

// WorkingMemory is LAB_011's result.
type WorkingMemory struct {
	// Items is the buffer, best first.
	Items          []BufferItem
	Source         Source
	Degraded       bool
	DegradedReason string
	// Candidates is how many candidates memory returned.
	Candidates int
	// SuppressedDuplicates counts candidates dropped as near-duplicates of
	// a buffered item.
	SuppressedDuplicates int
	// Session is the session's turn when the run has a session id and its
	// working memory was loaded; nil otherwise (then nothing is written).
	Session *SessionTurn
	// SessionReason says why a run with a session id has no Session.
	SessionReason string
}

// SessionTurn is LAB_011's half of a session's turn: the buffer it loaded,
// merged with this turn's recall (MergeTurn), and what the end of the run
// needs to settle and write it (SaveSession).
type SessionTurn struct {
	SessionID string
	// Version is the version of the buffer loaded.
	Version int64
	// State is the merged buffer, parallel to WorkingMemory.Items.
	State []SessionItem
	// Evictions are MergeTurn's.
	Evictions []Eviction
	// Recalled is this turn's recall (MMR's choice), kept to merge again
	// with a newer buffer after a compare-and-set conflict.
	Recalled []BufferItem
	Rules    SessionRules
}

func (WorkingMemory) labValue() {}

type workingMemory struct {
	base
	mem Memory
	// sess is mem's session side, when it has one.
	sess SessionMemory
}

// NewWorkingMemory returns LAB_011, working_memory_buffer, recalling from mem.
//
//	candidates = memory.Recall(query, limit = candidate_pool, as_of, half-life)
//	greedy MMR: next = argmax over the remaining candidates c of
//	    λ·total(c) − (1−λ)·max_{b ∈ buffer} jaccard(tokens(c), tokens(b)),  λ = 0.7
//	after each pick, candidates with jaccard ≥ 0.8 to it are dropped
//	(suppressed_duplicates); stop at recall_limit items.
//	content is cut to content_max_chars characters.
//	Recall degraded and empty, or memory unreachable: the query itself as
//	one synthetic item, status DEGRADED.
//
// With a session id (and a Memory that is also a SessionMemory), the
// session's buffer is read from memory concurrently with the recall, and
// MergeTurn merges it with MMR's choice: held items are rehearsed, decay,
// or are evicted to capacity; the run's end settles and writes it
// (SaveSession). When the buffer cannot be read, the turn is stateless as
// above, DEGRADED, and nothing is written.
func NewWorkingMemory(mem Memory) Lab {
	sess, _ := mem.(SessionMemory)
	return &workingMemory{
		base: base{
			id: IDWorkingMemory, name: "working_memory_buffer", budget: budgetRecall,
			description: "Recalls candidate_pool (default 50) candidates from memory and keeps recall_limit " +
				"(default 7) by greedy MMR: argmax λ·total − (1−λ)·max token-Jaccard to the buffer, λ = 0.7; " +
				"candidates with Jaccard ≥ 0.8 to a buffered item are dropped as near-duplicates. Content is cut " +
				"to content_max_chars characters. Passes on memory's source and degraded flag; when recall is " +
				"degraded and empty or memory is unreachable, the buffer is the query itself, marked synthetic. " +
				"With a session_id, the session's buffer (kept by memory) is loaded alongside the recall and merged: " +
				"held items recalled again are rehearsed; others decay after decay_turns (default 5) turns or " +
				"decay_after (default 30 min) unattended; over working_memory_capacity (default 7) the lowest " +
				"0.5·attention + 0.5/(1+turns unattended) go, unconfirmed predictions first. The run ends by adding " +
				"LAB_007's predictions, applying LAB_010's attention and writing the buffer back (compare-and-set).",
		},
		mem:  mem,
		sess: sess,
	}
}

func (l *workingMemory) Run(ctx context.Context, in Inputs) (Output, error) {
	req := in.Request
	opts := req.Options
	if l.mem == nil {
		return synthetic(req, 0, "no memory configured"), nil
	}
	recallCtx, cancel := withReserve(ctx)
	defer cancel()
	// The buffer is read beside the recall, so a session costs no extra
	// wait here.
	session := req.SessionID != "" && l.sess != nil
	var (
		buf    SessionBuffer
		getErr error
		wg     sync.WaitGroup
	)
	if session {
		wg.Go(func() { buf, getErr = l.sess.GetWorkingMemory(recallCtx, req.Namespace, req.SessionID) })
	}
	ans, err := l.mem.Recall(recallCtx, RecallQuery{
		Namespace:       req.Namespace,
		Query:           req.Query,
		Limit:           opts.CandidatePool,
		AsOf:            req.AsOf,
		RecencyHalfLife: opts.RecencyHalfLife,
	})
	wg.Wait()
	if err != nil {
		if ctx.Err() != nil { // our own budget is gone: nothing to build in time
			return Output{}, fmt.Errorf("recall: %w", err)
		}
		return withoutSession(synthetic(req, 0, fmt.Sprintf("memory unreachable: %v", err)), session), nil
	}
	if ans.Degraded && len(ans.Episodes) == 0 {
		reason := ans.DegradedReason
		if reason == "" {
			reason = "recall degraded with no result"
		}
		out := synthetic(req, ans.Source, reason)
		return withoutSession(out, session), nil
	}

	items, suppressed := selectMMR(ans.Episodes, opts.RecallLimit, opts.ContentMaxChars)
	wm := WorkingMemory{
		Items:                items,
		Source:               ans.Source,
		Degraded:             ans.Degraded,
		DegradedReason:       ans.DegradedReason,
		Candidates:           len(ans.Episodes),
		SuppressedDuplicates: suppressed,
	}
	detail := fmt.Sprintf("kept %d of %d candidates from %s (%d near-duplicates suppressed)",
		len(items), len(ans.Episodes), ans.Source, suppressed)
	if ans.Degraded {
		detail = fmt.Sprintf("recall degraded (source %s): %s; %s", ans.Source, ans.DegradedReason, detail)
	}
	out := Output{Value: wm, Degraded: ans.Degraded, Detail: detail}
	if !session {
		return out, nil
	}
	if getErr != nil {
		reason := fmt.Sprintf("working memory of session %q not loaded (%v): this turn's buffer is its recall only, and nothing is written", req.SessionID, getErr)
		for i := range wm.Items {
			wm.Items[i].Origin = OriginRecalled
		}
		wm.Degraded, wm.SessionReason = true, reason
		if wm.DegradedReason == "" {
			wm.DegradedReason = reason
		}
		out.Value, out.Degraded, out.Detail = wm, true, detail+"; "+reason
		return out, nil
	}
	state, evicted := MergeTurn(buf.Items, items, req.AsOf, opts.rules())
	wm.Items = sessionItems(state, items)
	wm.Session = &SessionTurn{SessionID: req.SessionID, Version: buf.Version, State: state, Evictions: evicted,
		Recalled: items, Rules: opts.rules()}
	counts := map[Origin]int{}
	for _, it := range state {
		counts[it.Origin]++
	}
	out.Value = wm
	out.Detail = fmt.Sprintf("%s; session %q version %d: %d recalled, %d held, %d predicted, %d evicted",
		detail, req.SessionID, buf.Version, counts[OriginRecalled], counts[OriginHeld], counts[OriginPredicted], len(evicted))
	return out, nil
}

// withoutSession notes on a stateless output that a session's buffer was
// neither used nor will be written.
func withoutSession(out Output, session bool) Output {
	if !session {
		return out
	}
	wm := out.Value.(WorkingMemory)
	wm.SessionReason = "memory unavailable: the session's working memory was not used, and nothing is written"
	out.Value = wm
	out.Detail += "; " + wm.SessionReason
	return out
}

// sessionItems is the merged buffer as buffer items: a recalled item as
// recall returned it, a held or predicted one with what the buffer keeps.
func sessionItems(state []SessionItem, recalled []BufferItem) []BufferItem {
	byID := make(map[string]BufferItem, len(recalled))
	for _, b := range recalled {
		byID[b.EpisodeID] = b
	}
	out := make([]BufferItem, len(state))
	for i, s := range state {
		b, ok := byID[s.EpisodeID]
		if !ok || s.Origin != OriginRecalled {
			b = BufferItem{EpisodeID: s.EpisodeID, Content: s.Content}
		}
		b.Origin = s.Origin
		out[i] = b
	}
	return out
}

// withReserve derives the Recall context: LAB_011's deadline less a tenth
// of the time left (at most recallReserveMax).
func withReserve(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	reserve := min(time.Until(dl)/10, recallReserveMax)
	return context.WithDeadline(ctx, dl.Add(-max(reserve, 0)))
}

// synthetic is the degraded buffer holding the query itself.
func synthetic(req Request, src Source, reason string) Output {
	if src == SourceUnspecified {
		src = SourceNone
	}
	item := BufferItem{
		Content:   cutRunes(req.Query, req.Options.ContentMaxChars),
		SessionID: req.SessionID,
		CreatedAt: req.AsOf,
		Synthetic: true,
	}
	return Output{
		Value: WorkingMemory{
			Items:          []BufferItem{item},
			Source:         src,
			Degraded:       true,
			DegradedReason: reason,
		},
		Degraded: true,
		Detail:   "no memories recalled, the query stands in as a synthetic item: " + reason,
	}
}

// selectMMR picks up to limit candidates by maximal marginal relevance and
// reports how many were dropped as near-duplicates of a picked one. Ties go
// to the candidate memory ranked first.
func selectMMR(cands []RecalledEpisode, limit, maxChars int) ([]BufferItem, int) {
	type cand struct {
		idx    int
		rel    float64
		tokens wordSet
		maxSim float64
	}
	pool := make([]cand, len(cands))
	for i, c := range cands {
		pool[i] = cand{idx: i, rel: clamp(c.Scores.Total, 0, 1), tokens: newWordSet(words(c.Episode.Content))}
	}
	var items []BufferItem
	suppressed := 0
	for len(items) < limit && len(pool) > 0 {
		best, bestScore := -1, 0.0
		for i, c := range pool {
			s := mmrLambda*c.rel - (1-mmrLambda)*c.maxSim
			if best < 0 || s > bestScore {
				best, bestScore = i, s
			}
		}
		picked := pool[best]
		pool = append(pool[:best], pool[best+1:]...)
		items = append(items, bufferItem(cands[picked.idx], maxChars))
		kept := pool[:0]
		for _, c := range pool {
			sim := jaccard(c.tokens, picked.tokens)
			if sim >= duplicateJaccard {
				suppressed++
				continue
			}
			c.maxSim = max(c.maxSim, sim)
			kept = append(kept, c)
		}
		pool = kept
	}
	return items, suppressed
}

func bufferItem(c RecalledEpisode, maxChars int) BufferItem {
	e := c.Episode
	return BufferItem{
		EpisodeID:  e.ID,
		Content:    cutRunes(e.Content, maxChars),
		SessionID:  e.SessionID,
		Speaker:    e.Speaker,
		CreatedAt:  e.CreatedAt,
		Scores:     c.Scores,
		Affect:     e.Affect,
		Metadata:   e.Metadata,
		Importance: e.Importance,
	}
}
