package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/e2e/internal/stack"
)

// labIDs are the nine LABs every run streams.
var labIDs = []string{"LAB_011", "LAB_001", "LAB_010", "LAB_009", "LAB_007", "LAB_008", "LAB_028", "LAB_012", "LAB_006"}

// newID returns a random RFC 4122 version 4 UUID, as a client supplying its
// own ids (to make writes idempotent) would.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// namespace returns a namespace no other test uses.
func namespace(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func code(err error) codes.Code { return status.Code(err) }

// write stores eps through memory's gRPC API and fails the test otherwise.
func write(t *testing.T, mem memoryv1.MemoryServiceClient, eps ...*memoryv1.Episode) []*memoryv1.Episode {
	t.Helper()
	resp, err := mem.WriteEpisodes(ctxFor(t, 5*time.Second), &memoryv1.WriteEpisodesRequest{Episodes: eps})
	if err != nil {
		t.Fatalf("WriteEpisodes: %v", err)
	}
	return resp.GetEpisodes()
}

// listAll pages through a namespace and returns every episode.
func listAll(t *testing.T, mem memoryv1.MemoryServiceClient, ns string) []*memoryv1.Episode {
	t.Helper()
	var out []*memoryv1.Episode
	token := ""
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatal("ListEpisodes: more than 100 pages")
		}
		resp, err := mem.ListEpisodes(ctxFor(t, 5*time.Second), &memoryv1.ListEpisodesRequest{
			Namespace: ns, PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatalf("ListEpisodes %q: %v", ns, err)
		}
		out = append(out, resp.GetEpisodes()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// run is one Orchestrate call as a client sees it.
type run struct {
	labs    map[string]*orchestratorv1.LabResult
	order   []string
	summary *orchestratorv1.Summary
	// summaryLast is false when anything arrived after the summary.
	summaryLast bool
	msgs        int
	// first and elapsed are the times to the first message and to the end
	// of the stream, from the call; ended is when it ended.
	first, elapsed time.Duration
	ended          time.Time
	err            error
}

func orchestrate(ctx context.Context, c orchestratorv1.OrchestratorServiceClient, req *orchestratorv1.OrchestrateRequest) (r run) {
	r.labs = map[string]*orchestratorv1.LabResult{}
	start := time.Now()
	defer func() {
		r.ended = time.Now()
		r.elapsed = r.ended.Sub(start)
	}()
	stream, err := c.Orchestrate(ctx, req)
	if err != nil {
		r.err = err
		return r
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return r
		}
		if err != nil {
			r.err = err
			return r
		}
		if r.msgs == 0 {
			r.first = time.Since(start)
		}
		r.msgs++
		r.summaryLast = false
		switch ev := msg.GetEvent().(type) {
		case *orchestratorv1.OrchestrateResponse_Lab:
			r.labs[ev.Lab.GetLabId()] = ev.Lab
			r.order = append(r.order, ev.Lab.GetLabId())
		case *orchestratorv1.OrchestrateResponse_Summary:
			r.summary = ev.Summary
			r.summaryLast = true
		}
	}
}

// complete fails the test unless the run ended OK with nine LAB results and
// the summary last.
func (r run) complete(t *testing.T) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("Orchestrate ended with %v after %d messages", r.err, r.msgs)
	}
	if r.msgs != 10 || len(r.labs) != 9 || r.summary == nil || !r.summaryLast {
		t.Fatalf("Orchestrate: %d messages, LABs %v, summary last %v; want nine LABs then the summary", r.msgs, r.order, r.summaryLast)
	}
	for _, id := range labIDs {
		if r.labs[id] == nil {
			t.Fatalf("Orchestrate: no result for %s (got %v)", id, r.order)
		}
	}
}

// httpDo makes an HTTP request with a JSON body and returns the status and
// the body.
func httpDo(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctxFor(t, 10*time.Second), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// decodeJSON unmarshals b into a generic map, failing the test otherwise.
func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return m
}

// chunk is one HTTP/1.1 chunk of a response body and when it arrived.
type chunk struct {
	data []byte
	at   time.Duration
}

// streamResponse is a chunked HTTP response read off the wire.
type streamResponse struct {
	status int
	header http.Header
	chunks []chunk
	body   []byte
}

