// Package api implements brain.orchestrator.v1.OrchestratorService: it
// validates requests, runs the LAB graph and streams each LAB's result as
// the scheduler hands it out, then the summary. Degraded LABs degrade the
// answer, never the stream.
package api

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/kit/server"
	"github.com/brainhq/brain/services/orchestrator/graph"
	"github.com/brainhq/brain/services/orchestrator/labs"
)

// Defaults of Deps.
const (
	DefaultBudget = 300 * time.Millisecond
	DefaultMax    = 30 * time.Second
	// sendReserveMax caps the time kept back from the caller's deadline for
	// sending the last results and the summary.
	sendReserveMax = 20 * time.Millisecond
)

// Deps are what the server needs.
type Deps struct {
	// Memory serves LAB_011 and LAB_007; nil makes them degrade. When it
	// is also a labs.SessionMemory (the memory client is), runs with a
	// session id keep the session's working memory between turns.
	Memory labs.Memory
	// Access takes LAB_009's accesses; nil makes it degrade.
	Access labs.AccessRecorder
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
	// Now is the clock for runs without as_of; defaults to time.Now.
	Now func() time.Time
	// DefaultBudget is the run budget when the request sets none (300 ms).
	DefaultBudget time.Duration
	// MaxBudget caps any run budget (30 s).
	MaxBudget time.Duration
	// ObserveLab, when set, is called once per finished LAB (for metrics).
	ObserveLab func(labID string, status labs.Status, elapsed time.Duration)
}

// Server implements orchestratorv1.OrchestratorServiceServer.
type Server struct {
	orchestratorv1.UnimplementedOrchestratorServiceServer
	sched    *graph.Scheduler
	deps     Deps
	sessions labs.SessionMemory // nil: runs keep no session state
	catalog  []*orchestratorv1.LabInfo
}

// New returns the server. It panics if the built-in LAB catalog is not a
// valid graph, which its tests rule out.
func New(deps Deps) *Server {
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.DefaultBudget <= 0 {
		deps.DefaultBudget = DefaultBudget
	}
	if deps.MaxBudget <= 0 {
		deps.MaxBudget = DefaultMax
	}
	sched, err := graph.New(labs.Catalog(deps.Memory, deps.Access))
	if err != nil {
		panic(fmt.Sprintf("api: invalid LAB catalog: %v", err))
	}
	s := &Server{sched: sched, deps: deps}
	s.sessions, _ = deps.Memory.(labs.SessionMemory)
	for _, l := range sched.Labs() {
		s.catalog = append(s.catalog, &orchestratorv1.LabInfo{
			Id:          l.ID(),
			Name:        l.Name(),
			Layer:       int32(l.Layer()),
			DependsOn:   l.DependsOn(),
			Description: l.Description(),
			Budget:      durationpb.New(l.Budget()),
		})
	}
	return s
}

// ListLabs returns the catalog in dependency order.
func (s *Server) ListLabs(context.Context, *orchestratorv1.ListLabsRequest) (*orchestratorv1.ListLabsResponse, error) {
	return &orchestratorv1.ListLabsResponse{Labs: s.catalog}, nil
}

// Orchestrate runs the LAB graph over the request and streams the results.
func (s *Server) Orchestrate(req *orchestratorv1.OrchestrateRequest, stream grpc.ServerStreamingServer[orchestratorv1.OrchestrateResponse]) error {
	ctx := stream.Context()
	in, budget, err := requestFromProto(req, s.deps.Now())
	if err != nil {
		return err
	}
	budget = s.budget(ctx, budget)

	// emit runs on this goroutine only: the scheduler calls it from Run's
	// caller, so the stream has a single sender.
	var sum graph.Summary
	err = s.sched.Run(ctx, in, budget, func(e graph.Event) error {
		if e.Summary != nil {
			sum = *e.Summary
			sp := summary(sum, in.AsOf)
			sp.Session = s.endSession(ctx, in, sum)
			return stream.Send(&orchestratorv1.OrchestrateResponse{
				Event: &orchestratorv1.OrchestrateResponse_Summary{Summary: sp}})
		}
		if s.deps.ObserveLab != nil {
			s.deps.ObserveLab(e.Result.LabID, e.Result.Status, e.Result.Elapsed)
		}
		return stream.Send(&orchestratorv1.OrchestrateResponse{
			Event: &orchestratorv1.OrchestrateResponse_Lab{Lab: labResult(*e.Result)}})
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return status.FromContextError(ctxErr).Err()
		}
		return fmt.Errorf("send orchestrate result: %w", err)
	}
	s.logRun(server.RequestID(ctx), in, budget, sum)
	return nil
}

