package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/pgtest"
	"github.com/brainhq/brain/services/kit/server"
	"github.com/brainhq/brain/services/memory/pgconn"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type running struct {
	app    *App
	conn   *grpc.ClientConn
	client memoryv1.MemoryServiceClient
	health healthpb.HealthClient
	http   string
}

func testConfig(t *testing.T, dbURL string) Config {
	t.Helper()
	// The test URL carries the password, which DATABASE_URL refuses; built
	// in code, the way DATABASE_URL_FILE's content arrives.
	db := pgconn.Config{URL: dbURL, ConnectTimeout: time.Second}
	return Config{
		Server:           server.Config{Name: "memory", GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DrainTimeout: 2 * time.Second},
		DB:               db,
		LogLevel:         "error",
		MigrateOnStart:   true,
		RecallTimeout:    300 * time.Millisecond,
		QueryTimeout:     time.Second,
		CacheEntries:     100,
		CacheBytes:       1 << 20,
		CacheMaxAge:      time.Hour,
		BreakerThreshold: 3,
		ProbeInterval:    200 * time.Millisecond,
		ProbeTimeout:     500 * time.Millisecond,
	}
}

func startApp(t *testing.T, cfg Config) *running {
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
	return &running{app: a, conn: conn, client: memoryv1.NewMemoryServiceClient(conn),
		health: healthpb.NewHealthClient(conn), http: "http://" + a.Server().HTTPAddr()}
}

