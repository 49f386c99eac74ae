// Package server is the process shell both Brain binaries share: a gRPC
// server with interceptors (request id, zap logging, Prometheus metrics,
// panic recovery, size limits), the gRPC health service and reflection, and
// an HTTP server with the grpc-gateway JSON routes, /healthz, /readyz,
// /metrics and the OpenAPI document; and the graceful stop: NOT_SERVING
// first, then drain in-flight calls and streams, then stop.
package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	goruntime "runtime"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/tap"
	"google.golang.org/grpc/test/bufconn"

	"github.com/brainhq/brain/services/kit/config"
	"github.com/brainhq/brain/services/kit/health"
)

// Config holds what every Brain server needs.
type Config struct {
	// Name of the binary ("memory", "orchestrator"), used in logs.
	Name string
	// GRPCAddr and HTTPAddr are listen addresses (":0" picks a free port).
	GRPCAddr string
	HTTPAddr string
	// DrainTimeout bounds how long in-flight calls and streams may finish
	// after a stop is requested; then they are cut.
	DrainTimeout time.Duration
	// ShutdownDelay is how long NOT_SERVING is reported before the listeners
	// close, so load balancers stop sending new calls first.
	ShutdownDelay time.Duration
	// MaxRecvBytes bounds a gRPC message and an HTTP request body.
	MaxRecvBytes int
	// TLSCertFile and TLSKeyFile, when both set, make gRPC serve TLS.
	TLSCertFile string
	TLSKeyFile  string
	// OpenAPI is served at /openapi.json when set.
	OpenAPI []byte
	// Pprof serves the Go profiler at /debug/pprof/ on the HTTP port. Off by
	// default: profiles expose internals and cost CPU.
	Pprof bool
	// MaxCallDuration bounds every call and stream, gRPC and HTTP (health
	// Watch streams excepted): a client that stops reading, with no
	// deadline of its own, is cut then instead of being kept forever.
	MaxCallDuration time.Duration
	// MaxConnectionAge is how long a gRPC connection serves new calls; then
	// it is told to go away (clients reconnect, spreading over replicas) and
	// closed MaxCallDuration later, with whatever it still holds.
	MaxConnectionAge time.Duration
}

// Defaults of Config.
const (
	DefaultMaxCallDuration  = time.Minute
	DefaultMaxConnectionAge = 5 * time.Minute
)

// healthWatch streams last as long as their client wants, by design.
const healthWatch = "/grpc.health.v1.Health/Watch"

// Flags are the common command-line flags, bound to their variables.
type Flags struct {
	name                         string
	grpcAddr, httpAddr, logLevel *string
	drain, delay                 *time.Duration
	maxRecv                      *int
	cert, key                    *string
	pprof                        *bool
	maxCall, maxConnAge          *time.Duration
}

// BindFlags defines the common flags (and their variables) on b.
func BindFlags(b *config.Binder, name, defGRPC, defHTTP string) *Flags {
	return &Flags{
		name:     name,
		grpcAddr: b.String("grpc-addr", "GRPC_ADDR", defGRPC, "gRPC listen address"),
		httpAddr: b.String("http-addr", "HTTP_ADDR", defHTTP, "HTTP listen address: gateway JSON, /healthz, /readyz, /metrics"),
		logLevel: b.String("log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error"),
		drain:    b.Duration("drain-timeout", "DRAIN_TIMEOUT", 10*time.Second, "time in-flight calls and streams get to finish after SIGTERM"),
		delay:    b.Duration("shutdown-delay", "SHUTDOWN_DELAY", 0, "time NOT_SERVING is reported before the listeners close"),
		maxRecv:  b.Int("max-recv-bytes", "MAX_RECV_BYTES", 4<<20, "largest gRPC message or HTTP body accepted"),
		cert:     b.String("tls-cert-file", "TLS_CERT_FILE", "", "TLS certificate (PEM) for the gRPC port"),
		key:      b.String("tls-key-file", "TLS_KEY_FILE", "", "TLS private key (PEM) for the gRPC port"),
		pprof:    b.Bool("pprof", "PPROF", false, "serve the Go profiler at /debug/pprof/ on the HTTP port"),
		maxCall: b.Duration("max-call-duration", "MAX_CALL_DURATION", DefaultMaxCallDuration,
			"longest a call or stream may last; a client that stops reading is cut then"),
		maxConnAge: b.Duration("max-connection-age", "MAX_CONNECTION_AGE", DefaultMaxConnectionAge,
			"age at which a gRPC connection is asked to reconnect (closed max-call-duration later)"),
	}
}

// LogLevel is the --log-level value.
func (f *Flags) LogLevel() string { return *f.logLevel }

// Config returns the parsed configuration.
func (f *Flags) Config() Config {
	return Config{
		Name:          f.name,
		GRPCAddr:      *f.grpcAddr,
		HTTPAddr:      *f.httpAddr,
		DrainTimeout:  *f.drain,
		ShutdownDelay: *f.delay,
		MaxRecvBytes:  *f.maxRecv,
		TLSCertFile:   *f.cert,
		TLSKeyFile:    *f.key,
		Pprof:         *f.pprof,

		MaxCallDuration:  *f.maxCall,
		MaxConnectionAge: *f.maxConnAge,
	}
}

