// Package app wires the orchestrator together: configuration, the
// connection to memory (deadlines, keepalive, optional TLS), the health
// mirrors of memory, the access recorder, the LAB graph's gRPC handlers and
// the JSON gateway (which also proxies memory's routes, so JSON users need
// one address), on the shared server kit.
package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/gen/openapi"
	"github.com/brainhq/brain/services/kit/cli"
	"github.com/brainhq/brain/services/kit/config"
	"github.com/brainhq/brain/services/kit/health"
	"github.com/brainhq/brain/services/kit/server"
	"github.com/brainhq/brain/services/orchestrator/api"
	"github.com/brainhq/brain/services/orchestrator/labs"
	"github.com/brainhq/brain/services/orchestrator/memoryclient"
	"github.com/brainhq/brain/services/orchestrator/memoryclient/access"
)

// Health service names that mirror memory's own.
const (
	MemoryCheck         = "memory"
	MemoryPostgresCheck = "memory/postgres"
)

// Config is the orchestrator's configuration.
type Config struct {
	Server   server.Config
	LogLevel string
	// MemoryAddr is memory's gRPC address; MemoryCAFile, when set, makes the
	// connection TLS, verified against that CA.
	MemoryAddr   string
	MemoryCAFile string
	// Budget is a run's default budget.
	Budget time.Duration
	// ProbeInterval and ProbeTimeout drive the memory health mirrors.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// MemoryProxyTimeout bounds each call the gateway forwards to memory.
	MemoryProxyTimeout time.Duration
}

// Flags binds the configuration to flags and environment variables.
type Flags struct {
	srv                         *server.Flags
	memoryAddr, memoryCA        *string
	budget                      *time.Duration
	probeInterval, probeTimeout *time.Duration
	proxyTimeout                *time.Duration
}

// BindFlags defines the orchestrator's flags.
func BindFlags(b *config.Binder) *Flags {
	return &Flags{
		srv:           server.BindFlags(b, "orchestrator", ":9090", ":8080"),
		memoryAddr:    b.String("memory-addr", "MEMORY_ADDR", "localhost:9091", "memory service gRPC address"),
		memoryCA:      b.String("memory-tls-ca-file", "MEMORY_TLS_CA_FILE", "", "CA (PEM) to verify memory's TLS certificate; plaintext when empty"),
		budget:        b.Duration("budget", "ORCHESTRATE_BUDGET", api.DefaultBudget, "default budget of one Orchestrate run"),
		probeInterval: b.Duration("probe-interval", "PROBE_INTERVAL", 500*time.Millisecond, "time between memory health probes"),
		probeTimeout:  b.Duration("probe-timeout", "PROBE_TIMEOUT", time.Second, "timeout of one memory health probe"),
		proxyTimeout: b.Duration("memory-proxy-timeout", "MEMORY_PROXY_TIMEOUT", memoryclient.DefaultProxyTimeout,
			"deadline of each call the HTTP gateway forwards to memory (/v1/memory/...)"),
	}
}

// Config returns the parsed configuration.
func (f *Flags) Config() Config {
	srv := f.srv.Config()
	srv.OpenAPI = openapi.Document
	return Config{
		Server:        srv,
		LogLevel:      f.srv.LogLevel(),
		MemoryAddr:    *f.memoryAddr,
		MemoryCAFile:  *f.memoryCA,
		Budget:        *f.budget,
		ProbeInterval: *f.probeInterval,
		ProbeTimeout:  *f.probeTimeout,
		// Set apart: gofmt aligns the block to the longest name.
		MemoryProxyTimeout: *f.proxyTimeout,
	}
}

// App is a configured orchestrator, ready to Run.
type App struct {
	srv      *server.Server
	conn     *grpc.ClientConn
	recorder *access.Recorder
}

