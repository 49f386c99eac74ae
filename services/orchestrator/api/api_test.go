package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/orchestrator/labs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var asOf = time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC)

// fixedMemory answers every Recall with the same candidates at once, and
// ListEpisodes from the same episodes by session and time.
type fixedMemory struct {
	candidates []labs.RecalledEpisode
	err        error
}

func newFixedMemory(n int) *fixedMemory {
	topics := []string{"deploy", "database", "roadmap", "hiring", "outage", "release", "budget", "design",
		"testing", "security", "latency", "migration", "customer"}
	moods := []string{"great success", "failed again", "calm review", "anxious wait", "good progress", "nothing"}
	m := &fixedMemory{}
	for i := range n {
		e := labs.Episode{
			ID:         fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			Namespace:  "ns",
			SessionID:  fmt.Sprintf("s%d", i%5),
			Content:    fmt.Sprintf("note %d on the %s and the %s: %s", i, topics[i%len(topics)], topics[(i*7+3)%len(topics)], moods[i%len(moods)]),
			Importance: 0.5,
			CreatedAt:  asOf.Add(-time.Duration(n-i) * 2 * time.Minute), // the best ranked is the oldest
			Metadata:   map[string]string{"topic": topics[i%len(topics)]},
		}
		if i%3 == 0 {
			e.Affect = &labs.Affect{Valence: float64(i%5)/2 - 1, Arousal: 0.5, Intensity: 0.4}
		}
		rel := 1 - float64(i)/float64(n)
		e.Speaker = []string{"Nate", "Olivia"}[i%2]
		m.candidates = append(m.candidates, labs.RecalledEpisode{Episode: e,
			Scores: labs.Scores{Relevance: rel, Importance: 0.5, Recency: 0.5, Total: 0.6*rel + 0.2, OwnWords: rel,
				Contributions: labs.Contributions{OwnWords: 0.6 * rel, Importance: 0.1, Recency: 0.1}}})
	}
	return m
}

func (m *fixedMemory) Recall(_ context.Context, q labs.RecallQuery) (labs.RecallAnswer, error) {
	if m.err != nil {
		return labs.RecallAnswer{}, m.err
	}
	return labs.RecallAnswer{Source: labs.SourcePostgres, Episodes: m.candidates[:min(q.Limit, len(m.candidates))]}, nil
}

func (m *fixedMemory) ListEpisodes(_ context.Context, q labs.ListQuery) ([]labs.Episode, error) {
	if m.err != nil {
		return nil, m.err
	}
	var out []labs.Episode
	for _, c := range m.candidates { // oldest first
		e := c.Episode
		if e.SessionID == q.SessionID && e.CreatedAt.After(q.CreatedAfter) && len(out) < q.Limit {
			out = append(out, e)
		}
	}
	return out, nil
}

type hangingMemory struct{}

func (hangingMemory) Recall(ctx context.Context, _ labs.RecallQuery) (labs.RecallAnswer, error) {
	<-ctx.Done()
	return labs.RecallAnswer{}, ctx.Err()
}

func (hangingMemory) ListEpisodes(ctx context.Context, _ labs.ListQuery) ([]labs.Episode, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

type recorder struct {
	mu  sync.Mutex
	ids []string
}

func (r *recorder) Submit(_ string, ids []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, ids...)
	return true
}

func serve(tb testing.TB, deps Deps) orchestratorv1.OrchestratorServiceClient {
	tb.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	orchestratorv1.RegisterOrchestratorServiceServer(srv, New(deps))
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return orchestratorv1.NewOrchestratorServiceClient(conn)
}

// orchestrate reads a whole stream.
func orchestrate(ctx context.Context, c orchestratorv1.OrchestratorServiceClient, req *orchestratorv1.OrchestrateRequest) ([]*orchestratorv1.LabResult, *orchestratorv1.Summary, error) {
	stream, err := c.Orchestrate(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var results []*orchestratorv1.LabResult
	var sum *orchestratorv1.Summary
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return results, sum, nil
		}
		if err != nil {
			return results, sum, err
		}
		if sum != nil {
			return results, sum, fmt.Errorf("message after the summary: %v", msg)
		}
		switch ev := msg.GetEvent().(type) {
		case *orchestratorv1.OrchestrateResponse_Lab:
			results = append(results, ev.Lab)
		case *orchestratorv1.OrchestrateResponse_Summary:
			sum = ev.Summary
		}
	}
}

