package labs

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// proximityScale is the gap over which LAB_007's temporal proximity decays
// by a factor e: exp(−gap/1h).
const proximityScale = time.Hour

// Prediction is one episode LAB_007 expects to be needed next.
type Prediction struct {
	EpisodeID string
	// Content is cut to content_max_chars characters.
	Content string
	// FollowsEpisodeID is the attended episode it followed.
	FollowsEpisodeID string
	SessionID        string
	// Gap is the time between the two episodes.
	Gap time.Duration
	// Confidence = attention(follows) · proximity.
	Confidence float64
}

// Preload is LAB_007's result.
type Preload struct {
	// Predictions are best first.
	Predictions []Prediction
}

func (Preload) labValue() {}

type preloadLab struct {
	base
	mem Memory
}

// NewPreload returns LAB_007, predictive_preloading, listing from mem.
//
//	for each attended item (attention order) that is a stored episode with a
//	session and attention ≥ min_confidence (proximity ≤ 1, so no other item
//	can yield a prediction), at most k of them:
//	    followers = ListEpisodes(session, created strictly after it,
//	                ascending, k + buffer size)
//	    confidence(f at position p, from 0) = attention · 1/(1+p) · exp(−gap/1h)
//	episodes already in the buffer are not predicted; an episode following
//	several items keeps its best confidence; keep those ≥ min_confidence,
//	best first (ties by id), at most k.
func NewPreload(mem Memory) Lab {
	return &preloadLab{
		base: base{
			id: IDPreload, name: "predictive_preloading", deps: []string{IDAttention},
			requires: []string{IDAttention}, budget: budgetPreload,
			description: "Predicts the episodes needed next: for each attended stored episode with attention ≥ " +
				"min_confidence (at most k), the episodes that followed it in the same session (memory " +
				"ListEpisodes); confidence = attention × 1/(1+position) × exp(−gap/1h). Buffered episodes are " +
				"excluded; keeps the k (default 5) best with confidence ≥ min_confidence (default 0.3).",
		},
		mem: mem,
	}
}

func (l *preloadLab) Run(ctx context.Context, in Inputs) (Output, error) {
	att, o, ok := dep[Attention](in, IDAttention)
	if !ok {
		return Output{}, fmt.Errorf("no attention: %s", missing(IDAttention, o))
	}
	req := in.Request
	k, minConf := req.Options.PreloadK, req.Options.preloadMin()
	used := []string{IDAttention}

	buffered := make(map[string]bool, len(att.Items))
	var sources []AttentionItem
	for _, it := range att.Items {
		buffered[it.Item.EpisodeID] = true
		if it.Item.real() && it.Item.SessionID != "" && it.Attention >= minConf && len(sources) < k {
			sources = append(sources, it)
		}
	}
	if len(sources) == 0 {
		return Output{Value: Preload{}, Used: used,
			Detail: fmt.Sprintf("no attended episode with a session reaches attention %.2f", minConf)}, nil
	}
	if l.mem == nil {
		return Output{Value: Preload{}, Degraded: true, Used: used, Detail: "no memory configured"}, nil
	}

	// Buffered followers are skipped but keep their positions, so the page
	// holds k more than the buffer can take away.
	page := k + len(att.Items)
	followers := make([][]Episode, len(sources))
	errs := make([]error, len(sources))
	var wg sync.WaitGroup
	for i, s := range sources {
		wg.Go(func() {
			followers[i], errs[i] = l.mem.ListEpisodes(ctx, ListQuery{
				Namespace:    req.Namespace,
				SessionID:    s.Item.SessionID,
				CreatedAfter: s.Item.CreatedAt,
				Limit:        page,
			})
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Output{}, fmt.Errorf("list followers: %w", err)
	}

	best := map[string]Prediction{}
	var failed []string
	for i, s := range sources {
		if errs[i] != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", s.Item.EpisodeID, errs[i]))
			continue
		}
		for pos, f := range followers[i] {
			if buffered[f.ID] || f.ID == "" {
				continue
			}
			gap := f.CreatedAt.Sub(s.Item.CreatedAt)
			conf := s.Attention / float64(1+pos) * math.Exp(-math.Max(0, float64(gap))/float64(proximityScale))
			if conf < minConf {
				continue
			}
			if prev, seen := best[f.ID]; seen && prev.Confidence >= conf {
				continue
			}
			best[f.ID] = Prediction{
				EpisodeID:        f.ID,
				Content:          cutRunes(f.Content, req.Options.ContentMaxChars),
				FollowsEpisodeID: s.Item.EpisodeID,
				SessionID:        s.Item.SessionID,
				Gap:              gap,
				Confidence:       conf,
			}
		}
	}
	preds := make([]Prediction, 0, len(best))
	for _, p := range best {
		preds = append(preds, p)
	}
	slices.SortFunc(preds, func(a, b Prediction) int {
		switch {
		case a.Confidence > b.Confidence:
			return -1
		case a.Confidence < b.Confidence:
			return 1
		}
		return strings.Compare(a.EpisodeID, b.EpisodeID)
	})
	if len(preds) > k {
		preds = preds[:k]
	}

	out := Output{Value: Preload{Predictions: preds}, Used: used,
		Detail: fmt.Sprintf("%d predictions from %d attended episodes", len(preds), len(sources))}
	if len(failed) > 0 {
		out.Degraded = true
		out.Detail = fmt.Sprintf("%d of %d follower lookups failed (%s); %s",
			len(failed), len(sources), strings.Join(failed, "; "), out.Detail)
	}
	return out, nil
}
