// Package app wires the memory service together: configuration, the pgx
// pool, the store, the fallback (breaker, cache, recaller), the gRPC
// handlers, health checks and metrics, on the shared server kit. The binary
// (cmd/memory) and the end-to-end tests both start the service through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/gen/openapi"
	"github.com/brainhq/brain/services/kit/config"
	"github.com/brainhq/brain/services/kit/health"
	"github.com/brainhq/brain/services/kit/server"
	"github.com/brainhq/brain/services/memory/api"
	"github.com/brainhq/brain/services/memory/fallback"
	"github.com/brainhq/brain/services/memory/pgconn"
	"github.com/brainhq/brain/services/memory/store"
)

// PostgresCheck is the health service name of the PostgreSQL probe.
const PostgresCheck = "postgres"

// Config is the memory service's configuration.
type Config struct {
	Server server.Config
	DB     pgconn.Config
	// LogLevel is the zap level.
	LogLevel string
	// MigrateOnStart applies migrations in the background at start.
	MigrateOnStart bool
	// RecallTimeout caps a recall's time in PostgreSQL.
	RecallTimeout time.Duration
	// QueryTimeout caps every other call's time in PostgreSQL.
	QueryTimeout time.Duration
	// CacheEntries, CacheBytes and CacheMaxAge bound the recall cache.
	CacheEntries int
	CacheBytes   int
	CacheMaxAge  time.Duration
	// CacheSync listens for the deletes of every replica (PostgreSQL
	// LISTEN/NOTIFY) to purge the cache; off, only this process's own
	// deletes purge it.
	CacheSync bool
	// BreakerThreshold and BreakerMinSpan: the run of failures, and the time
	// it must span, that open the breaker.
	BreakerThreshold int
	BreakerMinSpan   time.Duration
	// ProbeInterval and ProbeTimeout drive the PostgreSQL health probe.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
}

// Flags binds the configuration to flags and environment variables.
type Flags struct {
	srv                                        *server.Flags
	migrate, cacheSync                         *bool
	recallTimeout, queryTimeout, cacheAge      *time.Duration
	probeInterval, probeTimeout, breakerSpan   *time.Duration
	cacheEntries, cacheBytes, breakerThreshold *int
}

// BindFlags defines the memory service's flags.
func BindFlags(b *config.Binder) *Flags {
	return &Flags{
		srv:              server.BindFlags(b, "memory", ":9091", ":8081"),
		migrate:          b.Bool("migrate", "MIGRATE_ON_START", false, "apply database migrations at start (in the background; start-up never waits for PostgreSQL)"),
		recallTimeout:    b.Duration("recall-timeout", "RECALL_TIMEOUT", 300*time.Millisecond, "cap on a recall's time in PostgreSQL before it falls back"),
		queryTimeout:     b.Duration("query-timeout", "QUERY_TIMEOUT", 2*time.Second, "cap on any other call's time in PostgreSQL"),
		cacheEntries:     b.Int("cache-entries", "RECALL_CACHE_ENTRIES", 10000, "recent recalls kept for fallback"),
		cacheBytes:       b.Int("cache-bytes", "RECALL_CACHE_BYTES", 32<<20, "approximate memory the recall cache may hold"),
		cacheAge:         b.Duration("cache-max-age", "RECALL_CACHE_MAX_AGE", 15*time.Minute, "oldest cached recall served as a fallback"),
		cacheSync:        b.Bool("cache-sync", "RECALL_CACHE_SYNC", true, "purge the recall cache on the deletes of every replica (LISTEN/NOTIFY on one extra PostgreSQL connection)"),
		breakerThreshold: b.Int("breaker-threshold", "BREAKER_THRESHOLD", 3, "consecutive PostgreSQL failures that open the circuit breaker"),
		breakerSpan:      b.Duration("breaker-min-span", "BREAKER_MIN_SPAN", 500*time.Millisecond, "time the failures must span to open the breaker (one stall fails every call in flight at once)"),
		probeInterval:    b.Duration("probe-interval", "PROBE_INTERVAL", 500*time.Millisecond, "time between PostgreSQL health probes"),
		probeTimeout:     b.Duration("probe-timeout", "PROBE_TIMEOUT", time.Second, "timeout of one PostgreSQL health probe"),
	}
}