// Server is a gRPC + HTTP server pair with shared health and metrics.
type Server struct {
	cfg     Config
	log     *zap.Logger
	grpc    *grpc.Server
	health  *health.Registry
	metrics *prometheus.Registry
	rpcm    *grpcprom.ServerMetrics
	httpMux *http.ServeMux

	gatewayFns []GatewayFunc
	onStop     []func(context.Context)
	inproc     *bufconn.Listener
	selfCreds  credentials.TransportCredentials

	mu       sync.Mutex
	grpcLis  net.Listener
	httpLis  net.Listener
	draining chan struct{}
}

// GatewayFunc registers gateway routes on mux. self is a connection to this
// server's own gRPC services (in-process, through the same interceptors);
// a proxy may ignore it and use its own connection.
type GatewayFunc func(ctx context.Context, mux *runtime.ServeMux, self *grpc.ClientConn) error

// New builds a server; services are the gRPC service names reported SERVING
// (with "") while the server takes calls.
func New(cfg Config, log *zap.Logger, services ...string) (*Server, error) {
	if cfg.MaxRecvBytes <= 0 {
		cfg.MaxRecvBytes = 4 << 20
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.MaxCallDuration <= 0 {
		cfg.MaxCallDuration = DefaultMaxCallDuration
	}
	if cfg.MaxConnectionAge <= 0 {
		cfg.MaxConnectionAge = DefaultMaxConnectionAge
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		health:   health.NewRegistry(log, services...),
		metrics:  prometheus.NewRegistry(),
		httpMux:  http.NewServeMux(),
		inproc:   bufconn.Listen(1 << 20),
		draining: make(chan struct{}),
	}
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.rpcm = grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5})))
	s.metrics.MustRegister(s.rpcm)

	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		// Reuse a few goroutines for incoming streams instead of one new
		// goroutine (and stack growth) per call: ~7% of Recall's CPU.
		grpc.NumStreamWorkers(uint32(goruntime.GOMAXPROCS(0))),
		grpc.ChainUnaryInterceptor(unaryInterceptors(log, s.rpcm)...),
		grpc.ChainStreamInterceptor(streamInterceptors(log, s.rpcm)...),
		// Let clients keep connections alive through idle periods (the
		// orchestrator pings memory), but not abusively.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// A connection past its age gets GOAWAY and MaxCallDuration to finish
		// its calls, then is closed: that also frees the buffers of a stream
		// whose client stopped reading, which no server API can reset.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second,
			MaxConnectionAge: cfg.MaxConnectionAge, MaxConnectionAgeGrace: cfg.MaxCallDuration}),
		// Every call's context ends after MaxCallDuration, so a handler
		// blocked sending to a client that does not read is released.
		grpc.InTapHandle(maxDuration(cfg.MaxCallDuration)),
	}
	// A request that does not decode answers INVALID_ARGUMENT naming the
	// field, not grpc's INTERNAL (codec.go). After the chains above, so its
	// interceptors run innermost and the rejection is logged and counted.
	opts = append(opts, decodeErrorOptions()...)
	s.selfCreds = insecure.NewCredentials()
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		serverCreds, selfCreds, err := loadTLS(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(serverCreds))
		s.selfCreds = selfCreds
	}
	s.grpc = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s.grpc, s.health.GRPCServer())
	reflection.Register(s.grpc)

	s.httpMux.Handle("/healthz", health.LivezHandler())
	s.httpMux.Handle("/livez", health.LivezHandler())
	s.httpMux.Handle("/readyz", s.health.Handler())
	s.httpMux.Handle("/readyz/", s.health.Handler())
	s.httpMux.Handle("/metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{Registry: s.metrics}))
	if cfg.Pprof {
		s.httpMux.HandleFunc("/debug/pprof/", pprof.Index)
		s.httpMux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		s.httpMux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		s.httpMux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		s.httpMux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if len(cfg.OpenAPI) > 0 {
		doc := cfg.OpenAPI
		s.httpMux.HandleFunc("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(doc)
		})
	}
	return s, nil
}

// GRPC is the gRPC server to register services on (before Run).
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Health is the dependency check registry (add checks before Run).
func (s *Server) Health() *health.Registry { return s.health }

// Metrics is the Prometheus registry served at /metrics.
func (s *Server) Metrics() *prometheus.Registry { return s.metrics }

// Logger is the server's logger.
func (s *Server) Logger() *zap.Logger { return s.log }

// RegisterGateway adds gateway routes (before Run).
func (s *Server) RegisterGateway(fn GatewayFunc) { s.gatewayFns = append(s.gatewayFns, fn) }

// Handle adds an HTTP route beside the gateway (before Run).
func (s *Server) Handle(pattern string, h http.Handler) { s.httpMux.Handle(pattern, h) }