// New builds the orchestrator. It does not wait for memory: the connection
// is made lazily, and LABs degrade while memory is away.
func New(cfg Config, log *zap.Logger) (*App, error) {
	creds := insecure.NewCredentials()
	if cfg.MemoryCAFile != "" {
		c, err := cli.ClientTLS(cfg.MemoryCAFile)
		if err != nil {
			return nil, err
		}
		creds = c
	}
	conn, err := dialMemory(cfg.MemoryAddr, creds)
	if err != nil {
		return nil, err
	}
	srv, err := server.New(cfg.Server, log, orchestratorv1.OrchestratorService_ServiceDesc.ServiceName)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	hc := healthpb.NewHealthClient(conn)
	for name, remote := range map[string]string{MemoryCheck: "", MemoryPostgresCheck: "postgres"} {
		if err := srv.Health().Add(health.Check{Name: name, Probe: health.RemoteProbe(hc, remote),
			Interval: cfg.ProbeInterval, Timeout: cfg.ProbeTimeout}); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}

	mem := memoryclient.New(conn)
	recorder, err := access.New(mem, access.Options{Logger: log})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("access recorder: %w", err)
	}
	labDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "brain_orchestrator_lab_duration_seconds",
		Help:    "Time each LAB took in a run, by LAB and final status.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"lab", "status"})
	srv.Metrics().MustRegister(labDur)

	handlers := api.New(api.Deps{
		Memory:        mem,
		Access:        recorder,
		Logger:        log,
		DefaultBudget: cfg.Budget,
		ObserveLab: func(id string, st labs.Status, elapsed time.Duration) {
			labDur.WithLabelValues(id, st.String()).Observe(elapsed.Seconds())
		},
	})
	orchestratorv1.RegisterOrchestratorServiceServer(srv.GRPC(), handlers)
	srv.RegisterGateway(func(ctx context.Context, mux *runtime.ServeMux, self *grpc.ClientConn) error {
		if err := orchestratorv1.RegisterOrchestratorServiceHandler(ctx, mux, self); err != nil {
			return err
		}
		// The front door also answers memory's JSON routes, over gRPC, each
		// call under a deadline and without transport detail in its errors.
		proxy := memoryclient.NewProxy(conn, cfg.MemoryProxyTimeout, log)
		return memoryv1.RegisterMemoryServiceHandlerClient(ctx, mux, memoryv1.NewMemoryServiceClient(proxy))
	})
	// Accesses taken by the last runs are flushed within the drain, after
	// those runs ended, so the process still stops within DRAIN_TIMEOUT.
	srv.OnStop(recorder.Stop)
	return &App{srv: srv, conn: conn, recorder: recorder}, nil
}

// memoryServiceConfig balances calls over every address memory's name
// resolves to (a headless Service lists each pod), not one connection.
const memoryServiceConfig = `{"loadBalancingConfig": [{"round_robin": {}}]}`

func dialMemory(addr string, creds credentials.TransportCredentials, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(memoryServiceConfig),
		grpc.WithUnaryInterceptor(server.PropagateRequestID),
		// Keepalive notices a memory that vanished without closing the
		// connection (the prototype's silently dropped packets).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 3 * time.Second, PermitWithoutStream: true}),
		// Reconnect within a second of memory coming back, however long it
		// was away (gRPC's default backoff grows to 120 s), so the health
		// mirrors and LABs recover within the design's 2 s (docs/design.md).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
	}, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("memory client for %s: %w", addr, err)
	}
	return conn, nil
}

// Server is the underlying server (for addresses in tests).
func (a *App) Server() *server.Server { return a.srv }

// Run serves until ctx ends, stops gracefully, flushes queued accesses and
// closes the connection to memory.
func (a *App) Run(ctx context.Context) error {
	defer a.conn.Close()
	rctx, stopRecorder := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.recorder.Run(rctx)
	}()
	err := a.srv.Run(ctx) // stops the recorder in its stop sequence
	stopRecorder()        // unless Run failed before serving
	wg.Wait()
	return err
}