// Config returns the parsed configuration; db comes from the environment.
func (f *Flags) Config(db pgconn.Config) Config {
	srv := f.srv.Config()
	srv.OpenAPI = openapi.Document
	return Config{
		Server:           srv,
		DB:               db,
		LogLevel:         f.srv.LogLevel(),
		MigrateOnStart:   *f.migrate,
		RecallTimeout:    *f.recallTimeout,
		QueryTimeout:     *f.queryTimeout,
		CacheEntries:     *f.cacheEntries,
		CacheBytes:       *f.cacheBytes,
		CacheMaxAge:      *f.cacheAge,
		CacheSync:        *f.cacheSync,
		BreakerThreshold: *f.breakerThreshold,
		BreakerMinSpan:   *f.breakerSpan,
		ProbeInterval:    *f.probeInterval,
		ProbeTimeout:     *f.probeTimeout,
	}
}

// App is a configured memory service, ready to Run.
type App struct {
	cfg     Config
	log     *zap.Logger
	srv     *server.Server
	pool    *pgxpool.Pool
	probe   *prober
	breaker *fallback.Breaker
	mig     *migration
	store   *store.Store
	cache   *fallback.Cache
	metrics *metrics
}

// New builds the service. It does not contact PostgreSQL: the pool connects
// lazily, so the service answers (degraded) from its first millisecond.
func New(cfg Config, log *zap.Logger) (*App, error) {
	poolCfg, err := cfg.DB.PoolConfig()
	if err != nil {
		return nil, fmt.Errorf("database config: %w", err)
	}
	prb := newProber(poolCfg.ConnConfig.Copy())
	// The tracer tells the guard when a call's time ran out waiting for a
	// busy pool: overload, which must not open the breaker.
	poolCfg.ConnConfig.Tracer = fallback.PoolTracer{}
	pool, err := pgxpool.NewWithConfig(context.Background(), poolCfg)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	srv, err := server.New(cfg.Server, log, memoryv1.MemoryService_ServiceDesc.ServiceName)
	if err != nil {
		pool.Close()
		return nil, err
	}
	st := store.New(pool)
	mig := &migration{}
	gated := gatedStore{Store: st, m: mig}
	m := newMetrics(srv.Metrics(), pool)

	breaker := fallback.NewBreaker(cfg.BreakerThreshold, cfg.BreakerMinSpan, time.Now, func(open bool) {
		m.breakerOpen.Set(b2f(open))
		if open {
			log.Warn("postgres circuit breaker", zap.Bool("open", open))
		} else {
			log.Info("postgres circuit breaker", zap.Bool("open", open)) // recovery is good news
		}
	})
	guard := fallback.NewGuard(breaker)
	cache := fallback.NewCache(cfg.CacheEntries, cfg.CacheBytes, cfg.CacheMaxAge, time.Now)
	if cfg.CacheSync {
		cache.Suspend() // until the deletes of other replicas can be heard
	}
	recaller := fallback.NewRecaller(guard, gated, cache, cfg.RecallTimeout, time.Now, func(s fallback.Source) {
		m.recalls.WithLabelValues(s.String()).Inc()
	})

	reg := srv.Health()
	if err := reg.Add(health.Check{Name: PostgresCheck, Probe: probe(prb, mig), Interval: cfg.ProbeInterval, Timeout: cfg.ProbeTimeout}); err != nil {
		pool.Close()
		return nil, err
	}
	// The probe is the breaker's trial call: every passing probe closes the
	// breaker (so calls that timed out during a CPU stall cannot keep it open
	// while PostgreSQL is healthy), and a failing one opens it at once.
	//
	// The probe does not go through the pool, so it does not weed out the
	// pool's connections that died with PostgreSQL: when PostgreSQL answers
	// again after failing, the pool drops them all (in-use ones on release)
	// before the breaker lets calls through, or the first calls after a
	// restart would fail on dead connections. Results come from one
	// goroutine, in order.
	// A schema still being migrated is PostgreSQL answering, not failing.
	failing := false
	reg.OnResult(func(name string, err error) {
		if name != PostgresCheck {
			return
		}
		if err == nil || errors.Is(err, store.ErrMigrating) {
			if failing {
				pool.Reset()
				failing = false
			}
			breaker.Reset()
			return
		}
		failing = true
		breaker.Trip("health probe: " + err.Error())
	})

	handlers := api.New(api.Deps{
		Store:        gated,
		Recaller:     recaller,
		Guard:        guard,
		Cache:        cache,
		Pool:         func() *memoryv1.PoolStats { return poolStats(pool) },
		Log:          log,
		Now:          time.Now,
		QueryTimeout: cfg.QueryTimeout,
		// A delete's statement ends on the server within the statement
		// timeout of its start, so none can commit later than that after
		// its call failed.
		DeleteHold: orDefault(cfg.DB.StatementTimeout, pgconn.DefaultStatementTimeout),
		OutcomeUnknown: func() {
			m.outcomeUnknown.Inc()
		},
	})
	memoryv1.RegisterMemoryServiceServer(srv.GRPC(), handlers)
	srv.RegisterGateway(func(ctx context.Context, mux *runtime.ServeMux, self *grpc.ClientConn) error {
		return memoryv1.RegisterMemoryServiceHandler(ctx, mux, self)
	})
	return &App{cfg: cfg, log: log, srv: srv, pool: pool, probe: prb, breaker: breaker, mig: mig, store: st, cache: cache, metrics: m}, nil
}