func (r *running) waitHealth(t *testing.T, service string, want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		resp, err := r.health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil && resp.GetStatus() == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("health %q not %v within %s (last %v, %v)", service, want, within, resp.GetStatus(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWriteRecallOverGRPCAndJSON(t *testing.T) {
	r := startApp(t, testConfig(t, pgtest.NewDatabase(t)))
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	ctx := ctxT(t)

	w, err := r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
		{Namespace: "alice", SessionId: "s1", Content: "The database migration finished overnight", Importance: proto.Float64(0.9),
			Affect: &memoryv1.Affect{Valence: -0.5, Arousal: 0.7, Intensity: 0.6}},
		{Namespace: "alice", SessionId: "s1", Content: "Lunch was pasta"},
		{Namespace: "bob", SessionId: "s9", Content: "Bob's database password rotation"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.GetEpisodes()) != 3 || w.GetEpisodes()[0].GetId() == "" || w.GetEpisodes()[1].GetImportance() != 0.5 {
		t.Fatalf("write response %v", w)
	}

	rec, err := r.client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "alice", Query: "when did the databases migrate?"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_POSTGRES || rec.GetDegraded() {
		t.Fatalf("recall source %v degraded %v", rec.GetSource(), rec.GetDegraded())
	}
	if len(rec.GetEpisodes()) != 1 || rec.GetEpisodes()[0].GetEpisode().GetId() != w.GetEpisodes()[0].GetId() {
		t.Fatalf("recall found %v, want only alice's migration", rec.GetEpisodes())
	}
	if a := rec.GetEpisodes()[0].GetEpisode().GetAffect(); a.GetValence() != -0.5 || a.GetArousal() != 0.7 {
		t.Fatalf("affect not returned: %v", a)
	}
	if s := rec.GetEpisodes()[0].GetScores(); s.GetTotal() <= 0 || s.GetRelevance() <= 0 {
		t.Fatalf("scores %v", s)
	}

	// The same through the gateway: JSON in, JSON out, HTTP codes.
	body := `{"namespace":"alice","query":"database migration","limit":3}`
	resp, err := http.Post(r.http+"/v1/memory/episodes:recall", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Episodes []struct {
			Episode struct{ ID string } `json:"episode"`
		} `json:"episodes"`
		Source   string `json:"source"`
		Degraded bool   `json:"degraded"`
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("JSON recall %d %s: %v", resp.StatusCode, b, err)
	}
	if got.Source != "RECALL_SOURCE_POSTGRES" || len(got.Episodes) != 1 || got.Episodes[0].Episode.ID != w.GetEpisodes()[0].GetId() {
		t.Fatalf("JSON recall %s", b)
	}

	// GET and DELETE routes with path parameters; 404 and 400 mapping.
	id := w.GetEpisodes()[1].GetId()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/memory/namespaces/alice/episodes/" + id, 200},
		{"GET", "/v1/memory/namespaces/bob/episodes/" + id, 404}, // another namespace's id
		{"GET", "/v1/memory/namespaces/alice/episodes/not-a-uuid", 400},
		{"DELETE", "/v1/memory/namespaces/alice/episodes/" + id, 200},
		{"GET", "/v1/memory/namespaces/alice/episodes/" + id, 404},
		{"GET", "/v1/memory/namespaces/alice/episodes?page_size=10", 200},
		{"GET", "/v1/memory/stats", 200},
		{"POST", "/v1/memory/episodes:recall", 400}, // empty body: namespace and query missing
	} {
		req, _ := http.NewRequest(tc.method, r.http+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, resp.StatusCode, b, tc.want)
		}
	}

	stats, err := r.client.GetStats(ctx, &memoryv1.GetStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !stats.GetPostgresAvailable() || stats.GetEpisodeCount() != 2 || stats.GetSchemaVersion() != stats.GetExpectedSchemaVersion() ||
		stats.GetBreaker() != memoryv1.BreakerState_BREAKER_STATE_CLOSED {
		t.Fatalf("stats %v", stats)
	}
	del, err := r.client.DeleteNamespace(ctx, &memoryv1.DeleteNamespaceRequest{Namespace: "alice"})
	if err != nil || del.GetDeleted() != 1 {
		t.Fatalf("erase alice: %v %v", del, err)
	}
	if s, _ := r.client.GetStats(ctx, &memoryv1.GetStatsRequest{Namespace: "bob"}); s.GetEpisodeCount() != 1 {
		t.Fatalf("erasing alice touched bob: %v", s)
	}
}

func TestBadInputNamesTheField(t *testing.T) {
	r := startApp(t, testConfig(t, pgtest.NewDatabase(t)))
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	ctx := ctxT(t)
	long := strings.Repeat("x", 64<<10+1)
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"recall without namespace", func() error {
			_, err := r.client.Recall(ctx, &memoryv1.RecallRequest{Query: "q"})
			return err
		}, "namespace"},
		{"recall without query", func() error {
			_, err := r.client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "n"})
			return err
		}, "query"},
		{"limit too big", func() error {
			_, err := r.client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "n", Query: "q", Limit: 101})
			return err
		}, "limit"},
		{"negative limit", func() error {
			_, err := r.client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "n", Query: "q", Limit: -1})
			return err
		}, "limit"},
		{"unknown match", func() error {
			_, err := r.client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "n", Query: "q", Match: 99})
			return err
		}, "match"},
		{"control characters in namespace", func() error {
			_, err := r.client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "a\x00b", Query: "q"})
			return err
		}, "namespace"},
		{"oversized content", func() error {
			_, err := r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{Namespace: "n", Content: long}}})
			return err
		}, "episodes[0].content"},
		{"malformed id", func() error {
			_, err := r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{Id: "123", Namespace: "n", Content: "c"}}})
			return err
		}, "episodes[0].id"},
		{"importance out of range", func() error {
			_, err := r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{Namespace: "n", Content: "c", Importance: proto.Float64(2)}}})
			return err
		}, "episodes[0].importance"},
		{"empty batch", func() error {
			_, err := r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{})
			return err
		}, "episodes"},
		{"get malformed id", func() error {
			_, err := r.client.GetEpisode(ctx, &memoryv1.GetEpisodeRequest{Namespace: "n", Id: "x"})
			return err
		}, "id"},
		{"page size", func() error {
			_, err := r.client.ListEpisodes(ctx, &memoryv1.ListEpisodesRequest{Namespace: "n", PageSize: 5000})
			return err
		}, "page_size"},
		{"bad page token", func() error {
			_, err := r.client.ListEpisodes(ctx, &memoryv1.ListEpisodesRequest{Namespace: "n", PageToken: "garbage"})
			return err
		}, "page_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.field) {
				t.Fatalf("got %v, want INVALID_ARGUMENT naming %q", err, tt.field)
			}
		})
	}
}

