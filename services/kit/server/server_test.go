package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/brainhq/brain/services/kit/health"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// streamer sends n messages, gap apart; it panics on a negative size to test
// recovery.
type streamer struct {
	testpb.UnimplementedTestServiceServer
	n   int
	gap time.Duration
}

func (s *streamer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for i := 0; i < s.n; i++ {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
		time.Sleep(s.gap)
	}
	return nil
}

func (s *streamer) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if req.GetResponseSize() < 0 {
		panic("negative size")
	}
	return &testpb.SimpleResponse{}, nil
}

type running struct {
	srv    *Server
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error
}

func start(t *testing.T, cfg Config, setup func(*Server)) *running {
	t.Helper()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	srv, err := New(cfg, zap.NewNop(), "grpc.testing.TestService")
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(srv)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = srv.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func check(ctx context.Context, conn *grpc.ClientConn, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return resp.GetStatus(), err
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServesHealthReflectionMetricsAndRecovers(t *testing.T) {
	r := start(t, Config{Name: "test", OpenAPI: []byte(`{"swagger":"2.0"}`)}, func(s *Server) {
		testpb.RegisterTestServiceServer(s.GRPC(), &streamer{n: 1})
		if err := s.Health().Add(health.Check{Name: "dep", Probe: func(context.Context) error { return errors.New("down") }}); err != nil {
			t.Fatal(err)
		}
	})
	conn := dial(t, r.srv.GRPCAddr())
	ctx := context.Background()
	for svc, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
		"":                         healthpb.HealthCheckResponse_SERVING,
		"grpc.testing.TestService": healthpb.HealthCheckResponse_SERVING,
		"dep":                      healthpb.HealthCheckResponse_NOT_SERVING,
	} {
		if got, err := check(ctx, conn, svc); err != nil || got != want {
			t.Fatalf("health %q = %v, %v; want %v", svc, got, err, want)
		}
	}

	// Reflection lists the registered services (what grpcurl uses).
	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	_ = rs.CloseSend()
	if got := strings.Join(names, ","); !strings.Contains(got, "grpc.testing.TestService") || !strings.Contains(got, "grpc.health.v1.Health") {
		t.Fatalf("reflection lists %s", got)
	}

	// A panic becomes INTERNAL with the request id, and the server lives on.
	md := metadata.Pairs(RequestIDHeader, "req-42")
	_, err = testpb.NewTestServiceClient(conn).UnaryCall(metadata.NewOutgoingContext(ctx, md), &testpb.SimpleRequest{ResponseSize: -1})
	if st := status.Convert(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "req-42") {
		t.Fatalf("panic answered %v", err)
	}
	var header metadata.MD
	if _, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&header)); err != nil {
		t.Fatalf("server did not survive the panic: %v", err)
	}
	if len(header.Get(RequestIDHeader)) != 1 || header.Get(RequestIDHeader)[0] == "" {
		t.Fatalf("no generated request id in header: %v", header)
	}

	base := "http://" + r.srv.HTTPAddr()
	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/readyz?verbose"); code != 200 || !strings.Contains(body, "[!]dep failed") {
		t.Fatalf("/readyz?verbose = %d %q", code, body)
	}
	if code, _ := httpGet(t, base+"/readyz/dep"); code != 503 {
		t.Fatalf("/readyz/dep = %d, want 503", code)
	}
	if code, body := httpGet(t, base+"/metrics"); code != 200 || !strings.Contains(body, `grpc_server_handled_total{grpc_code="Internal",grpc_method="UnaryCall"`) {
		t.Fatalf("/metrics = %d, missing handled counter", code)
	}
	if code, body := httpGet(t, base+"/openapi.json"); code != 200 || !strings.Contains(body, "swagger") {
		t.Fatalf("/openapi.json = %d %q", code, body)
	}
}

// TestGracefulStop proves the stop order: NOT_SERVING while the listener is
// still open, then the in-flight stream finishes, then the port is closed.
func TestGracefulStop(t *testing.T) {
	const msgs, gap = 6, 100 * time.Millisecond
	r := start(t, Config{Name: "test", ShutdownDelay: 300 * time.Millisecond, DrainTimeout: 5 * time.Second}, func(s *Server) {
		testpb.RegisterTestServiceServer(s.GRPC(), &streamer{n: msgs, gap: gap})
	})
	addr := r.srv.GRPCAddr()
	conn := dial(t, addr)
	ctx := context.Background()
	stream, err := testpb.NewTestServiceClient(conn).StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	r.cancel() // what SIGTERM does through signal.NotifyContext in main
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		st, err := check(ctx, conn, "")
		if err == nil && st == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not NOT_SERVING within 200ms of stop: %v %v", st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Still inside the shutdown delay: the listener accepts connections.
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("listener closed before the shutdown delay passed: %v", err)
	}
	_ = c.Close()

	got := 1
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("in-flight stream cut after %d messages: %v", got, err)
		}
		got++
	}
	if got != msgs {
		t.Fatalf("stream delivered %d of %d messages", got, msgs)
	}
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("Run: %v", r.err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Fatal("listener still open after stop")
	}
}