// postChunked POSTs body over a raw connection and reads the response chunk
// by chunk, recording when each arrived: http.Client hides chunk
// boundaries, and they are what shows that a stream is flushed message by
// message rather than buffered to the end.
func postChunked(ctx context.Context, addr, path, body string) (streamResponse, error) {
	var out streamResponse
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return out, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	start := time.Now()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		path, addr, len(body), body)
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return out, fmt.Errorf("status line: %w", err)
	}
	parts := strings.SplitN(strings.TrimSpace(line), " ", 3)
	if len(parts) < 2 {
		return out, fmt.Errorf("bad status line %q", line)
	}
	if out.status, err = strconv.Atoi(parts[1]); err != nil {
		return out, fmt.Errorf("bad status line %q", line)
	}
	out.header = http.Header{}
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return out, fmt.Errorf("headers: %w", err)
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		k, v, _ := strings.Cut(h, ":")
		out.header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if !strings.EqualFold(out.header.Get("Transfer-Encoding"), "chunked") {
		b, err := io.ReadAll(r)
		out.body = b
		out.chunks = []chunk{{data: b, at: time.Since(start)}}
		return out, err
	}
	for {
		sizeLine, err := r.ReadString('\n')
		if err != nil {
			return out, fmt.Errorf("chunk size: %w", err)
		}
		sizeHex, _, _ := strings.Cut(strings.TrimSpace(sizeLine), ";")
		n, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil || n < 0 || n > 64<<20 {
			return out, fmt.Errorf("bad chunk size %q", sizeLine)
		}
		if n == 0 {
			return out, nil // trailers, if any, do not matter here
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return out, fmt.Errorf("chunk data: %w", err)
		}
		at := time.Since(start)
		if _, err := r.Discard(2); err != nil {
			return out, fmt.Errorf("chunk end: %w", err)
		}
		out.chunks = append(out.chunks, chunk{data: data, at: at})
		out.body = append(out.body, data...)
	}
}

// ndjsonLines splits an NDJSON body into decoded objects.
func ndjsonLines(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimRight(body, "\n"), []byte("\n")) {
		out = append(out, decodeJSON(t, line))
	}
	return out
}

// rawFrame is an undecoded gRPC message: rawCodec sends and receives bytes
// as they are, which is how a client without Go's UTF-8 check (Python, a
// hand-rolled one) can put invalid UTF-8 in a proto3 string.
type rawFrame struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" } // the server decodes with its proto codec

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*rawFrame)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(f.b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*rawFrame)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	f.b = data.Materialize()
	return nil
}

// invokeRaw makes a unary call with a hand-made request body.
func invokeRaw(ctx context.Context, conn *grpc.ClientConn, method string, body []byte) ([]byte, error) {
	var out rawFrame
	err := conn.Invoke(ctx, method, &rawFrame{b: body}, &out, grpc.ForceCodecV2(rawCodec{}))
	return out.b, err
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

// runHealthCmd runs the binary's own health subcommand against p, as a
// container HEALTHCHECK does; nil means exit 0 (SERVING).
func runHealthCmd(t *testing.T, p *stack.Process, service string) error {
	t.Helper()
	out, err := exec.CommandContext(ctxFor(t, 5*time.Second), p.Bin, "health", "--addr", p.GRPCAddr, "--service", service).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// startRestartable starts memory on addresses fixed up front (so a test can
// kill it and start it again there, with the returned config) over the
// database at dbURL, and an orchestrator in front of it; both are serving
// when it returns.
func startRestartable(t *testing.T, dbURL string) (memCfg stack.MemoryConfig, mem *stack.Process,
	memClient memoryv1.MemoryServiceClient, orch *stack.Process, orchConn *grpc.ClientConn, oc orchestratorv1.OrchestratorServiceClient) {
	t.Helper()
	memCfg = stack.MemoryConfig{Postgres: stack.Postgres{URL: dbURL}}
	var err error
	if memCfg.GRPCAddr, err = stack.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	if memCfg.HTTPAddr, err = stack.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	mem = stack.StartMemory(t, bins.Memory, memCfg)
	if _, err := stack.WaitListening(mem.GRPCAddr, mem.Started, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	memClient = memoryv1.NewMemoryServiceClient(stack.Dial(t, mem.GRPCAddr))
	stack.MustWaitHealth(t, stack.Dial(t, mem.GRPCAddr), "postgres", stack.Serving, mem.Started, 5*time.Second)
	orch = stack.StartOrchestrator(t, bins.Orchestrator, stack.OrchestratorConfig{MemoryAddr: mem.GRPCAddr})
	if _, err := stack.WaitListening(orch.GRPCAddr, orch.Started, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	orchConn = stack.Dial(t, orch.GRPCAddr)
	stack.MustWaitHealth(t, orchConn, "memory/postgres", stack.Serving, orch.Started, 5*time.Second)
	return memCfg, mem, memClient, orch, orchConn, orchestratorv1.NewOrchestratorServiceClient(orchConn)
}
