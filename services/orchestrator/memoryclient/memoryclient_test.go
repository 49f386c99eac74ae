package memoryclient

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/orchestrator/labs"
	"github.com/brainhq/brain/services/orchestrator/memoryclient/access"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	_ labs.Memory        = (*Client)(nil)
	_ labs.SessionMemory = (*Client)(nil)
	_ access.Sink        = (*Client)(nil)
)

// fakeMemory fails the first failures calls with code, then answers.
type fakeMemory struct {
	memoryv1.UnimplementedMemoryServiceServer
	failures int
	code     codes.Code

	mu        sync.Mutex
	calls     int
	deadlines []bool
	recall    *memoryv1.RecallRequest
	list      *memoryv1.ListEpisodesRequest
	access    *memoryv1.RecordAccessRequest
}

func (f *fakeMemory) enter(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	_, ok := ctx.Deadline()
	f.deadlines = append(f.deadlines, ok)
	if f.calls <= f.failures {
		return status.Error(f.code, "scripted failure")
	}
	return nil
}

var created = time.Date(2025, 2, 1, 10, 0, 0, 0, time.UTC)

func (f *fakeMemory) Recall(ctx context.Context, req *memoryv1.RecallRequest) (*memoryv1.RecallResponse, error) {
	if err := f.enter(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.recall = req
	f.mu.Unlock()
	return &memoryv1.RecallResponse{
		Source: memoryv1.RecallSource_RECALL_SOURCE_CACHE, Degraded: true, DegradedReason: "breaker open",
		Episodes: []*memoryv1.RecalledEpisode{
			{
				Episode: &memoryv1.Episode{Id: "e1", Namespace: "ns", SessionId: "s", Speaker: "Nate", Content: "hello",
					Importance: proto.Float64(0.9), CreatedAt: timestamppb.New(created),
					Metadata: map[string]string{"k": "v"}, AccessCount: 3,
					Affect: &memoryv1.Affect{Valence: -0.5, Arousal: 0.6, Intensity: 0.7}},
				Scores: &memoryv1.RecallScores{Relevance: 0.8, Importance: 0.9, Recency: 0.4, Total: 0.7,
					OwnWords: 0.5, Context: 0.3, Speaker: 1, Time: 0.25,
					Contributions: &memoryv1.RecallContributions{OwnWords: 0.2, Context: 0.12, Speaker: 0.23,
						Time: 0.05, Importance: 0.06, Recency: 0.04}},
			},
			{Episode: &memoryv1.Episode{Id: "e2", Content: "no importance, no affect"}},
		},
	}, nil
}

func (f *fakeMemory) ListEpisodes(ctx context.Context, req *memoryv1.ListEpisodesRequest) (*memoryv1.ListEpisodesResponse, error) {
	if err := f.enter(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.list = req
	f.mu.Unlock()
	return &memoryv1.ListEpisodesResponse{Episodes: []*memoryv1.Episode{
		{Id: "f1", CreatedAt: timestamppb.New(created.Add(time.Minute))},
		{Id: "f2", CreatedAt: timestamppb.New(created.Add(time.Hour))},
	}}, nil
}

func (f *fakeMemory) RecordAccess(ctx context.Context, req *memoryv1.RecordAccessRequest) (*memoryv1.RecordAccessResponse, error) {
	if err := f.enter(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.access = req
	f.mu.Unlock()
	return &memoryv1.RecordAccessResponse{Updated: int32(len(req.GetIds()) - 1)}, nil
}

// serve starts fake on an in-process listener and returns a client of it.
func serve(t *testing.T, fake *fakeMemory, opts ...Option) *Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	memoryv1.RegisterMemoryServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return New(conn, opts...)
}

func TestRecallMapsBothWays(t *testing.T) {
	fake := &fakeMemory{}
	c := serve(t, fake)
	asOf := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ans, err := c.Recall(ctx, labs.RecallQuery{Namespace: "ns", Query: "hi", Limit: 50, AsOf: asOf,
		RecencyHalfLife: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	want := &memoryv1.RecallRequest{Namespace: "ns", Query: "hi", Limit: 50, AsOf: timestamppb.New(asOf),
		RecencyHalfLife: durationpb.New(48 * time.Hour)}
	if !proto.Equal(fake.recall, want) {
		t.Errorf("request = %v, want %v", fake.recall, want)
	}
	if ans.Source != labs.SourceCache || !ans.Degraded || ans.DegradedReason != "breaker open" || len(ans.Episodes) != 2 {
		t.Fatalf("answer = %+v", ans)
	}
	e := ans.Episodes[0]
	if e.Episode.ID != "e1" || e.Episode.SessionID != "s" || e.Episode.Speaker != "Nate" || e.Episode.Importance != 0.9 ||
		!e.Episode.CreatedAt.Equal(created) || e.Episode.Metadata["k"] != "v" || e.Episode.AccessCount != 3 ||
		*e.Episode.Affect != (labs.Affect{Valence: -0.5, Arousal: 0.6, Intensity: 0.7}) ||
		e.Scores != (labs.Scores{Relevance: 0.8, Importance: 0.9, Recency: 0.4, Total: 0.7,
			OwnWords: 0.5, Context: 0.3, Speaker: 1, Time: 0.25,
			Contributions: labs.Contributions{OwnWords: 0.2, Context: 0.12, Speaker: 0.23, Time: 0.05, Importance: 0.06, Recency: 0.04}}) {
		t.Errorf("episode = %+v", e)
	}
	// Unset importance means 0.5; no affect stays nil.
	if e2 := ans.Episodes[1].Episode; e2.Importance != 0.5 || e2.Affect != nil || !e2.CreatedAt.IsZero() {
		t.Errorf("second episode = %+v", e2)
	}
	if !fake.deadlines[0] {
		t.Error("the call carried no deadline")
	}
}

func TestListEpisodesAndRecordAccess(t *testing.T) {
	fake := &fakeMemory{}
	c := serve(t, fake)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	eps, err := c.ListEpisodes(ctx, labs.ListQuery{Namespace: "ns", SessionID: "s", CreatedAfter: created, Limit: 12})
	if err != nil {
		t.Fatal(err)
	}
	want := &memoryv1.ListEpisodesRequest{Namespace: "ns", SessionId: "s", CreatedAfter: timestamppb.New(created), PageSize: 12}
	if !proto.Equal(fake.list, want) {
		t.Errorf("list request = %v", fake.list)
	}
	if len(eps) != 2 || eps[0].ID != "f1" || !eps[1].CreatedAt.Equal(created.Add(time.Hour)) {
		t.Errorf("episodes = %+v", eps)
	}
	n, err := c.RecordAccess(ctx, "ns", []string{"a", "b", "c"}, created)
	if err != nil || n != 2 {
		t.Errorf("RecordAccess = %d, %v; want 2", n, err)
	}
	if !slices.Equal(fake.access.GetIds(), []string{"a", "b", "c"}) || !fake.access.GetAccessedAt().AsTime().Equal(created) {
		t.Errorf("access request = %v", fake.access)
	}
}

func fastRetry(attempts int) Option {
	return WithRetry(Retry{MaxAttempts: attempts, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond,
		MinAttempt: time.Millisecond})
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		failures  int
		code      codes.Code
		attempts  int
		timeout   time.Duration
		opt       Option
		wantCalls int
		wantCode  codes.Code
	}{
		{"unavailable twice then OK", 2, codes.Unavailable, 4, 5 * time.Second, fastRetry(4), 3, codes.OK},
		{"attempts exhausted", 10, codes.Unavailable, 3, 5 * time.Second, fastRetry(3), 3, codes.Unavailable},
		{"other codes are not retried", 10, codes.InvalidArgument, 4, 5 * time.Second, fastRetry(4), 1, codes.InvalidArgument},
		// A 200ms backoff cannot fit in a 50ms deadline: one attempt, no wait.
		{"no retry past the budget", 10, codes.Unavailable, 4, 50 * time.Millisecond,
			WithRetry(Retry{MaxAttempts: 4, BaseDelay: 400 * time.Millisecond, MaxDelay: time.Second, MinAttempt: time.Millisecond}),
			1, codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeMemory{failures: tc.failures, code: tc.code}
			c := serve(t, fake, tc.opt)
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			start := time.Now()
			_, err := c.Recall(ctx, labs.RecallQuery{Namespace: "ns", Query: "q"})
			if got := status.Code(err); got != tc.wantCode {
				t.Errorf("code = %s (%v), want %s", got, err, tc.wantCode)
			}
			if fake.calls != tc.wantCalls {
				t.Errorf("calls = %d, want %d", fake.calls, tc.wantCalls)
			}
			if el := time.Since(start); el > tc.timeout {
				t.Errorf("took %s, past the %s deadline", el, tc.timeout)
			}
		})
	}
}