func TestDrainTimeoutCutsStuckStreams(t *testing.T) {
	r := start(t, Config{Name: "test", DrainTimeout: 200 * time.Millisecond}, func(s *Server) {
		testpb.RegisterTestServiceServer(s.GRPC(), &streamer{n: 100, gap: 100 * time.Millisecond})
	})
	conn := dial(t, r.srv.GRPCAddr())
	stream, err := testpb.NewTestServiceClient(conn).StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("stop took %s with a 200ms drain timeout", took)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				t.Fatal("a 10 s stream completed within a 200 ms drain")
			}
			break
		}
	}
}

func TestCallLogLevels(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := zapLogger(zap.New(core))
	ctx := context.Background()
	l.Log(ctx, logging.LevelDebug, "finished call", durationFields(time.Millisecond)...)
	l.Log(ctx, logging.LevelDebug, "finished call", durationFields(SlowCall)...)
	l.Log(ctx, logging.LevelWarn, "finished call", durationFields(time.Millisecond)...)
	var got []zapcore.Level
	for _, e := range logs.All() {
		got = append(got, e.Level)
	}
	want := []zapcore.Level{zapcore.DebugLevel, zapcore.InfoLevel, zapcore.WarnLevel}
	if len(got) != len(want) {
		t.Fatalf("levels %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("levels %v, want %v", got, want)
		}
	}
	if ms, ok := logs.All()[1].ContextMap()["grpc.time_ms"].(float64); !ok || ms != float64(SlowCall.Milliseconds()) {
		t.Fatalf("time field %v", logs.All()[1].ContextMap())
	}
	for _, tc := range []struct {
		code codes.Code
		want logging.Level
	}{{codes.OK, logging.LevelDebug}, {codes.InvalidArgument, logging.LevelInfo}, {codes.Aborted, logging.LevelInfo}, {codes.Unavailable, logging.LevelWarn}, {codes.Internal, logging.LevelError}} {
		if got := callLevel(tc.code); got != tc.want {
			t.Errorf("callLevel(%v) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

// waiter sends one message, then waits for its context, as a handler blocked
// sending to a client that does not read does.
type waiter struct {
	testpb.UnimplementedTestServiceServer
}

func (waiter) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
		return err
	}
	select {
	case <-stream.Context().Done():
		return status.FromContextError(stream.Context().Err()).Err()
	case <-time.After(10 * time.Second):
		return nil
	}
}

// TestMaxCallDuration: a call with no deadline of its own has its context
// ended after MaxCallDuration (a client that stops reading cannot hold it
// forever); health Watch streams are exempt.
func TestMaxCallDuration(t *testing.T) {
	const maxCall = 300 * time.Millisecond
	r := start(t, Config{Name: "test", MaxCallDuration: maxCall}, func(s *Server) {
		testpb.RegisterTestServiceServer(s.GRPC(), waiter{})
	})
	conn := dial(t, r.srv.GRPCAddr())
	stream, err := testpb.NewTestServiceClient(conn).StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			t.Fatal("a 10 s stream ran to its end with a 300ms maximum")
		}
		if err != nil {
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("stream ended with %v, want DEADLINE_EXCEEDED", err)
			}
			break
		}
	}
	if took := time.Since(start); took > maxCall+2*time.Second {
		t.Fatalf("stream cut after %s, maximum %s", took, maxCall)
	}

	w, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := w.Recv()
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("health Watch ended after the maximum call duration: %v", err)
	case <-time.After(3 * maxCall):
	}
	r.cancel() // the stop ends the Watch (NOT_SERVING, then the drain)
	<-got
}

// TestStopHooksRunWithinTheDrain: OnStop hooks run after the calls, with a
// context that ends with the drain, so Run returns within DrainTimeout
// even with a stuck stream and a hook that would wait longer.
func TestStopHooksRunWithinTheDrain(t *testing.T) {
	const drain = 500 * time.Millisecond
	var hookRan, streamEnded time.Time
	r := start(t, Config{Name: "test", DrainTimeout: drain}, func(s *Server) {
		testpb.RegisterTestServiceServer(s.GRPC(), &streamer{n: 100, gap: 100 * time.Millisecond})
		s.OnStop(func(ctx context.Context) {
			hookRan = time.Now()
			select {
			case <-ctx.Done():
			case <-time.After(time.Minute):
			}
		})
	})
	conn := dial(t, r.srv.GRPCAddr())
	stream, err := testpb.NewTestServiceClient(conn).StreamingOutputCall(context.Background(), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.cancel()
	for {
		if _, err := stream.Recv(); err != nil {
			streamEnded = time.Now()
			break
		}
	}
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if took := time.Since(start); took > drain+time.Second {
		t.Fatalf("stop took %s with a %s drain", took, drain)
	}
	if hookRan.IsZero() || hookRan.Before(streamEnded.Add(-50*time.Millisecond)) {
		t.Fatalf("hook ran at %v, stream ended at %v: want the hook after the calls", hookRan, streamEnded)
	}
}

// TestRunClosesListenersWhenGatewayFails: when a gateway registration
// fails, Run returns the error with both listeners closed (the HTTP one was
// left open), so the addresses can be bound again.
func TestRunClosesListenersWhenGatewayFails(t *testing.T) {
	srv, err := New(Config{Name: "test", GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv.RegisterGateway(func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error {
		return errors.New("no such service")
	})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	addrs := []string{srv.GRPCAddr(), srv.HTTPAddr()}
	if err := srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no such service") {
		t.Fatalf("Run = %v, want the registration error", err)
	}
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken after Run failed: %v", addr, err)
			continue
		}
		_ = l.Close()
	}
}
