package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/e2e/internal/stack"
	"github.com/brainhq/brain/services/kit/pgtest"
)

// Hardening of the HTTP edge: what both gateways answer to bad input, and
// how the front door behaves when memory stalls or clients stop reading.

// edgePorts are the two HTTP gateways of a shared stack.
func edgePorts(s *sharedStack) []struct{ name, url string } {
	return []struct{ name, url string }{{"front door", s.orchHTTP}, {"memory", s.memHTTP}}
}

// TestEdgeParamsNotUTF8: a path or query parameter that decodes to invalid
// UTF-8 is 400 naming the parameter on both ports, for every route that
// takes one (it was 500 "error while marshaling").
func TestEdgeParamsNotUTF8(t *testing.T) {
	skipShort(t)
	s := startShared(t)
	id := newID()
	cases := []struct{ method, path, param string }{
		{"GET", "/v1/memory/stats?namespace=%FF", "namespace"},
		{"GET", "/v1/memory/namespaces/%FF/episodes", "namespace"},
		{"GET", "/v1/memory/namespaces/ns/episodes?sessionId=%FF", "sessionId"},
		{"GET", "/v1/memory/namespaces/ns/episodes?pageToken=%FF", "pageToken"},
		{"GET", "/v1/memory/namespaces/ns/episodes?createdAfter=%FF", "createdAfter"},
		{"GET", "/v1/memory/namespaces/%FF/episodes/" + id, "namespace"},
		{"GET", "/v1/memory/namespaces/ns/episodes/%FF", "id"},
		{"DELETE", "/v1/memory/namespaces/%FF/episodes/" + id, "namespace"},
		{"DELETE", "/v1/memory/namespaces/ns/episodes/%FF", "id"},
		{"DELETE", "/v1/memory/namespaces/%FF", "namespace"},
	}
	for _, port := range edgePorts(s) {
		t.Run(port.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.method+" "+c.path, func(t *testing.T) {
					code, body := httpDo(t, c.method, port.url+c.path, "")
					msg, _ := decodeJSON(t, body)["message"].(string)
					if code != http.StatusBadRequest || !strings.Contains(msg, c.param) || !strings.Contains(msg, "UTF-8") || !utf8.ValidString(msg) {
						t.Fatalf("%s %s = %d %s, want 400 naming %s", c.method, c.path, code, body, c.param)
					}
				})
			}
		})
	}
	s.alive(t)
}