// OnStop adds fn to the stop sequence (before Run): it runs once in-flight
// calls have ended or been cut, with a context that ends with the drain, so
// the whole stop still fits in DrainTimeout.
func (s *Server) OnStop(fn func(ctx context.Context)) { s.onStop = append(s.onStop, fn) }

// Draining is closed when a stop begins; long-running handlers may watch it.
func (s *Server) Draining() <-chan struct{} { return s.draining }

// Listen binds both listeners. Run calls it when it was not called; tests
// call it first to learn the addresses of ":0" listeners.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpcLis != nil {
		return nil
	}
	gl, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen gRPC %s: %w", s.cfg.GRPCAddr, err)
	}
	hl, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		_ = gl.Close()
		return fmt.Errorf("listen HTTP %s: %w", s.cfg.HTTPAddr, err)
	}
	s.grpcLis, s.httpLis = gl, hl
	return nil
}

// GRPCAddr is the bound gRPC address (after Listen).
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the bound HTTP address (after Listen).
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// Run serves until ctx ends, then stops gracefully: health reports
// NOT_SERVING, ShutdownDelay passes, the listeners close, in-flight calls and
// streams get DrainTimeout to finish, and whatever remains is cut. Run
// returns once every goroutine it started has ended.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.rpcm.InitializeMetrics(s.grpc)

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.health.Run(bg)
	}()

	errc := make(chan error, 3)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.grpc.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("serve gRPC: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		_ = s.grpc.Serve(s.inproc) // in-process listener for the gateway; ends with the server
	}()

	self, err := grpc.NewClient("passthrough:///inproc",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.inproc.DialContext(ctx) }),
		grpc.WithTransportCredentials(s.selfCreds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	// abort undoes what ran so far when the HTTP side cannot start: gRPC
	// Serve owns (and closes) its listener, the HTTP one is not served yet.
	abort := func(err error) error {
		s.grpc.Stop()
		_ = s.httpLis.Close()
		stopBG()
		wg.Wait()
		return err
	}
	if err != nil {
		return abort(fmt.Errorf("gateway connection: %w", err))
	}
	defer self.Close()

	gw := newGatewayMux()
	for _, fn := range s.gatewayFns {
		if err := fn(bg, gw, self); err != nil {
			return abort(fmt.Errorf("register gateway: %w", err))
		}
	}
	s.httpMux.Handle("/", http.MaxBytesHandler(gw, int64(s.cfg.MaxRecvBytes)))
	httpSrv := &http.Server{
		Handler:           s.httpMux,
		ReadHeaderTimeout: 10 * time.Second,
		// A response (an NDJSON stream included) whose client does not read
		// is cut with the call behind it.
		WriteTimeout:   s.cfg.MaxCallDuration,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := httpSrv.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve HTTP: %w", err)
		}
	}()
	s.log.Info("serving", zap.String("grpc", s.GRPCAddr()), zap.String("http", s.HTTPAddr()))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.stop(httpSrv)
	stopBG()
	wg.Wait()
	return runErr
}

func (s *Server) stop(httpSrv *http.Server) {
	s.log.Info("stopping: reporting NOT_SERVING", zap.Duration("shutdown_delay", s.cfg.ShutdownDelay), zap.Duration("drain_timeout", s.cfg.DrainTimeout))
	s.health.Shutdown()
	close(s.draining)
	if s.cfg.ShutdownDelay > 0 {
		time.Sleep(s.cfg.ShutdownDelay)
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := httpSrv.Shutdown(drainCtx); err != nil {
			s.log.Warn("HTTP drain cut short", zap.Error(err))
			_ = httpSrv.Close()
		}
	}()
	go func() {
		defer wg.Done()
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-drainCtx.Done():
			s.log.Warn("gRPC drain cut short: stopping remaining calls")
			s.grpc.Stop()
			<-done
		}
	}()
	wg.Wait()
	for _, fn := range s.onStop {
		fn(drainCtx)
	}
	s.log.Info("stopped")
}

// maxDuration gives every call but a health Watch a deadline of d. The tap
// runs before the stream exists, and its context is the stream's, which is
// what a blocked send waits on (an interceptor's derived one is not).
func maxDuration(d time.Duration) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if info.FullMethodName == healthWatch {
			return ctx, nil
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		// The stream's end cancels ctx (its parent); cancel then only
		// releases the timer.
		context.AfterFunc(ctx, cancel)
		return ctx, nil
	}
}

// loadTLS returns the server's credentials and the credentials the in-process
// gateway uses to reach it. The gateway pins the server's own certificate
// rather than verifying a name, since it dials an in-memory pipe.
func loadTLS(certFile, keyFile string) (credentials.TransportCredentials, credentials.TransportCredentials, error) {
	if certFile == "" || keyFile == "" {
		return nil, nil, errors.New("TLS needs both --tls-cert-file and --tls-key-file")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load TLS key pair: %w", err)
	}
	leaf := cert.Certificate[0]
	self := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, leaf) {
				return errors.New("in-process gateway: peer is not this server")
			}
			return nil
		},
	}
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), credentials.NewTLS(self), nil
}
