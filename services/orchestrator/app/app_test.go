package app

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/durationpb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/kit/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestWithoutMemory: with memory unreachable the orchestrator starts, says
// so in its health, and every run still streams nine LAB results and a
// summary within its budget, LAB_011 holding the query as a synthetic item.
func TestWithoutMemory(t *testing.T) {
	cfg := Config{
		Server:        server.Config{Name: "orchestrator", GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DrainTimeout: 2 * time.Second},
		MemoryAddr:    closedAddr(t),
		Budget:        300 * time.Millisecond,
		ProbeInterval: 100 * time.Millisecond,
		ProbeTimeout:  200 * time.Millisecond,
	}
	a, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Server().Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	conn, err := grpc.NewClient(a.Server().GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(2 * time.Second)
	for _, svc := range []string{"memory", "memory/postgres"} {
		for {
			resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
			if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not NOT_SERVING: %v %v", svc, resp, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "brain.orchestrator.v1.OrchestratorService"}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("orchestrator itself: %v %v", resp, err)
	}

	start := time.Now()
	stream, err := orchestratorv1.NewOrchestratorServiceClient(conn).Orchestrate(context.Background(), &orchestratorv1.OrchestrateRequest{
		Namespace: "demo", Query: "what happened at the offsite?",
		Options: &orchestratorv1.OrchestrateOptions{Budget: durationpb.New(200 * time.Millisecond)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var labsSeen int
	var summary *orchestratorv1.Summary
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream ended with %v", err)
		}
		if l := msg.GetLab(); l != nil {
			labsSeen++
			if l.GetLabId() == "LAB_011" {
				items := l.GetWorkingMemory().GetItems()
				if l.GetStatus() != orchestratorv1.LabStatus_LAB_STATUS_DEGRADED || len(items) != 1 || !items[0].GetSynthetic() ||
					items[0].GetContent() != "what happened at the offsite?" || l.GetDetail() == "" {
					t.Fatalf("LAB_011 without memory: %v", l)
				}
			}
		}
		if s := msg.GetSummary(); s != nil {
			summary = s
		}
	}
	if labsSeen != 9 || summary == nil || len(summary.GetDegradedLabs()) == 0 {
		t.Fatalf("saw %d LABs, summary %v", labsSeen, summary)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("degraded run took %s with a 200ms budget", took)
	}

	// Readiness stays 200 (it can serve, degraded) and names the failure.
	resp, err := http.Get("http://" + a.Server().HTTPAddr() + "/readyz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "[!]memory failed") {
		t.Fatalf("/readyz?verbose = %d %s", resp.StatusCode, body)
	}
}

// silentMemory accepts connections and never says a word, as a memory
// stopped with SIGSTOP does (the kernel still completes the handshake).
func silentMemory(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

// stalledMemory is a memory whose handlers never answer (until the caller
// gives up), as one whose process stopped mid-call.
type stalledMemory struct {
	memoryv1.UnimplementedMemoryServiceServer
}

func (stalledMemory) ListEpisodes(ctx context.Context, _ *memoryv1.ListEpisodesRequest) (*memoryv1.ListEpisodesResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (stalledMemory) GetStats(ctx context.Context, _ *memoryv1.GetStatsRequest) (*memoryv1.GetStatsResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func stalled(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	memoryv1.RegisterMemoryServiceServer(s, stalledMemory{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return l.Addr().String()
}

func runApp(t *testing.T, cfg Config) *App {
	t.Helper()
	a, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Server().Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a
}

// TestMemoryRoutesHaveADeadline: the front door's memory routes answer
// within MEMORY_PROXY_TIMEOUT when memory does not (they hung until
// keepalive gave up), and neither the silent nor the absent memory's error
// names an internal address.
func TestMemoryRoutesHaveADeadline(t *testing.T) {
	const timeout = 500 * time.Millisecond
	for _, tt := range []struct {
		name, memory string
	}{
		{"memory silent", silentMemory(t)},
		{"memory stalls mid-call", stalled(t)},
		{"memory absent", closedAddr(t)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := runApp(t, Config{
				Server:             server.Config{Name: "orchestrator", GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DrainTimeout: 2 * time.Second},
				MemoryAddr:         tt.memory,
				MemoryProxyTimeout: timeout,
			})
			_, memPort, _ := net.SplitHostPort(tt.memory)
			c := http.Client{Timeout: 10 * time.Second}
			for _, path := range []string{"/v1/memory/namespaces/x/episodes", "/v1/memory/stats?namespace=x"} {
				start := time.Now()
				resp, err := c.Get("http://" + a.Server().HTTPAddr() + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(start)
				if took > timeout+time.Second {
					t.Errorf("GET %s took %s with a %s proxy timeout", path, took, timeout)
				}
				if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusGatewayTimeout {
					t.Errorf("GET %s = %d %s, want 503 or 504", path, resp.StatusCode, body)
				}
				if strings.Contains(string(body), "127.0.0.1") || strings.Contains(string(body), memPort) || !strings.Contains(string(body), "memory service") {
					t.Errorf("GET %s: body %s names an address or not the memory service", path, body)
				}
			}
		})
	}
}