// budget is the run budget: the request's (or the default), capped by
// MaxBudget and by the caller's deadline less a reserve for sending.
func (s *Server) budget(ctx context.Context, asked time.Duration) time.Duration {
	b := asked
	if b == 0 {
		b = s.deps.DefaultBudget
	}
	b = min(b, s.deps.MaxBudget)
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		left -= min(left/10, sendReserveMax)
		b = min(b, max(left, time.Millisecond))
	}
	return b
}

func (s *Server) logRun(requestID string, in labs.Request, budget time.Duration, sum graph.Summary) {
	var failed []string
	for _, r := range sum.Results {
		if r.Status == labs.StatusFailed {
			failed = append(failed, r.LabID+": "+r.Detail)
		}
	}
	fields := []zap.Field{
		zap.String("request_id", requestID), zap.String("namespace", in.Namespace), zap.Duration("elapsed", sum.Elapsed),
		zap.Duration("budget", budget), zap.Strings("degraded_labs", sum.Degraded),
	}
	if len(failed) > 0 {
		// A FAILED LAB is a budget overrun or a bug, not a degraded input.
		s.deps.Logger.Warn("orchestrate: LABs failed", append(fields, zap.Strings("failed", failed))...)
		return
	}
	s.deps.Logger.Debug("orchestrate", fields...)
}

// endSession ends a run with a session id by writing the session's buffer
// back (labs.SaveSession), before the summary that reports it. It lives
// here, after the graph, rather than in a LAB: the write needs LAB_011's
// merge, LAB_010's attention and LAB_007's predictions, i.e. the end of the
// longest chain, and a tenth LAB that only writes would sit in the catalog
// and the stream without computing anything. Nil without a session id.
func (s *Server) endSession(ctx context.Context, in labs.Request, sum graph.Summary) *orchestratorv1.SessionMemory {
	if in.SessionID == "" {
		return nil
	}
	wm, ok := value[labs.WorkingMemory](sum, labs.IDWorkingMemory)
	switch {
	case !ok:
		return &orchestratorv1.SessionMemory{SessionId: in.SessionID,
			DegradedReason: "LAB_011 produced no working memory: nothing written"}
	case wm.Session == nil:
		reason := wm.SessionReason
		if reason == "" {
			reason = "no memory configured for sessions: nothing written"
		}
		return &orchestratorv1.SessionMemory{SessionId: in.SessionID, DegradedReason: reason}
	}
	var att *labs.Attention
	if a, ok := value[labs.Attention](sum, labs.IDAttention); ok {
		att = &a
	}
	var pre *labs.Preload
	if p, ok := value[labs.Preload](sum, labs.IDPreload); ok {
		pre = &p
	}
	sctx, cancel := context.WithTimeout(ctx, labs.SaveTimeout)
	defer cancel()
	out := labs.SaveSession(sctx, s.sessions, in, wm.Session, att, pre)
	if !out.Saved {
		s.deps.Logger.Warn("orchestrate: session working memory not written", zap.String("request_id", server.RequestID(ctx)),
			zap.String("namespace", in.Namespace), zap.String("session_id", in.SessionID), zap.String("reason", out.Reason),
			zap.Int("attempts", out.Attempts))
	}
	return sessionToProto(out)
}