func baseRequest() *orchestratorv1.OrchestrateRequest {
	return &orchestratorv1.OrchestrateRequest{
		Namespace:      "ns",
		Query:          "what went wrong with the deploy and the database",
		SessionId:      "s1",
		Goal:           "ship the database migration",
		CurrentEmotion: &orchestratorv1.Emotion{Valence: -0.2, Arousal: 0.6, Intensity: 0.5},
		Options: &orchestratorv1.OrchestrateOptions{
			AsOf:                 timestamppb.New(asOf),
			Budget:               durationpb.New(5 * time.Second),
			PreloadMinConfidence: proto.Float64(0.05),
		},
	}
}

func byID(rs []*orchestratorv1.LabResult) map[string]*orchestratorv1.LabResult {
	m := map[string]*orchestratorv1.LabResult{}
	for _, r := range rs {
		m[r.GetLabId()] = r
	}
	return m
}

func TestOrchestrateStreamsNineResultsThenSummary(t *testing.T) {
	rec := &recorder{}
	c := serve(t, Deps{Memory: newFixedMemory(50), Access: rec})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results, sum, err := orchestrate(ctx, c, baseRequest())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 9 || sum == nil {
		t.Fatalf("%d results, summary %v; want 9 and a summary", len(results), sum != nil)
	}
	got := byID(results)
	for _, id := range []string{"LAB_011", "LAB_001", "LAB_010", "LAB_009", "LAB_007", "LAB_008", "LAB_028", "LAB_012", "LAB_006"} {
		r := got[id]
		if r.GetStatus() != orchestratorv1.LabStatus_LAB_STATUS_OK || r.GetOutput() == nil {
			t.Errorf("%s: %s %q output %v", id, r.GetStatus(), r.GetDetail(), r.GetOutput() != nil)
		}
	}
	// Completion order respects dependencies.
	pos := map[string]int{}
	for i, r := range results {
		pos[r.GetLabId()] = i
		for _, d := range r.GetDependsOn() {
			if _, done := pos[d]; !done {
				t.Errorf("%s sent before its dependency %s", r.GetLabId(), d)
			}
		}
	}
	wm := got["LAB_011"].GetWorkingMemory()
	if len(wm.GetItems()) != 7 || wm.GetCandidates() != 50 {
		t.Errorf("working memory: %d items of %d candidates", len(wm.GetItems()), wm.GetCandidates())
	}
	// LAB_011 passes memory's explanation of each score on, and the speaker.
	for _, it := range wm.GetItems() {
		sc := it.GetScores()
		if it.GetSpeaker() == "" || sc.GetOwnWords() != sc.GetRelevance() || sc.GetContributions().GetOwnWords() != 0.6*sc.GetRelevance() {
			t.Errorf("item %s: speaker %q scores %v", it.GetEpisodeId(), it.GetSpeaker(), sc)
		}
	}
	att := got["LAB_010"].GetAttention().GetItems()
	if len(sum.GetWorkingMemory()) != 7 {
		t.Fatalf("summary working memory has %d items", len(sum.GetWorkingMemory()))
	}
	for i, it := range sum.GetWorkingMemory() {
		if it.GetEpisodeId() != att[i].GetEpisodeId() {
			t.Errorf("summary item %d = %s, want LAB_010's %s", i, it.GetEpisodeId(), att[i].GetEpisodeId())
		}
	}
	if sum.GetConfidence() != got["LAB_006"].GetMetacognition().GetConfidence() || sum.GetConfidence() <= 0 {
		t.Errorf("summary confidence %g vs LAB_006 %g", sum.GetConfidence(), got["LAB_006"].GetMetacognition().GetConfidence())
	}
	if len(sum.GetLabs()) != 9 || len(sum.GetDegradedLabs()) != 0 || !sum.GetAsOf().AsTime().Equal(asOf) {
		t.Errorf("summary = %v", sum)
	}
	if got["LAB_009"].GetReconsolidation().GetTouched() != 7 || len(rec.ids) != 7 {
		t.Errorf("touched %d, recorder got %d", got["LAB_009"].GetReconsolidation().GetTouched(), len(rec.ids))
	}
	if len(got["LAB_012"].GetFuture().GetEvidenceIds()) == 0 {
		t.Error("no evidence for the goal")
	}
	if len(got["LAB_007"].GetPreload().GetPredictions()) == 0 {
		t.Error("no predictions at min confidence 0.05")
	}
}