// Server is the underlying server (for addresses in tests).
func (a *App) Server() *server.Server { return a.srv }

// Run serves until ctx ends, then stops gracefully and closes the pool.
func (a *App) Run(ctx context.Context) error {
	defer a.closePool()
	defer a.probe.Close() // the probes have ended when the server has
	var wg sync.WaitGroup
	defer wg.Wait()
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.cfg.MigrateOnStart {
		a.mig.running.Store(true) // before the first probe can run
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.migrateUntilDone(mctx)
		}()
	}
	if a.cfg.CacheSync {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.listenPurges(mctx)
		}()
	}
	return a.srv.Run(ctx)
}

// listenIdle is how long the purge listener waits for a notification before
// it checks its connection.
const listenIdle = 10 * time.Second

// listenPurges purges the cache on every replica's deletes until ctx ends.
// While it cannot listen, the cache stores nothing; each time it listens
// again, the cache is emptied, since deletes may have gone unheard.
func (a *App) listenPurges(ctx context.Context) {
	a.store.ListenPurges(ctx, store.Listener{
		Listening: func(ok bool, err error) {
			if !ok {
				a.cache.Suspend()
				a.metrics.cacheSync.Set(0)
				a.log.Warn("recall cache: not hearing deletes; storing nothing until listening again", zap.Error(err))
				return
			}
			n := a.cache.Resume()
			a.metrics.cacheSync.Set(1)
			a.log.Info("recall cache: listening for deletes", zap.Int("dropped_answers", n))
		},
		Purge: func(p store.Purge) {
			switch {
			case p.Namespace == "":
				a.cache.PurgeAll()
			case p.ID == "":
				a.cache.PurgeNamespace(p.Namespace, 0)
			default:
				a.cache.PurgeEpisode(p.Namespace, p.ID, 0)
			}
		},
		Retry: a.cfg.ProbeInterval, Idle: listenIdle, Timeout: a.cfg.ProbeTimeout,
	})
}

