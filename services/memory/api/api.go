// Package api is the gRPC edge of the memory service: it validates requests
// (INVALID_ARGUMENT naming each bad field), translates between protos and
// domain types, and maps domain errors to gRPC codes, once, here.
package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/badrequest"
	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/fallback"
	"github.com/brainhq/brain/services/memory/recall"
	"github.com/brainhq/brain/services/memory/store"
)

// Store is what the handlers need of the PostgreSQL store.
type Store interface {
	Write(ctx context.Context, eps []episode.Episode) ([]episode.Episode, error)
	Get(ctx context.Context, ns, id string) (episode.Episode, error)
	List(ctx context.Context, q store.ListQuery) ([]episode.Episode, string, error)
	RecordAccess(ctx context.Context, ns string, ids []string, at time.Time) (int, error)
	Delete(ctx context.Context, ns, id string) (bool, error)
	DeleteNamespaceBatch(ctx context.Context, ns string) (int64, error)
	Stats(ctx context.Context, ns string) (store.Stats, error)
	GetWorkingMemory(ctx context.Context, ns, session string) (episode.WorkingMemory, error)
	PutWorkingMemory(ctx context.Context, ns, session string, expected int64, items []episode.WorkingMemoryItem) (episode.WorkingMemory, error)
	ClearWorkingMemory(ctx context.Context, ns, session string) (bool, int64, error)
	DeleteWorkingMemories(ctx context.Context, ns string) (int64, error)
}

// Recaller answers recalls with the fallback order.
type Recaller interface {
	Recall(ctx context.Context, q recall.Query) (fallback.Answer, error)
}

// PoolStats reads the connection pool's counters.
type PoolStats func() *memoryv1.PoolStats

// Deps are the handlers' collaborators.
type Deps struct {
	Store    Store
	Recaller Recaller
	Guard    *fallback.Guard
	Cache    *fallback.Cache
	Pool     PoolStats
	Log      *zap.Logger
	Now      func() time.Time
	// QueryTimeout caps the time any call other than Recall spends in
	// PostgreSQL (Recall has its own cap inside the Recaller).
	QueryTimeout time.Duration
	// DeleteHold is how long after a failed delete the recall cache stores
	// no answer of its namespace: the delete may still commit until its
	// statement ends on the server (PostgreSQL's statement timeout).
	DeleteHold time.Duration
	// OutcomeUnknown (may be nil) is called for every write whose COMMIT
	// was sent but never confirmed, for the operators' counter.
	OutcomeUnknown func()
}

// Server implements memoryv1.MemoryServiceServer.
type Server struct {
	memoryv1.UnimplementedMemoryServiceServer
	d Deps
}

