package health

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve starts a gRPC server with the registry's health service on an
// in-memory listener and returns a client for it.
func serve(t *testing.T, r *Registry) healthpb.HealthClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, r.GRPCServer())
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
	return healthpb.NewHealthClient(conn)
}

func runRegistry(t *testing.T, r *Registry) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func status(t *testing.T, c healthpb.HealthClient, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("Check(%q): %v", service, err)
	}
	return resp.GetStatus()
}

func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBlockedProbeDoesNotBlockCheckOrReadyz(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	r := NewRegistry(zap.NewNop(), "svc.v1.Svc")
	// A probe that ignores its context entirely: the worst dependency.
	if err := r.Add(Check{Name: "stuck", Timeout: 50 * time.Millisecond, Interval: 10 * time.Millisecond,
		Probe: func(context.Context) error { <-release; return nil }}); err != nil {
		t.Fatal(err)
	}
	client := serve(t, r)
	runRegistry(t, r)

	for i := 0; i < 20; i++ {
		start := time.Now()
		if got := status(t, client, "stuck"); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("stuck = %v, want NOT_SERVING", got)
		}
		if got := status(t, client, "svc.v1.Svc"); got != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("service = %v, want SERVING", got)
		}
		rec := httptest.NewRecorder()
		r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz?verbose", nil))
		// The probe never returns while the test runs, so any bound proves
		// the answers do not wait for it; a generous one keeps a loaded CI
		// machine from failing the test.
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("health answers took %s with a stuck probe", took)
		}
		if rec.Code != http.StatusOK { // non-critical: reported, still ready
			t.Fatalf("readyz = %d, want 200 for a non-critical check", rec.Code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, time.Second, func() bool {
		res, _ := r.Result("stuck")
		return strings.Contains(res.LastError, "timed out")
	})
}

func TestStatusChangeSeenByWatchAndReadyz(t *testing.T) {
	var healthy atomic.Bool
	r := NewRegistry(zap.NewNop())
	changes := make(chan bool, 16)
	r.OnChange(func(name string, ok bool) { changes <- ok })
	var results atomic.Int64
	r.OnResult(func(string, error) { results.Add(1) })
	if err := r.Add(Check{Name: "db", Critical: true, Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond,
		Probe: func(context.Context) error {
			if healthy.Load() {
				return nil
			}
			return errors.New("connection refused")
		}}); err != nil {
		t.Fatal(err)
	}
	client := serve(t, r)
	runRegistry(t, r)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "db"})
	if err != nil {
		t.Fatal(err)
	}
	next := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := watch.Recv()
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		return resp.GetStatus()
	}
	if got := next(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("first watch status %v, want NOT_SERVING", got)
	}
	readyz := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	waitFor(t, time.Second, func() bool { res, _ := r.Result("db"); return res.Known })
	code, body := readyz("/readyz?verbose")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]db failed: reason withheld") {
		t.Fatalf("readyz while failing = %d %q", code, body)
	}
	if code, _ := readyz("/readyz/db"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz/db = %d, want 503", code)
	}

	healthy.Store(true)
	if got := next(); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch after recovery %v, want SERVING", got)
	}
	if code, body := readyz("/readyz"); code != http.StatusOK || body != "ok" {
		t.Fatalf("readyz after recovery = %d %q", code, body)
	}
	if code, _ := readyz("/readyz/nope"); code != http.StatusNotFound {
		t.Fatalf("/readyz/nope = %d, want 404", code)
	}
	healthy.Store(false)
	if got := next(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch after failure %v, want NOT_SERVING", got)
	}
	// OnResult sees every probe, not only the flips.
	waitFor(t, time.Second, func() bool { return results.Load() > 6 }) // the status stays put; probes go on
	// OnChange saw: first result (false), recovery (true), failure (false).
	want := []bool{false, true, false}
	for i, w := range want {
		select {
		case got := <-changes:
			if got != w {
				t.Fatalf("change %d = %v, want %v", i, got, w)
			}
		case <-time.After(time.Second):
			t.Fatalf("change %d not delivered", i)
		}
	}
}

func TestShutdownReportsNotServing(t *testing.T) {
	r := NewRegistry(zap.NewNop(), "svc.v1.Svc")
	if err := r.Add(Check{Name: "ok", Probe: func(context.Context) error { return nil }, Interval: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	client := serve(t, r)
	runRegistry(t, r)
	waitFor(t, time.Second, func() bool { return r.Passing("ok") })
	r.Shutdown()
	for _, s := range []string{"", "svc.v1.Svc", "ok"} {
		if got := status(t, client, s); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("%q after Shutdown = %v, want NOT_SERVING", s, got)
		}
	}
	time.Sleep(30 * time.Millisecond) // a passing probe must not flip it back
	if got := status(t, client, "ok"); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("probe revived a drained status: %v", got)
	}
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "draining") {
		t.Fatalf("readyz while draining = %d %q", rec.Code, rec.Body.String())
	}
}

func TestAddValidation(t *testing.T) {
	r := NewRegistry(zap.NewNop())
	probe := func(context.Context) error { return nil }
	if err := r.Add(Check{Name: "", Probe: probe}); err == nil {
		t.Fatal("empty name accepted")
	}
	if err := r.Add(Check{Name: "a", Probe: probe}); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(Check{Name: "a", Probe: probe}); err == nil {
		t.Fatal("duplicate accepted")
	}
	if err := r.Add(Check{Name: "b"}); err == nil {
		t.Fatal("nil probe accepted")
	}
}

func TestRemoteProbe(t *testing.T) {
	remote := NewRegistry(zap.NewNop(), "up.v1.Up")
	client := serve(t, remote)
	ctx := context.Background()
	if err := RemoteProbe(client, "up.v1.Up")(ctx); err != nil {
		t.Fatalf("SERVING remote: %v", err)
	}
	remote.Shutdown()
	if err := RemoteProbe(client, "up.v1.Up")(ctx); !errors.Is(err, ErrNotServing) {
		t.Fatalf("NOT_SERVING remote: %v, want ErrNotServing", err)
	}
	if err := RemoteProbe(client, "unknown")(ctx); err == nil {
		t.Fatal("unknown service passed")
	}
}