// TestPostgresOutage stops PostgreSQL under a running service: recall
// degrades (cache, then none) within its deadline, health follows within
// 2 s both ways, a write fails cleanly, and its retry stores one copy.
func TestPostgresOutage(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	dbURL, err := cluster.CreateDatabase(context.Background(), "brain")
	if err != nil {
		t.Fatal(err)
	}
	r := startApp(t, testConfig(t, dbURL))
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	ctx := ctxT(t)

	if _, err := r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
		{Namespace: "n", Content: "the quarterly report is due friday"},
	}}); err != nil {
		t.Fatal(err)
	}
	cachedQ := &memoryv1.RecallRequest{Namespace: "n", Query: "quarterly report"}
	if rec, err := r.client.Recall(ctx, cachedQ); err != nil || len(rec.GetEpisodes()) != 1 {
		t.Fatalf("warm-up recall %v %v", rec, err)
	}

	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	took := r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_NOT_SERVING, 2*time.Second)
	t.Logf("postgres NOT_SERVING %s after stop", took)
	// The server as a whole keeps serving: it answers, degraded.
	r.waitHealth(t, "brain.memory.v1.MemoryService", healthpb.HealthCheckResponse_SERVING, 0)

	start := time.Now()
	rec, err := r.client.Recall(ctx, cachedQ)
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_CACHE || !rec.GetDegraded() || rec.GetDegradedReason() == "" ||
		len(rec.GetEpisodes()) != 1 || rec.GetCacheAge() == nil {
		t.Fatalf("outage recall (cached) = %v", rec)
	}
	rec, err = r.client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "n", Query: "never asked before"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_NONE || !rec.GetDegraded() || len(rec.GetEpisodes()) != 0 {
		t.Fatalf("outage recall (uncached) = %v", rec)
	}
	if d := time.Since(start); d > 700*time.Millisecond {
		t.Fatalf("two degraded recalls took %s", d)
	}

	// A write during the outage is refused, never faked.
	id := "5b0e6a3c-7f6e-4b8a-9a39-0d9b1a2c3d4e"
	write := &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{Id: id, Namespace: "n", Content: "written during the outage"}}}
	if _, err := r.client.WriteEpisodes(ctx, write); status.Code(err) != codes.Unavailable {
		t.Fatalf("write during outage: %v, want UNAVAILABLE", err)
	}
	stats, err := r.client.GetStats(ctx, &memoryv1.GetStatsRequest{})
	if err != nil || stats.GetPostgresAvailable() || stats.GetBreaker() != memoryv1.BreakerState_BREAKER_STATE_OPEN {
		t.Fatalf("stats during outage %v %v", stats, err)
	}
	if resp, err := http.Get(r.http + "/readyz?verbose"); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(b, []byte("[!]postgres failed")) {
			t.Fatalf("/readyz?verbose does not show the postgres error: %s", b)
		}
	}

	if err := cluster.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	took = r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_SERVING, 2*time.Second)
	t.Logf("postgres SERVING %s after restart", took)

	for i := 0; i < 2; i++ { // the retry, and a duplicate retry
		if _, err := r.client.WriteEpisodes(ctx, write); err != nil {
			t.Fatalf("retry %d after recovery: %v", i, err)
		}
	}
	list, err := r.client.ListEpisodes(ctx, &memoryv1.ListEpisodesRequest{Namespace: "n"})
	if err != nil {
		t.Fatal(err)
	}
	copies := 0
	for _, ep := range list.GetEpisodes() {
		if ep.GetId() == id {
			copies++
		}
	}
	if copies != 1 || len(list.GetEpisodes()) != 2 {
		t.Fatalf("after retries: %d copies of the outage write, %d episodes", copies, len(list.GetEpisodes()))
	}
	if rec, err := r.client.Recall(ctx, cachedQ); err != nil || rec.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_POSTGRES {
		t.Fatalf("recall after recovery %v %v", rec, err)
	}
}

