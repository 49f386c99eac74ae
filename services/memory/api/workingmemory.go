package api

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/badrequest"
	"github.com/brainhq/brain/services/memory/episode"
)

// checkSession checks a required session id of the working-memory calls.
func checkSession(v *badrequest.Violations, ns, session string) {
	checkNamespace(v, "namespace", ns)
	v.Text("session_id", session, 1, episode.MaxSessionBytes, false)
}

// GetWorkingMemory returns a session's buffer; an unknown session has an
// empty one at version 0.
func (s *Server) GetWorkingMemory(ctx context.Context, req *memoryv1.GetWorkingMemoryRequest) (*memoryv1.GetWorkingMemoryResponse, error) {
	var v badrequest.Violations
	checkSession(&v, req.GetNamespace(), req.GetSessionId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	var wm episode.WorkingMemory
	err := s.d.Guard.Do(ctx, s.d.QueryTimeout, func(ctx context.Context) error {
		var err error
		wm, err = s.d.Store.GetWorkingMemory(ctx, req.GetNamespace(), req.GetSessionId())
		return err
	})
	if err != nil {
		return nil, s.toStatus(ctx, "get working memory", err)
	}
	return &memoryv1.GetWorkingMemoryResponse{WorkingMemory: workingMemoryToProto(wm)}, nil
}

// PutWorkingMemory replaces a session's buffer by compare-and-set on its
// version: a stale expected_version is ABORTED.
func (s *Server) PutWorkingMemory(ctx context.Context, req *memoryv1.PutWorkingMemoryRequest) (*memoryv1.PutWorkingMemoryResponse, error) {
	var v badrequest.Violations
	checkSession(&v, req.GetNamespace(), req.GetSessionId())
	if req.GetExpectedVersion() < 0 {
		v.Add("expected_version", "must be 0 or more, got %d", req.GetExpectedVersion())
	}
	items := req.GetItems()
	if len(items) > episode.MaxWorkingMemoryItems {
		v.Add("items", "must hold at most %d items, got %d", episode.MaxWorkingMemoryItems, len(items))
	} else {
		seen := make(map[string]bool, len(items))
		for i, it := range items {
			checkWorkingMemoryItem(&v, fmt.Sprintf("items[%d]", i), it)
			if id := idKey(it.GetEpisodeId()); id != "" {
				if seen[id] {
					v.Add(fmt.Sprintf("items[%d].episode_id", i), "repeats an episode of the same buffer")
				}
				seen[id] = true
			}
			if v.Len() >= 10 {
				break
			}
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	domain := make([]episode.WorkingMemoryItem, len(items))
	now := s.d.Now()
	for i, it := range items {
		domain[i] = episode.WorkingMemoryItem{
			EpisodeID: it.GetEpisodeId(), Content: it.GetContent(), Origin: episode.Origin(it.GetOrigin()),
			Attention: it.GetAttention(), TurnsSinceAttended: int(it.GetTurnsSinceAttended()),
			Rehearsals: int(it.GetRehearsals()), AddedAt: zeroTime(it.GetAddedAt()),
			LastAttendedAt: zeroTime(it.GetLastAttendedAt()),
		}
		if domain[i].AddedAt.IsZero() {
			domain[i].AddedAt = now
		}
		if domain[i].LastAttendedAt.IsZero() {
			domain[i].LastAttendedAt = domain[i].AddedAt
		}
	}
	var wm episode.WorkingMemory
	err := s.d.Guard.Do(ctx, s.d.QueryTimeout, func(ctx context.Context) error {
		var err error
		wm, err = s.d.Store.PutWorkingMemory(ctx, req.GetNamespace(), req.GetSessionId(), req.GetExpectedVersion(), domain)
		return err
	})
	if err != nil {
		return nil, s.toStatus(ctx, "put working memory", err)
	}
	return &memoryv1.PutWorkingMemoryResponse{WorkingMemory: workingMemoryToProto(wm)}, nil
}

// ClearWorkingMemory empties a session's buffer (idempotent).
func (s *Server) ClearWorkingMemory(ctx context.Context, req *memoryv1.ClearWorkingMemoryRequest) (*memoryv1.ClearWorkingMemoryResponse, error) {
	var v badrequest.Violations
	checkSession(&v, req.GetNamespace(), req.GetSessionId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	var (
		cleared bool
		version int64
	)
	err := s.d.Guard.Do(ctx, s.d.QueryTimeout, func(ctx context.Context) error {
		var err error
		cleared, version, err = s.d.Store.ClearWorkingMemory(ctx, req.GetNamespace(), req.GetSessionId())
		return err
	})
	if err != nil {
		return nil, s.toStatus(ctx, "clear working memory", err)
	}
	return &memoryv1.ClearWorkingMemoryResponse{Cleared: cleared, Version: version}, nil
}

func checkWorkingMemoryItem(v *badrequest.Violations, prefix string, it *memoryv1.WorkingMemoryItem) {
	if it == nil {
		v.Add(prefix, "is required")
		return
	}
	checkID(v, prefix+".episode_id", it.GetEpisodeId(), true)
	v.Text(prefix+".content", it.GetContent(), 0, episode.MaxWorkingMemoryContentBytes, true)
	switch it.GetOrigin() {
	case memoryv1.Origin_ORIGIN_RECALLED, memoryv1.Origin_ORIGIN_HELD, memoryv1.Origin_ORIGIN_PREDICTED:
	default:
		v.Add(prefix+".origin", "must be ORIGIN_RECALLED, ORIGIN_HELD or ORIGIN_PREDICTED, got %d", int32(it.GetOrigin()))
	}
	checkFraction(v, prefix+".attention", it.GetAttention())
	if n := it.GetTurnsSinceAttended(); n < 0 {
		v.Add(prefix+".turns_since_attended", "must be 0 or more, got %d", n)
	}
	if n := it.GetRehearsals(); n < 0 {
		v.Add(prefix+".rehearsals", "must be 0 or more, got %d", n)
	}
	checkTime(v, prefix+".added_at", it.GetAddedAt())
	checkTime(v, prefix+".last_attended_at", it.GetLastAttendedAt())
}

func workingMemoryToProto(wm episode.WorkingMemory) *memoryv1.WorkingMemory {
	out := &memoryv1.WorkingMemory{
		Namespace: wm.Namespace, SessionId: wm.SessionID, Version: wm.Version,
		Items: make([]*memoryv1.WorkingMemoryItem, len(wm.Items)),
	}
	if !wm.UpdatedAt.IsZero() {
		out.UpdatedAt = timestamppb.New(wm.UpdatedAt)
	}
	for i, it := range wm.Items {
		out.Items[i] = &memoryv1.WorkingMemoryItem{
			EpisodeId: it.EpisodeID, Content: it.Content, Origin: memoryv1.Origin(it.Origin),
			Attention: it.Attention, TurnsSinceAttended: int32(it.TurnsSinceAttended), Rehearsals: int32(it.Rehearsals),
			AddedAt: timestamppb.New(it.AddedAt), LastAttendedAt: timestamppb.New(it.LastAttendedAt),
		}
	}
	return out
}

// zeroTime is ts, or the zero time when unset.
func zeroTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
