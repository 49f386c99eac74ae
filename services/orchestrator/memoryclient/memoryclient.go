// Package memoryclient is the orchestrator's client of
// brain.memory.v1.MemoryService. It implements labs.Memory and the access
// recorder's sink, translating between memory's protos and the labs domain
// types. Every call runs under the caller's context deadline.
//
// UNAVAILABLE is retried by a small loop here rather than by a gRPC retry
// service config: the loop sees the caller's remaining budget and retries
// only when a backoff plus a useful attempt still fit in it, the policy
// lives beside the code it protects, and it does not depend on how the
// connection was dialled. Other codes are not retried: memory answers a slow
// or dead PostgreSQL itself, degraded, within the deadline.
package memoryclient

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/orchestrator/labs"
)

// Retry is the retry policy for UNAVAILABLE.
type Retry struct {
	// MaxAttempts counts the first call; 1 disables retries.
	MaxAttempts int
	// BaseDelay is the backoff before the first retry; it doubles up to
	// MaxDelay. Each wait is drawn uniformly from [d/2, d].
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MinAttempt is the least time an attempt needs to be worth making: no
	// retry when the deadline is nearer than the wait plus MinAttempt.
	MinAttempt time.Duration
}

// DefaultRetry is used when New gets no WithRetry option.
func DefaultRetry() Retry {
	return Retry{MaxAttempts: 4, BaseDelay: 5 * time.Millisecond, MaxDelay: 100 * time.Millisecond,
		MinAttempt: 5 * time.Millisecond}
}

// Option configures a Client.
type Option func(*Client)

// WithRetry sets the retry policy; MaxAttempts < 1 counts as 1.
func WithRetry(r Retry) Option {
	return func(c *Client) {
		r.MaxAttempts = max(r.MaxAttempts, 1)
		c.retry = r
	}
}

// Client calls memory over a connection owned by the caller.
type Client struct {
	rpc   memoryv1.MemoryServiceClient
	retry Retry
}