// TestStartsWithoutPostgres: health answers at once with PostgreSQL absent.
func TestStartsWithoutPostgres(t *testing.T) {
	u := url.URL{Scheme: "postgres", User: url.User("brain"), Host: "127.0.0.1:" + strconv.Itoa(closedPort(t)), Path: "brain", RawQuery: "sslmode=disable"}
	start := time.Now()
	r := startApp(t, testConfig(t, u.String()))
	r.waitHealth(t, "", healthpb.HealthCheckResponse_SERVING, time.Second)
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_NOT_SERVING, time.Second)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("health answered %s after start", d)
	}
	rec, err := r.client.Recall(ctxT(t), &memoryv1.RecallRequest{Namespace: "n", Query: "anything"})
	if err != nil || rec.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_NONE || !rec.GetDegraded() {
		t.Fatalf("recall without postgres: %v %v", rec, err)
	}
}

func closedPort(t *testing.T) int {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// TestBreakerClosesWhilePostgresHealthy: calls that failed for reasons other
// than PostgreSQL being down (a CPU stall timing out three recalls) open the
// breaker; the next passing probe must close it, though the probe's status
// never changed.
func TestBreakerClosesWhilePostgresHealthy(t *testing.T) {
	r := startApp(t, testConfig(t, pgtest.NewDatabase(t)))
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	for i := 0; i < 3; i++ {
		r.app.breaker.Failure("simulated stall")
	}
	if open, _ := r.app.breaker.State(); !open {
		t.Fatal("breaker not open after three failures")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if open, _ := r.app.breaker.State(); !open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("breaker still open 2 s after failures, with PostgreSQL healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec, err := r.client.Recall(ctxT(t), &memoryv1.RecallRequest{Namespace: "n", Query: "anything"})
	if err != nil || rec.GetDegraded() {
		t.Fatalf("recall after the breaker closed: %v %v", rec, err)
	}
}

// TestBreakerGaugeFollowsState: brain_memory_breaker_open ends equal to the
// breaker's state whatever the interleaving of failing calls, probe trips
// and probe resets (it once stuck at 1 with the breaker closed).
func TestBreakerGaugeFollowsState(t *testing.T) {
	u := url.URL{Scheme: "postgres", User: url.User("brain"), Host: "127.0.0.1:" + strconv.Itoa(closedPort(t)), Path: "brain", RawQuery: "sslmode=disable"}
	cfg := testConfig(t, u.String())
	cfg.BreakerThreshold = 1
	a, err := New(cfg, zap.NewNop()) // not Run: no probe, the test drives the breaker
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.closePool)
	for round := 0; round < 300; round++ {
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					switch (g + i) % 3 {
					case 0:
						a.breaker.Failure("call failed")
					case 1:
						a.breaker.Trip("probe failed")
					default:
						a.breaker.Reset()
					}
				}
			}()
		}
		wg.Wait()
		open, _ := a.breaker.State()
		want := 0.0
		if open {
			want = 1
		}
		if got := gaugeValue(t, a, "brain_memory_breaker_open"); got != want {
			t.Fatalf("round %d: brain_memory_breaker_open = %v, breaker open = %v", round, got, open)
		}
	}
}

func gaugeValue(t *testing.T, a *App, name string) float64 {
	t.Helper()
	mfs, err := a.srv.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