// edgeStack starts memory and the orchestrator on a fresh database, with
// extra orchestrator environment.
func edgeStack(t *testing.T, orchEnv ...string) (mem, orch *stack.Process) {
	t.Helper()
	mem = stack.StartMemory(t, bins.Memory, stack.MemoryConfig{Postgres: stack.Postgres{URL: pgtest.NewDatabase(t)}})
	if _, err := stack.WaitListening(mem.GRPCAddr, mem.Started, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	stack.MustWaitHealth(t, stack.Dial(t, mem.GRPCAddr), "postgres", stack.Serving, mem.Started, 5*time.Second)
	orch = stack.StartOrchestrator(t, bins.Orchestrator, stack.OrchestratorConfig{MemoryAddr: mem.GRPCAddr, Env: orchEnv})
	if _, err := stack.WaitListening(orch.HTTPAddr, orch.Started, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	stack.MustWaitHealth(t, stack.Dial(t, orch.GRPCAddr), "memory", stack.Serving, orch.Started, 5*time.Second)
	return mem, orch
}

// TestEdgeFrontDoorDeadlineWhenMemoryStops: with memory stopped (SIGSTOP:
// its connections stay open, nothing answers) the front door's memory
// routes answer within MEMORY_PROXY_TIMEOUT, 503 or 504, and the error
// names no internal address (it hung 12.5 s, then showed socket addresses).
func TestEdgeFrontDoorDeadlineWhenMemoryStops(t *testing.T) {
	skipShort(t)
	const proxyTimeout = time.Second
	mem, orch := edgeStack(t, "MEMORY_PROXY_TIMEOUT="+proxyTimeout.String())
	front := "http://" + orch.HTTPAddr
	ns := namespace("stopped")
	// The connection to memory is up and in use before memory stops.
	if code, body := httpDo(t, "GET", front+"/v1/memory/namespaces/"+ns+"/episodes", ""); code != 200 {
		t.Fatalf("before the stop: %d %s", code, body)
	}

	if err := mem.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = mem.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)

	addrs := []string{"127.0.0.1", fmt.Sprint(stack.Port(mem.GRPCAddr))}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/memory/namespaces/" + ns + "/episodes", ""},
		{"GET", "/v1/memory/stats?namespace=" + ns, ""},
		{"POST", "/v1/memory/episodes:recall", `{"namespace":"` + ns + `","query":"anything"}`},
		{"POST", "/v1/memory/episodes:write", `{"episodes":[{"namespace":"` + ns + `","content":"while memory is stopped"}]}`},
	} {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			start := time.Now()
			req, err := http.NewRequestWithContext(ctxFor(t, 30*time.Second), r.method, front+r.path, strings.NewReader(r.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("after %s: %v", time.Since(start), err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			t.Logf("%s %s with memory stopped: %d after %s: %s", r.method, r.path, resp.StatusCode, took.Round(time.Millisecond), body)
			if took > proxyTimeout+2*time.Second {
				t.Errorf("answered after %s, proxy timeout %s", took, proxyTimeout)
			}
			if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("status %d, want 503 or 504", resp.StatusCode)
			}
			for _, a := range addrs {
				if strings.Contains(string(body), a) {
					t.Errorf("body names %q: %s", a, body)
				}
			}
		})
	}
	measured.Duration("front door memory route, memory SIGSTOPped → 504", proxyTimeout, "≤ MEMORY_PROXY_TIMEOUT")

	resume()
	// Memory answers again through the front door once resumed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := httpDo(t, "GET", front+"/v1/memory/namespaces/"+ns+"/episodes", "")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after SIGCONT the route still answers %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bigRunNamespace writes episodes that all match "deploy", long enough that
// one Orchestrate run at the largest options streams far more than a gRPC
// stream's 64 KiB flow-control window.
func bigRunNamespace(t *testing.T, mem memoryv1.MemoryServiceClient) (string, *orchestratorv1.OrchestrateRequest) {
	t.Helper()
	ns := namespace("unread")
	// Distinct words, or LAB_011 drops the episodes as near-duplicates.
	for b := 0; b < 5; b++ {
		var eps []*memoryv1.Episode
		for i := 0; i < 5; i++ {
			var words []string
			for w := 0; w < 500; w++ {
				words = append(words, fmt.Sprintf("w%dx%dx%d", b, i, w))
			}
			eps = append(eps, &memoryv1.Episode{Namespace: ns, Content: "the deploy " + strings.Join(words, " ")})
		}
		write(t, mem, eps...)
	}
	return ns, &orchestratorv1.OrchestrateRequest{Namespace: ns, Query: "how did the deploy go?",
		Options: &orchestratorv1.OrchestrateOptions{RecallLimit: 20, CandidatePool: 100, ContentMaxChars: 4096, PreloadK: 20}}
}

// openUnread opens n Orchestrate streams over conn, without a deadline,
// and never reads them.
func openUnread(t *testing.T, conn *grpc.ClientConn, req *orchestratorv1.OrchestrateRequest, n int) {
	t.Helper()
	c := orchestratorv1.NewOrchestratorServiceClient(conn)
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		if _, err := c.Orchestrate(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEdgeShutdownWithUnreadStreams: 50 Orchestrate streams whose client
// never reads (no deadline) do not hold the orchestrator past its drain:
// after SIGTERM it exits within DRAIN_TIMEOUT and a small margin (it took
// 11.8 s against a 10 s drain).
func TestEdgeShutdownWithUnreadStreams(t *testing.T) {
	skipShort(t)
	const drain = 3 * time.Second
	mem, orch := edgeStack(t, "DRAIN_TIMEOUT="+drain.String())
	_, req := bigRunNamespace(t, memoryv1.NewMemoryServiceClient(stack.Dial(t, mem.GRPCAddr)))

	// One run read to the end shows the stream is far beyond the window.
	conn := stack.Dial(t, orch.GRPCAddr)
	r := orchestrate(ctxFor(t, 10*time.Second), orchestratorv1.NewOrchestratorServiceClient(conn), req)
	r.complete(t)

	// A fixed 64 KiB window (no dynamic growth), as a client that never
	// reads holds the server to.
	unread, err := grpc.NewClient(orch.GRPCAddr, grpc.WithTransportCredentials(insecureCreds()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unread.Close() })
	openUnread(t, unread, req, 50)
	time.Sleep(time.Second) // let the runs finish their work and block on the window

	start := time.Now()
	if err := orch.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, ok := orch.Wait(drain + 10*time.Second)
	took := time.Since(start)
	t.Logf("orchestrator exited %d after %s with 50 unread streams, drain %s", code, took.Round(time.Millisecond), drain)
	measured.Duration("orchestrator SIGTERM → exit, 50 unread Orchestrate streams", took, "≤ DRAIN_TIMEOUT + 1 s")
	if !ok {
		t.Fatalf("orchestrator still running %s after SIGTERM", took)
	}
	if took > drain+time.Second {
		t.Fatalf("orchestrator took %s to exit with a %s drain", took, drain)
	}
}

// TestEdgeUnreadStreamIsCut: a stream whose client stops reading, with no
// deadline of its own, is cut within MAX_CONNECTION_AGE + MAX_CALL_DURATION
// rather than held with its buffers for as long as the client likes: read
// after that, it ends in an error instead of delivering the whole run.
func TestEdgeUnreadStreamIsCut(t *testing.T) {
	skipShort(t)
	const maxCall, maxAge = 2 * time.Second, time.Second
	mem, orch := edgeStack(t, "MAX_CALL_DURATION="+maxCall.String(), "MAX_CONNECTION_AGE="+maxAge.String())
	_, req := bigRunNamespace(t, memoryv1.NewMemoryServiceClient(stack.Dial(t, mem.GRPCAddr)))

	conn, err := grpc.NewClient(orch.GRPCAddr, grpc.WithTransportCredentials(insecureCreds()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := orchestratorv1.NewOrchestratorServiceClient(conn).Orchestrate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Connection ages are jittered by up to 10%; then the grace; then margin.
	time.Sleep(maxAge*11/10 + maxCall + 2*time.Second)
	msgs := 0
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			t.Fatalf("the unread stream was kept and delivered all %d messages", msgs)
		}
		if err != nil {
			t.Logf("unread stream cut after %d messages: %v", msgs, err)
			break
		}
		msgs++
	}
	// The server serves on: a run read at once completes.
	orchestrate(ctxFor(t, 10*time.Second), orchestratorv1.NewOrchestratorServiceClient(stack.Dial(t, orch.GRPCAddr)), req).complete(t)
}

// TestEdgeWrongMethodAndLoneSurrogate: on both ports a route asked with a
// method it does not serve is 405 with Allow (it was 501), and a lone UTF-16
// surrogate in a JSON string is 400 saying so (it was "unexpected EOF").
func TestEdgeWrongMethodAndLoneSurrogate(t *testing.T) {
	skipShort(t)
	s := startShared(t)
	methods := []struct {
		method, path, allow string
		frontOnly           bool
	}{
		{"GET", "/v1/memory/episodes:write", "POST", false},
		{"PUT", "/v1/memory/episodes:recall", "POST", false},
		{"DELETE", "/v1/memory/episodes:recordAccess", "POST", false},
		{"POST", "/v1/memory/namespaces/ns/episodes", "GET", false},
		{"PATCH", "/v1/memory/namespaces/ns/episodes/" + newID(), "GET, DELETE", false},
		{"GET", "/v1/memory/namespaces/ns", "DELETE", false},
		{"POST", "/v1/memory/stats", "GET", false},
		{"GET", "/v1/orchestrate", "POST", true},
		{"DELETE", "/v1/labs", "GET", true},
	}
	surrogates := []struct {
		path, body string
		frontOnly  bool
	}{
		{"/v1/memory/episodes:recall", `{"namespace":"n","query":"\ud800"}`, false},
		{"/v1/memory/episodes:write", `{"episodes":[{"namespace":"n","content":"a \udfff b"}]}`, false},
		{"/v1/memory/episodes:recordAccess", `{"namespace":"\ud83d","ids":["x"]}`, false},
		{"/v1/orchestrate", `{"namespace":"n","query":"\ud800"}`, true},
	}
	for _, port := range edgePorts(s) {
		front := port.url == s.orchHTTP
		t.Run(port.name, func(t *testing.T) {
			for _, c := range methods {
				if c.frontOnly && !front {
					continue
				}
				t.Run(c.method+" "+c.path, func(t *testing.T) {
					req, err := http.NewRequestWithContext(ctxFor(t, 10*time.Second), c.method, port.url+c.path, strings.NewReader("{}"))
					if err != nil {
						t.Fatal(err)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow {
						t.Fatalf("= %d Allow %q %s, want 405 Allow %q", resp.StatusCode, resp.Header.Get("Allow"), body, c.allow)
					}
				})
			}
			for _, c := range surrogates {
				if c.frontOnly && !front {
					continue
				}
				t.Run("surrogate "+c.path, func(t *testing.T) {
					code, body := httpDo(t, "POST", port.url+c.path, c.body)
					m := decodeJSON(t, body)
					if e, ok := m["error"].(map[string]any); ok {
						m = e // a stream's error comes wrapped
					}
					msg, _ := m["message"].(string)
					if code != http.StatusBadRequest || !strings.Contains(msg, "lone UTF-16 surrogate") {
						t.Fatalf("POST %s %s = %d %s, want 400 naming the lone surrogate", c.path, c.body, code, body)
					}
				})
			}
		})
	}
	s.alive(t)
}