// closePool closes the pool, but waits at most a second: when PostgreSQL
// silently drops packets, pgx's cancel requests for timed-out queries hang
// and an unbounded Close would hold the process past its drain period (and
// into Kubernetes' SIGKILL). The process is exiting; what is left is the
// kernel's to clean up.
func (a *App) closePool() {
	done := make(chan struct{})
	go func() {
		a.pool.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		a.log.Warn("closing PostgreSQL connections took over 1s; exiting without waiting")
	}
}

// migrateUntilDone applies migrations, retrying while PostgreSQL is away;
// the postgres check reports NOT_SERVING (schema version) until it succeeds.
func (a *App) migrateUntilDone(ctx context.Context) {
	for attempt := 1; ; attempt++ {
		err := a.migrateOnce(ctx)
		if err == nil {
			a.mig.running.Store(false)
			a.log.Info("migrations applied", zap.Int64("schema_version", store.SchemaVersion))
			return
		}
		a.log.Warn("migrations not applied yet; retrying", zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (a *App) migrateOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := a.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	return store.Migrate(ctx, conn.Conn())
}

// Migrate connects once and applies the migrations (`memory migrate`).
func Migrate(ctx context.Context, db pgconn.Config) error {
	poolCfg, err := db.PoolConfig()
	if err != nil {
		return fmt.Errorf("database config: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, poolCfg.ConnConfig)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", db.Redacted(), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return store.Migrate(ctx, conn)
}

type metrics struct {
	recalls        *prometheus.CounterVec
	breakerOpen    prometheus.Gauge
	cacheSync      prometheus.Gauge
	outcomeUnknown prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, pool *pgxpool.Pool) *metrics {
	m := &metrics{
		recalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brain_memory_recall_total", Help: "Recall answers by source (postgres, cache, none).",
		}, []string{"source"}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "brain_memory_breaker_open", Help: "1 while the PostgreSQL circuit breaker is open.",
		}),
		cacheSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "brain_memory_recall_cache_sync", Help: "1 while the recall cache hears the deletes of every replica (RECALL_CACHE_SYNC).",
		}),
		outcomeUnknown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "brain_memory_write_outcome_unknown_total",
			Help: "Writes whose COMMIT was sent but never confirmed (deadline or connection lost): they may or may not be stored.",
		}),
	}
	for _, s := range []fallback.Source{fallback.SourcePostgres, fallback.SourceCache, fallback.SourceNone} {
		m.recalls.WithLabelValues(s.String())
	}
	reg.MustRegister(m.recalls, m.breakerOpen, m.cacheSync, m.outcomeUnknown, poolCollector{pool: pool})
	return m
}

func orDefault(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func poolStats(p *pgxpool.Pool) *memoryv1.PoolStats {
	s := p.Stat()
	return &memoryv1.PoolStats{
		TotalConns:        s.TotalConns(),
		AcquiredConns:     s.AcquiredConns(),
		IdleConns:         s.IdleConns(),
		MaxConns:          s.MaxConns(),
		EmptyAcquireCount: s.EmptyAcquireCount(),
	}
}

var (
	poolTotalDesc    = prometheus.NewDesc("brain_memory_pool_total_conns", "Open connections in the pgx pool.", nil, nil)
	poolAcquiredDesc = prometheus.NewDesc("brain_memory_pool_acquired_conns", "Connections in use.", nil, nil)
	poolIdleDesc     = prometheus.NewDesc("brain_memory_pool_idle_conns", "Idle connections.", nil, nil)
	poolMaxDesc      = prometheus.NewDesc("brain_memory_pool_max_conns", "Configured maximum connections.", nil, nil)
	poolEmptyDesc    = prometheus.NewDesc("brain_memory_pool_empty_acquire_total", "Acquires that waited for a connection.", nil, nil)
)

// poolCollector reads the pool's counters at scrape time.
type poolCollector struct{ pool *pgxpool.Pool }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolTotalDesc, poolAcquiredDesc, poolIdleDesc, poolMaxDesc, poolEmptyDesc} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(poolTotalDesc, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquiredDesc, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(poolIdleDesc, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolEmptyDesc, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
}