func TestSyntheticItemWhenMemoryFails(t *testing.T) {
	c := serve(t, Deps{Memory: &fixedMemory{err: errors.New("connection refused")}, Access: &recorder{}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := baseRequest()
	results, sum, err := orchestrate(ctx, c, req)
	if err != nil {
		t.Fatalf("the stream must end OK when memory fails: %v", err)
	}
	got := byID(results)
	if len(results) != 9 || sum == nil {
		t.Fatalf("%d results, summary %v", len(results), sum != nil)
	}
	r011 := got["LAB_011"]
	items := r011.GetWorkingMemory().GetItems()
	if r011.GetStatus() != orchestratorv1.LabStatus_LAB_STATUS_DEGRADED || len(items) != 1 || !items[0].GetSynthetic() ||
		items[0].GetContent() != req.GetQuery() || items[0].GetEpisodeId() != "" || !r011.GetWorkingMemory().GetDegraded() {
		t.Errorf("LAB_011 = %v", r011)
	}
	if !strings.Contains(r011.GetWorkingMemory().GetDegradedReason(), "connection refused") {
		t.Errorf("reason %q", r011.GetWorkingMemory().GetDegradedReason())
	}
	if got["LAB_009"].GetReconsolidation().GetTouched() != 0 {
		t.Error("a synthetic item was recorded as accessed")
	}
	if sum.GetConfidence() != 0 || !slices.Contains(sum.GetDegradedLabs(), "LAB_011") ||
		len(sum.GetWorkingMemory()) != 1 || !sum.GetWorkingMemory()[0].GetSynthetic() {
		t.Errorf("summary = %v", sum)
	}
	for _, r := range results {
		if r.GetStatus() == orchestratorv1.LabStatus_LAB_STATUS_FAILED {
			t.Errorf("%s FAILED: %s", r.GetLabId(), r.GetDetail())
		}
	}
}

// A memory that never answers: the whole stream still arrives within the
// caller's deadline, however long the requested budget.
func TestBudgetCappedByDeadline(t *testing.T) {
	c := serve(t, Deps{Memory: hangingMemory{}, Access: &recorder{}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	results, sum, err := orchestrate(ctx, c, baseRequest()) // asks for a 5s budget
	if err != nil {
		t.Fatalf("stream: %v after %s", err, time.Since(start))
	}
	if len(results) != 9 || sum == nil {
		t.Fatalf("%d results, summary %v", len(results), sum != nil)
	}
	r011 := byID(results)["LAB_011"]
	if r011.GetStatus() != orchestratorv1.LabStatus_LAB_STATUS_DEGRADED || !r011.GetWorkingMemory().GetItems()[0].GetSynthetic() {
		t.Errorf("LAB_011 = %s %q", r011.GetStatus(), r011.GetDetail())
	}
}

func TestInvalidArgument(t *testing.T) {
	c := serve(t, Deps{Memory: newFixedMemory(5)})
	tests := []struct {
		name   string
		change func(r *orchestratorv1.OrchestrateRequest)
		fields []string
	}{
		{"no namespace", func(r *orchestratorv1.OrchestrateRequest) { r.Namespace = "" }, []string{"namespace"}},
		{"long namespace", func(r *orchestratorv1.OrchestrateRequest) { r.Namespace = strings.Repeat("n", 129) }, []string{"namespace"}},
		{"control char in namespace", func(r *orchestratorv1.OrchestrateRequest) { r.Namespace = "a\x00b" }, []string{"namespace"}},
		{"no query", func(r *orchestratorv1.OrchestrateRequest) { r.Query = "" }, []string{"query"}},
		{"long query", func(r *orchestratorv1.OrchestrateRequest) { r.Query = strings.Repeat("q", 4097) }, []string{"query"}},
		{"long goal", func(r *orchestratorv1.OrchestrateRequest) { r.Goal = strings.Repeat("g", 1025) }, []string{"goal"}},
		{"emotion out of range", func(r *orchestratorv1.OrchestrateRequest) {
			r.CurrentEmotion = &orchestratorv1.Emotion{Valence: 2, Arousal: -1}
		}, []string{"current_emotion.valence", "current_emotion.arousal"}},
		{"recall limit", func(r *orchestratorv1.OrchestrateRequest) { r.Options.RecallLimit = 21 }, []string{"options.recall_limit"}},
		{"pool below limit", func(r *orchestratorv1.OrchestrateRequest) {
			r.Options.RecallLimit, r.Options.CandidatePool = 10, 5
		}, []string{"options.candidate_pool"}},
		{"budget too small", func(r *orchestratorv1.OrchestrateRequest) { r.Options.Budget = durationpb.New(time.Millisecond) },
			[]string{"options.budget"}},
		{"half-life negative", func(r *orchestratorv1.OrchestrateRequest) {
			r.Options.RecencyHalfLife = durationpb.New(-time.Hour)
		}, []string{"options.recency_half_life"}},
		{"weight", func(r *orchestratorv1.OrchestrateRequest) {
			r.Options.Weights = &orchestratorv1.AttentionWeights{Salience: 1.5}
		}, []string{"options.weights.salience"}},
		{"as_of invalid", func(r *orchestratorv1.OrchestrateRequest) {
			r.Options.AsOf = &timestamppb.Timestamp{Seconds: -1 << 62}
		}, []string{"options.as_of"}},
		{"content and k", func(r *orchestratorv1.OrchestrateRequest) {
			r.Options.ContentMaxChars, r.Options.PreloadK = 8, 99
		}, []string{"options.content_max_chars", "options.preload_k"}},
		{"min confidence", func(r *orchestratorv1.OrchestrateRequest) { r.Options.PreloadMinConfidence = proto.Float64(1.5) },
			[]string{"options.preload_min_confidence"}},
		{"capacity too big", func(r *orchestratorv1.OrchestrateRequest) { r.Options.WorkingMemoryCapacity = 21 },
			[]string{"options.working_memory_capacity"}},
		{"capacity negative", func(r *orchestratorv1.OrchestrateRequest) { r.Options.WorkingMemoryCapacity = -1 },
			[]string{"options.working_memory_capacity"}},
		{"negative decay", func(r *orchestratorv1.OrchestrateRequest) {
			r.Options.DecayTurns, r.Options.DecayAfter = -1, durationpb.New(-time.Minute)
		}, []string{"options.decay_turns", "options.decay_after"}},
		{"long session", func(r *orchestratorv1.OrchestrateRequest) { r.SessionId = strings.Repeat("s", 129) }, []string{"session_id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest()
			tc.change(req)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			results, _, err := orchestrate(ctx, c, req)
			st, _ := status.FromError(err)
			if st.Code() != codes.InvalidArgument || len(results) != 0 {
				t.Fatalf("code = %s (%v), %d results; want INVALID_ARGUMENT", st.Code(), err, len(results))
			}
			var fields []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, fv := range br.GetFieldViolations() {
						fields = append(fields, fv.GetField())
					}
				}
			}
			if !slices.Equal(fields, tc.fields) {
				t.Errorf("fields = %v, want %v (%s)", fields, tc.fields, st.Message())
			}
			for _, f := range tc.fields {
				if !strings.Contains(st.Message(), f) {
					t.Errorf("message %q does not name %s", st.Message(), f)
				}
			}
		})
	}
}

func TestListLabs(t *testing.T) {
	c := serve(t, Deps{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.ListLabs(ctx, &orchestratorv1.ListLabsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetLabs()) != 9 {
		t.Fatalf("%d labs", len(resp.GetLabs()))
	}
	seen := map[string]bool{}
	for _, l := range resp.GetLabs() {
		for _, d := range l.GetDependsOn() {
			if !seen[d] {
				t.Errorf("%s listed before its dependency %s", l.GetId(), d)
			}
		}
		seen[l.GetId()] = true
		if l.GetName() == "" || l.GetDescription() == "" || l.GetLayer() != 2 || l.GetBudget().AsDuration() <= 0 {
			t.Errorf("incomplete %v", l)
		}
	}
	if resp.GetLabs()[0].GetId() != "LAB_011" || resp.GetLabs()[8].GetId() != "LAB_006" {
		t.Errorf("order %s … %s", resp.GetLabs()[0].GetId(), resp.GetLabs()[8].GetId())
	}
}

// The same request with the same as_of gives the same outputs.
func TestOrchestrateIsReproducible(t *testing.T) {
	c := serve(t, Deps{Memory: newFixedMemory(50), Access: &recorder{}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, sa, err := orchestrate(ctx, c, baseRequest())
	if err != nil {
		t.Fatal(err)
	}
	b, sb, err := orchestrate(ctx, c, baseRequest())
	if err != nil {
		t.Fatal(err)
	}
	ga, gb := byID(a), byID(b)
	for id, ra := range ga {
		rb := gb[id]
		// Timings differ; everything else must not.
		ra, rb = proto.CloneOf(ra), proto.CloneOf(rb)
		ra.StartedOffset, ra.Elapsed, rb.StartedOffset, rb.Elapsed = nil, nil, nil, nil
		if !proto.Equal(ra, rb) {
			t.Errorf("%s differs:\n%v\n%v", id, ra, rb)
		}
	}
	if sa.GetConfidence() != sb.GetConfidence() || len(sa.GetWorkingMemory()) != len(sb.GetWorkingMemory()) {
		t.Error("summaries differ")
	}
}

// slowLists answers recall at once but never lists episodes.
type slowLists struct{ *fixedMemory }

func (slowLists) ListEpisodes(ctx context.Context, _ labs.ListQuery) ([]labs.Episode, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A LAB over budget is FAILED, its dependents go on degraded, the stream
// ends OK and the failure is logged with the request.
func TestFailedLabIsReportedAndLogged(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	c := serve(t, Deps{Memory: slowLists{newFixedMemory(50)}, Access: &recorder{}, Logger: zap.New(core)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := baseRequest()
	req.Options.Budget = durationpb.New(100 * time.Millisecond) // LAB_007 gets 60ms × 100/300 = 20ms
	results, sum, err := orchestrate(ctx, c, req)
	if err != nil {
		t.Fatal(err)
	}
	got := byID(results)
	if r := got["LAB_007"]; r.GetStatus() != orchestratorv1.LabStatus_LAB_STATUS_FAILED || r.GetOutput() != nil ||
		!strings.Contains(r.GetDetail(), "budget") {
		t.Errorf("LAB_007 = %s %q", r.GetStatus(), r.GetDetail())
	}
	if r := got["LAB_006"]; r.GetStatus() != orchestratorv1.LabStatus_LAB_STATUS_DEGRADED ||
		!slices.Contains(r.GetMetacognition().GetDegradedLabs(), "LAB_007") {
		t.Errorf("LAB_006 = %s %v", r.GetStatus(), r.GetMetacognition().GetDegradedLabs())
	}
	if !slices.Equal(sum.GetDegradedLabs(), []string{"LAB_007", "LAB_006"}) {
		t.Errorf("summary degraded = %v", sum.GetDegradedLabs())
	}
	if logs.FilterMessage("orchestrate: LABs failed").Len() != 1 {
		t.Errorf("logs = %v", logs.All())
	}
}