// New returns the handlers.
func New(d Deps) *Server {
	if d.QueryTimeout <= 0 {
		d.QueryTimeout = 2 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.OutcomeUnknown == nil {
		d.OutcomeUnknown = func() {}
	}
	return &Server{d: d}
}

// WriteEpisodes stores a batch atomically; it never acknowledges a write it
// did not commit.
func (s *Server) WriteEpisodes(ctx context.Context, req *memoryv1.WriteEpisodesRequest) (*memoryv1.WriteEpisodesResponse, error) {
	var v badrequest.Violations
	eps := req.GetEpisodes()
	switch {
	case len(eps) == 0:
		v.Add("episodes", "must hold at least one episode")
	case len(eps) > episode.MaxBatch:
		v.Add("episodes", "must hold at most %d episodes, got %d", episode.MaxBatch, len(eps))
	default:
		seen := make(map[[2]string]bool, len(eps))
		for i, ep := range eps {
			checkEpisode(&v, fmt.Sprintf("episodes[%d]", i), ep)
			if id := idKey(ep.GetId()); id != "" {
				k := [2]string{ep.GetNamespace(), id}
				if seen[k] {
					v.Add(fmt.Sprintf("episodes[%d].id", i), "repeats an id of the same batch")
				}
				seen[k] = true
			}
			if v.Len() >= 10 { // enough to fix; do not build a huge error
				break
			}
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	domain := make([]episode.Episode, len(eps))
	for i, ep := range eps {
		domain[i] = episodeFromProto(ep)
	}
	var stored []episode.Episode
	// A batch's work grows with its bytes: one query's time is not enough
	// for a large one, however healthy PostgreSQL is.
	budget := writeBudget(s.d.QueryTimeout, proto.Size(req))
	err := s.d.Guard.Do(ctx, budget, func(ctx context.Context) error {
		var err error
		stored, err = s.d.Store.Write(ctx, domain)
		return err
	})
	if err != nil {
		if errors.Is(err, store.ErrOutcomeUnknown) {
			s.d.OutcomeUnknown()
		}
		return nil, s.toStatus(ctx, "write episodes", err)
	}
	out := &memoryv1.WriteEpisodesResponse{Episodes: make([]*memoryv1.Episode, len(stored))}
	for i, ep := range stored {
		out.Episodes[i] = episodeToProto(ep)
	}
	return out, nil
}

// Recall answers from PostgreSQL, the cache, or nothing, always flagged.
func (s *Server) Recall(ctx context.Context, req *memoryv1.RecallRequest) (*memoryv1.RecallResponse, error) {
	var v badrequest.Violations
	checkNamespace(&v, "namespace", req.GetNamespace())
	checkRequiredText(&v, "query", req.GetQuery(), episode.MaxQueryBytes, true)
	if l := req.GetLimit(); l < 0 || l > episode.MaxLimit {
		v.Add("limit", "must be between 1 and %d (0 means %d), got %d", episode.MaxLimit, episode.DefaultLimit, l)
	}
	v.Text("session_id", req.GetSessionId(), 0, episode.MaxSessionBytes, false)
	v.Text("speaker", req.GetSpeaker(), 0, episode.MaxSpeakerBytes, false)
	checkMetadata(&v, "metadata", req.GetMetadata())
	checkTime(&v, "created_after", req.GetCreatedAfter())
	checkTime(&v, "created_before", req.GetCreatedBefore())
	checkTime(&v, "as_of", req.GetAsOf())
	if req.MinImportance != nil {
		checkFraction(&v, "min_importance", req.GetMinImportance())
	}
	var mode recall.MatchMode
	switch req.GetMatch() {
	case memoryv1.MatchMode_MATCH_MODE_UNSPECIFIED, memoryv1.MatchMode_MATCH_MODE_RANKED:
		mode = recall.Ranked
	case memoryv1.MatchMode_MATCH_MODE_SUBSTRING:
		mode = recall.Substring
	default:
		v.Add("match", "unknown match mode %d", int32(req.GetMatch()))
	}
	checkWeights(&v, req.GetWeights())
	checkDuration(&v, "recency_half_life", req.GetRecencyHalfLife(), minHalfLife, maxHalfLife)
	if err := v.Err(); err != nil {
		return nil, err
	}

	q := recall.Query{
		Namespace:     req.GetNamespace(),
		Text:          req.GetQuery(),
		SessionID:     req.GetSessionId(),
		Speaker:       req.GetSpeaker(),
		Metadata:      req.GetMetadata(),
		Limit:         int(req.GetLimit()),
		CreatedAfter:  optTime(req.GetCreatedAfter()),
		CreatedBefore: optTime(req.GetCreatedBefore()),
		MinImportance: req.MinImportance,
		Mode:          mode,
	}
	if req.GetAsOf() != nil {
		q.AsOf = req.GetAsOf().AsTime()
	}
	if w := req.GetWeights(); w != nil {
		q.Weights = recall.Weights{Relevance: w.GetRelevance(), Importance: w.GetImportance(), Recency: w.GetRecency()}
	}
	if hl := req.GetRecencyHalfLife(); hl != nil {
		q.HalfLife = hl.AsDuration()
	}
	ans, err := s.d.Recaller.Recall(ctx, q)
	if err != nil {
		return nil, s.toStatus(ctx, "recall", err)
	}
	out := &memoryv1.RecallResponse{
		Episodes:       make([]*memoryv1.RecalledEpisode, len(ans.Results)),
		Source:         sourceToProto(ans.Source),
		Degraded:       ans.Degraded(),
		DegradedReason: ans.Reason,
		AsOf:           timestamppb.New(ans.AsOf),
	}
	if ans.Source == fallback.SourceCache {
		out.CacheAge = durationpb.New(ans.CacheAge)
	}
	contributions := recall.Contributions(ans.Results, q, ans.AsOf)
	for i, r := range ans.Results {
		out.Episodes[i] = &memoryv1.RecalledEpisode{
			Episode: episodeToProto(r.Episode),
			Scores:  scoresToProto(r.Scores, contributions[i]),
		}
	}
	if ans.Degraded() {
		s.d.Log.Warn("recall degraded", zap.String("namespace", q.Namespace), zap.String("source", ans.Source.String()), zap.String("reason", ans.Reason))
	}
	return out, nil
}

// GetEpisode returns one episode of a namespace.
func (s *Server) GetEpisode(ctx context.Context, req *memoryv1.GetEpisodeRequest) (*memoryv1.GetEpisodeResponse, error) {
	var v badrequest.Violations
	checkNamespace(&v, "namespace", req.GetNamespace())
	checkID(&v, "id", req.GetId(), true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	var ep episode.Episode
	err := s.d.Guard.Do(ctx, s.d.QueryTimeout, func(ctx context.Context) error {
		var err error
		ep, err = s.d.Store.Get(ctx, req.GetNamespace(), req.GetId())
		return err
	})
	if err != nil {
		return nil, s.toStatus(ctx, "get episode", err)
	}
	return &memoryv1.GetEpisodeResponse{Episode: episodeToProto(ep)}, nil
}

// ListEpisodes pages through a namespace in time order.
func (s *Server) ListEpisodes(ctx context.Context, req *memoryv1.ListEpisodesRequest) (*memoryv1.ListEpisodesResponse, error) {
	var v badrequest.Violations
	checkNamespace(&v, "namespace", req.GetNamespace())
	v.Text("session_id", req.GetSessionId(), 0, episode.MaxSessionBytes, false)
	v.Text("speaker", req.GetSpeaker(), 0, episode.MaxSpeakerBytes, false)
	checkMetadata(&v, "metadata", req.GetMetadata())
	checkTime(&v, "created_after", req.GetCreatedAfter())
	checkTime(&v, "created_before", req.GetCreatedBefore())
	if n := req.GetPageSize(); n < 0 || n > episode.MaxPageSize {
		v.Add("page_size", "must be between 1 and %d (0 means %d), got %d", episode.MaxPageSize, episode.DefaultPageSize, n)
	}
	v.Text("page_token", req.GetPageToken(), 0, 256, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	q := store.ListQuery{
		Namespace:     req.GetNamespace(),
		SessionID:     req.GetSessionId(),
		Speaker:       req.GetSpeaker(),
		Metadata:      req.GetMetadata(),
		CreatedAfter:  optTime(req.GetCreatedAfter()),
		CreatedBefore: optTime(req.GetCreatedBefore()),
		PageSize:      int(req.GetPageSize()),
		PageToken:     req.GetPageToken(),
		Descending:    req.GetDescending(),
	}
	var (
		eps  []episode.Episode
		next string
	)
	err := s.d.Guard.Do(ctx, s.d.QueryTimeout, func(ctx context.Context) error {
		var err error
		eps, next, err = s.d.Store.List(ctx, q)
		return err
	})
	if err != nil {
		return nil, s.toStatus(ctx, "list episodes", err)
	}
	out := &memoryv1.ListEpisodesResponse{Episodes: make([]*memoryv1.Episode, len(eps)), NextPageToken: next}
	for i, ep := range eps {
		out.Episodes[i] = episodeToProto(ep)
	}
	return out, nil
}

// RecordAccess bumps access counts.
func (s *Server) RecordAccess(ctx context.Context, req *memoryv1.RecordAccessRequest) (*memoryv1.RecordAccessResponse, error) {
	var v badrequest.Violations
	checkNamespace(&v, "namespace", req.GetNamespace())
	ids := req.GetIds()
	switch {
	case len(ids) == 0:
		v.Add("ids", "must hold at least one id")
	case len(ids) > episode.MaxAccessIDs:
		v.Add("ids", "must hold at most %d ids, got %d", episode.MaxAccessIDs, len(ids))
	default:
		for i, id := range ids {
			checkID(&v, fmt.Sprintf("ids[%d]", i), id, true)
			if v.Len() >= 10 {
				break
			}
		}
	}
	checkTime(&v, "accessed_at", req.GetAccessedAt())
	if err := v.Err(); err != nil {
		return nil, err
	}
	at := s.d.Now()
	if req.GetAccessedAt() != nil {
		at = req.GetAccessedAt().AsTime()
	}
	var n int
	err := s.d.Guard.Do(ctx, s.d.QueryTimeout, func(ctx context.Context) error {
		var err error
		n, err = s.d.Store.RecordAccess(ctx, req.GetNamespace(), ids, at)
		return err
	})
	if err != nil {
		return nil, s.toStatus(ctx, "record access", err)
	}
	return &memoryv1.RecordAccessResponse{Updated: int32(n)}, nil
}

// DeleteEpisode forgets one episode (idempotent).
func (s *Server) DeleteEpisode(ctx context.Context, req *memoryv1.DeleteEpisodeRequest) (*memoryv1.DeleteEpisodeResponse, error) {
	var v badrequest.Violations
	checkLegacyNamespace(&v, "namespace", req.GetNamespace())
	checkID(&v, "id", req.GetId(), true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	var deleted bool
	err := s.d.Guard.Do(ctx, s.d.QueryTimeout, func(ctx context.Context) error {
		var err error
		deleted, err = s.d.Store.Delete(ctx, req.GetNamespace(), req.GetId())
		return err
	})
	// Whatever the outcome: a failed or timed-out delete may have committed.
	s.d.Cache.PurgeEpisode(req.GetNamespace(), req.GetId(), s.purgeHold(err))
	if err != nil {
		return nil, s.toStatus(ctx, "delete episode", err)
	}
	return &memoryv1.DeleteEpisodeResponse{Deleted: deleted}, nil
}

// DeleteNamespace erases a namespace, in batches (see erase).
func (s *Server) DeleteNamespace(ctx context.Context, req *memoryv1.DeleteNamespaceRequest) (*memoryv1.DeleteNamespaceResponse, error) {
	var v badrequest.Violations
	checkLegacyNamespace(&v, "namespace", req.GetNamespace())
	if err := v.Err(); err != nil {
		return nil, err
	}
	n, err := s.erase(ctx, req.GetNamespace())
	// Whatever the outcome: a failed or cut-short erase may have committed
	// some batches.
	s.d.Cache.PurgeNamespace(req.GetNamespace(), s.purgeHold(err))
	if err != nil {
		return nil, s.eraseStatus(ctx, n, err)
	}
	return &memoryv1.DeleteNamespaceResponse{Deleted: n}, nil
}

// purgeHold is how long the cache stores no answer of a namespace after a
// delete there ended with err: none after a delete that committed, DeleteHold
// after one whose outcome the caller cannot know.
func (s *Server) purgeHold(err error) time.Duration {
	if err == nil {
		return 0
	}
	return s.d.DeleteHold
}

// GetStats reports counts when PostgreSQL answers, and pool and breaker state
// always: an operator needs them most when PostgreSQL is down.
func (s *Server) GetStats(ctx context.Context, req *memoryv1.GetStatsRequest) (*memoryv1.GetStatsResponse, error) {
	var v badrequest.Violations
	if req.GetNamespace() != "" {
		checkNamespace(&v, "namespace", req.GetNamespace())
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	out := &memoryv1.GetStatsResponse{
		ExpectedSchemaVersion: store.SchemaVersion,
		Breaker:               memoryv1.BreakerState_BREAKER_STATE_CLOSED,
		CacheEntries:          int32(s.d.Cache.Len()),
	}
	if s.d.Pool != nil {
		out.Pool = s.d.Pool()
	}
	var st store.Stats
	err := s.d.Guard.Do(ctx, s.d.QueryTimeout, func(ctx context.Context) error {
		var err error
		st, err = s.d.Store.Stats(ctx, req.GetNamespace())
		return err
	})
	if open, _ := s.d.Guard.Breaker().State(); open {
		out.Breaker = memoryv1.BreakerState_BREAKER_STATE_OPEN
	}
	switch {
	case err == nil:
		out.PostgresAvailable = true
		out.EpisodeCount, out.NamespaceCount, out.SchemaVersion = st.EpisodeCount, st.NamespaceCount, st.SchemaVersion
	case errors.Is(err, fallback.ErrUnavailable):
		// Reported through postgres_available=false.
	default:
		return nil, s.toStatus(ctx, "stats", err)
	}
	return out, nil
}

// ReasonOutcomeUnknown is the ErrorInfo reason of a write that may or may
// not have been stored, so clients can branch on it without parsing text.
const ReasonOutcomeUnknown = "WRITE_OUTCOME_UNKNOWN"

// errorDomain is the ErrorInfo domain of this service's errors.
const errorDomain = "memory.brain"

// afterFailure says what a call that failed before PostgreSQL confirmed it
// left behind. Write runs an explicit transaction and reports the one case
// it cannot know (ErrOutcomeUnknown) separately, so any other failure of it
// is rolled back; the deletes and RecordAccess run one implicit-transaction
// statement batch, which PostgreSQL may still commit after the client gave up.
var afterFailure = map[string]string{
	"write episodes":       "nothing was stored (the transaction was rolled back); retry with the same ids",
	"delete episode":       "the delete may or may not have been applied; retrying it is safe",
	"delete namespace":     "the erase may or may not have been applied; retrying it is safe",
	"record access":        "the access may or may not have been counted",
	"put working memory":   "the buffer may or may not have been written: read it again (its version says)",
	"clear working memory": "the clear may or may not have been applied; retrying it is safe",
}

// outcomeUnknownHint is what a client must do after ErrOutcomeUnknown.
const outcomeUnknownHint = "the write may or may not have been stored: retry with the same ids, " +
	"which stores each episode exactly once either way (a retry of episodes sent without ids may store them twice)"

// toStatus maps a domain error to a gRPC status, once, at the edge.
func (s *Server) toStatus(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, store.ErrOutcomeUnknown):
		c := codes.Unavailable
		switch {
		case ctx.Err() != nil:
			c = status.FromContextError(ctx.Err()).Code()
		case errors.Is(err, fallback.ErrCallerDeadline):
			c = codes.DeadlineExceeded
		}
		st, derr := status.New(c, fmt.Sprintf("%s: %v; %s", op, err, outcomeUnknownHint)).
			WithDetails(&errdetails.ErrorInfo{Reason: ReasonOutcomeUnknown, Domain: errorDomain})
		if derr != nil {
			return status.Errorf(c, "%s: %v; %s", op, err, outcomeUnknownHint)
		}
		return st.Err()
	case errors.Is(err, store.ErrVersionConflict):
		return status.Errorf(codes.Aborted, "%s: %v: read the working memory again, merge and retry", op, err)
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "episode not found in this namespace")
	case errors.Is(err, store.ErrBadPageToken):
		return status.Error(codes.InvalidArgument, "invalid request: page_token: was not issued for this namespace and these filters")
	case errors.Is(err, store.ErrInvalid):
		return status.Errorf(codes.InvalidArgument, "invalid request: %v", err)
	case errors.Is(err, store.ErrNotMigrated), errors.Is(err, store.ErrMigrating):
		return status.Errorf(codes.Unavailable, "%s: %v", op, err)
	case errors.Is(err, fallback.ErrCallerDeadline):
		// Not PostgreSQL's fault: no retry hint that blames it.
		after, ok := afterFailure[op]
		if !ok {
			after = "nothing was changed"
		}
		return status.Errorf(codes.DeadlineExceeded, "%s: %v; %s; give the call more time", op, err, after)
	case errors.Is(err, fallback.ErrUnavailable):
		after, ok := afterFailure[op]
		if !ok {
			after = "nothing was changed; retry later"
		}
		return status.Errorf(codes.Unavailable, "%s: %v; %s", op, err, after)
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return status.Errorf(codes.DeadlineExceeded, "%s: deadline exceeded", op)
	case errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%s: canceled by the caller", op)
	default:
		s.d.Log.Error("unexpected store error", zap.String("op", op), zap.Error(err))
		return status.Errorf(codes.Internal, "%s failed", op)
	}
}