// New returns a client using conn (a *grpc.ClientConn the caller dialled
// with its keepalive and TLS settings, and closes).
func New(conn grpc.ClientConnInterface, opts ...Option) *Client {
	c := &Client{rpc: memoryv1.NewMemoryServiceClient(conn), retry: DefaultRetry()}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Recall asks memory for the best episodes of q.Namespace.
func (c *Client) Recall(ctx context.Context, q labs.RecallQuery) (labs.RecallAnswer, error) {
	req := &memoryv1.RecallRequest{
		Namespace: q.Namespace,
		Query:     q.Query,
		Limit:     int32(q.Limit),
	}
	if !q.AsOf.IsZero() {
		req.AsOf = timestamppb.New(q.AsOf)
	}
	if q.RecencyHalfLife > 0 {
		req.RecencyHalfLife = durationpb.New(q.RecencyHalfLife)
	}
	resp, err := call(ctx, c.retry, func(ctx context.Context) (*memoryv1.RecallResponse, error) {
		return c.rpc.Recall(ctx, req)
	})
	if err != nil {
		return labs.RecallAnswer{}, fmt.Errorf("recall %q: %w", q.Namespace, err)
	}
	ans := labs.RecallAnswer{
		Source:         source(resp.GetSource()),
		Degraded:       resp.GetDegraded(),
		DegradedReason: resp.GetDegradedReason(),
		Episodes:       make([]labs.RecalledEpisode, 0, len(resp.GetEpisodes())),
	}
	for _, re := range resp.GetEpisodes() {
		s := re.GetScores()
		ans.Episodes = append(ans.Episodes, labs.RecalledEpisode{
			Episode: episode(re.GetEpisode()),
			Scores:  scores(s),
		})
	}
	return ans, nil
}

// ListEpisodes returns the first page of q in ascending time order.
func (c *Client) ListEpisodes(ctx context.Context, q labs.ListQuery) ([]labs.Episode, error) {
	req := &memoryv1.ListEpisodesRequest{
		Namespace: q.Namespace,
		SessionId: q.SessionID,
		PageSize:  int32(q.Limit),
	}
	if !q.CreatedAfter.IsZero() {
		req.CreatedAfter = timestamppb.New(q.CreatedAfter)
	}
	resp, err := call(ctx, c.retry, func(ctx context.Context) (*memoryv1.ListEpisodesResponse, error) {
		return c.rpc.ListEpisodes(ctx, req)
	})
	if err != nil {
		return nil, fmt.Errorf("list episodes %q session %q: %w", q.Namespace, q.SessionID, err)
	}
	out := make([]labs.Episode, len(resp.GetEpisodes()))
	for i, e := range resp.GetEpisodes() {
		out[i] = episode(e)
	}
	return out, nil
}

// RecordAccess bumps the access count and last access of ids (at most 100)
// and returns how many memory updated.
func (c *Client) RecordAccess(ctx context.Context, namespace string, ids []string, at time.Time) (int, error) {
	req := &memoryv1.RecordAccessRequest{Namespace: namespace, Ids: ids}
	if !at.IsZero() {
		req.AccessedAt = timestamppb.New(at)
	}
	resp, err := call(ctx, c.retry, func(ctx context.Context) (*memoryv1.RecordAccessResponse, error) {
		return c.rpc.RecordAccess(ctx, req)
	})
	if err != nil {
		return 0, fmt.Errorf("record access %q (%d ids): %w", namespace, len(ids), err)
	}
	return int(resp.GetUpdated()), nil
}

// call makes one RPC, retrying UNAVAILABLE with jittered exponential backoff
// while attempts remain and the deadline leaves room for a wait and an
// attempt.
func call[T any](ctx context.Context, r Retry, rpc func(context.Context) (T, error)) (T, error) {
	delay := r.BaseDelay
	for attempt := 1; ; attempt++ {
		resp, err := rpc(ctx)
		if err == nil || status.Code(err) != codes.Unavailable || attempt >= r.MaxAttempts {
			return resp, err
		}
		wait := delay/2 + rand.N(delay/2+1)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait+r.MinAttempt {
			return resp, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, err
		case <-t.C:
		}
		delay = min(2*delay, r.MaxDelay)
	}
}

func source(s memoryv1.RecallSource) labs.Source {
	switch s {
	case memoryv1.RecallSource_RECALL_SOURCE_POSTGRES:
		return labs.SourcePostgres
	case memoryv1.RecallSource_RECALL_SOURCE_CACHE:
		return labs.SourceCache
	case memoryv1.RecallSource_RECALL_SOURCE_NONE:
		return labs.SourceNone
	}
	return labs.SourceUnspecified
}

// defaultImportance is memory's meaning of an unset importance.
const defaultImportance = 0.5

func episode(e *memoryv1.Episode) labs.Episode {
	out := labs.Episode{
		ID:          e.GetId(),
		Namespace:   e.GetNamespace(),
		SessionID:   e.GetSessionId(),
		Speaker:     e.GetSpeaker(),
		Content:     e.GetContent(),
		Importance:  defaultImportance,
		Metadata:    e.GetMetadata(),
		AccessCount: e.GetAccessCount(),
	}
	if e.Importance != nil {
		out.Importance = e.GetImportance()
	}
	if e.GetCreatedAt() != nil {
		out.CreatedAt = e.GetCreatedAt().AsTime()
	}
	if e.GetLastAccessedAt() != nil {
		out.LastAccessedAt = e.GetLastAccessedAt().AsTime()
	}
	if a := e.GetAffect(); a != nil {
		out.Affect = &labs.Affect{Valence: a.GetValence(), Arousal: a.GetArousal(), Intensity: a.GetIntensity()}
	}
	return out
}

func scores(s *memoryv1.RecallScores) labs.Scores {
	c := s.GetContributions()
	return labs.Scores{
		Relevance: s.GetRelevance(), Importance: s.GetImportance(), Recency: s.GetRecency(), Total: s.GetTotal(),
		OwnWords: s.GetOwnWords(), Context: s.GetContext(), Speaker: s.GetSpeaker(), Time: s.GetTime(),
		Contributions: labs.Contributions{
			OwnWords: c.GetOwnWords(), Context: c.GetContext(), Speaker: c.GetSpeaker(), Time: c.GetTime(),
			Importance: c.GetImportance(), Recency: c.GetRecency(),
		},
	}
}

// GetWorkingMemory reads a session's buffer (version 0, empty, for a new
// session).
func (c *Client) GetWorkingMemory(ctx context.Context, namespace, session string) (labs.SessionBuffer, error) {
	req := &memoryv1.GetWorkingMemoryRequest{Namespace: namespace, SessionId: session}
	resp, err := call(ctx, c.retry, func(ctx context.Context) (*memoryv1.GetWorkingMemoryResponse, error) {
		return c.rpc.GetWorkingMemory(ctx, req)
	})
	if err != nil {
		return labs.SessionBuffer{}, fmt.Errorf("get working memory %q session %q: %w", namespace, session, err)
	}
	wm := resp.GetWorkingMemory()
	out := labs.SessionBuffer{Version: wm.GetVersion(), Items: make([]labs.SessionItem, len(wm.GetItems()))}
	for i, it := range wm.GetItems() {
		out.Items[i] = labs.SessionItem{
			EpisodeID: it.GetEpisodeId(), Content: it.GetContent(), Origin: labs.Origin(it.GetOrigin()),
			Attention: it.GetAttention(), TurnsSinceAttended: int(it.GetTurnsSinceAttended()),
			Rehearsals: int(it.GetRehearsals()), AddedAt: it.GetAddedAt().AsTime(),
			LastAttendedAt: it.GetLastAttendedAt().AsTime(),
		}
	}
	return out, nil
}

// PutWorkingMemory writes a session's buffer if its version is still
// expected and returns the new version; labs.ErrSessionConflict when memory
// answers ABORTED (the version moved).
func (c *Client) PutWorkingMemory(ctx context.Context, namespace, session string, expected int64, items []labs.SessionItem) (int64, error) {
	req := &memoryv1.PutWorkingMemoryRequest{Namespace: namespace, SessionId: session, ExpectedVersion: expected,
		Items: SessionItemsToProto(items)}
	resp, err := call(ctx, c.retry, func(ctx context.Context) (*memoryv1.PutWorkingMemoryResponse, error) {
		return c.rpc.PutWorkingMemory(ctx, req)
	})
	if status.Code(err) == codes.Aborted {
		return 0, fmt.Errorf("put working memory %q session %q at version %d: %w (%v)", namespace, session, expected,
			labs.ErrSessionConflict, err)
	}
	if err != nil {
		return 0, fmt.Errorf("put working memory %q session %q: %w", namespace, session, err)
	}
	return resp.GetWorkingMemory().GetVersion(), nil
}

// SessionItemsToProto is items as memory's protos (labs.Origin numbers
// its values as memory's Origin does).
func SessionItemsToProto(items []labs.SessionItem) []*memoryv1.WorkingMemoryItem {
	out := make([]*memoryv1.WorkingMemoryItem, len(items))
	for i, it := range items {
		out[i] = &memoryv1.WorkingMemoryItem{
			EpisodeId: it.EpisodeID, Content: it.Content, Origin: memoryv1.Origin(it.Origin),
			Attention: it.Attention, TurnsSinceAttended: int32(it.TurnsSinceAttended), Rehearsals: int32(it.Rehearsals),
			AddedAt: timestamppb.New(it.AddedAt), LastAttendedAt: timestamppb.New(it.LastAttendedAt),
		}
	}
	return out
}
