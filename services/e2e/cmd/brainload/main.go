// Command brainload is `make load`: it drives a running Brain stack on this
// machine with Recall, Orchestrate and WriteEpisodes traffic at a fixed
// concurrency for a fixed time per phase, and prints, as markdown, p50 /
// p95 / p99 / max latency, throughput, errors and degraded answers per
// phase, the ratios docs/design.md budgets (gRPC vs the same SQL through pgx,
// JSON vs gRPC), each service's resident memory idle and at peak, and a
// table of every budget with the measured figure and whether it is met.
//
// Phases, in order (--phases picks some):
//
//	sql           the exact statement store.Recall runs (store.RecallStatement), straight through pgx
//	grpc          MemoryService/Recall over gRPC
//	json          POST /v1/memory/episodes:recall on memory's HTTP port, then on the orchestrator's
//	orchestrate   OrchestratorService/Orchestrate: full stream, first LAB result, both beyond LAB_011's recall
//	mixed         --mix of recall / orchestrate / write
//	startup       spawns bin/memory and bin/orchestrator: process start → SERVING, Postgres up and unreachable
//	dead-postgres spawns a memory whose Postgres is a closed port; Recall with its breaker open
//	outage        spawns a memory (and orchestrator) behind a fault proxy to Postgres: readiness change
//	              when Postgres stops and returns, and Recall/Orchestrate while packets are silently dropped
//
// It talks to loopback addresses only, every phase stops after --duration or
// --max-requests calls, and processes it spawns die with it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/memory/corpus"
	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/pgconn"
)

var allPhases = []string{"sql", "grpc", "json", "orchestrate", "mixed", "startup", "dead-postgres", "outage"}

type options struct {
	memoryGRPC, memoryHTTP, frontHTTP, orchGRPC string
	databaseURL                                 string
	run                                         runConfig
	mix                                         string
	namespaces                                  int
	seed                                        uint64
	queries, limit                              int
	loadCorpus                                  int
	memoryPID, orchPID                          int
	rssInterval                                 time.Duration
	phases                                      map[string]bool
	memoryBin, orchBin                          string
	rounds                                      int
	dropDuration                                time.Duration
	logDir                                      string
	outFile                                     string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "brainload:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var phases string
	fs := flag.NewFlagSet("brainload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.memoryGRPC, "memory-grpc", "127.0.0.1:9091", "memory gRPC address")
	fs.StringVar(&o.memoryHTTP, "memory-http", "127.0.0.1:8081", "memory HTTP address (JSON row); empty: skip")
	fs.StringVar(&o.frontHTTP, "http", "127.0.0.1:8080", "orchestrator HTTP address, which proxies memory's JSON routes (JSON row); empty: skip")
	fs.StringVar(&o.orchGRPC, "orchestrator-grpc", "127.0.0.1:9090", "orchestrator gRPC address; empty: skip Orchestrate")
	fs.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL for the raw SQL row and the spawned services; default: $DATABASE_URL, else the POSTGRES_* variables and POSTGRES_PASSWORD_FILE (as memory reads them)")
	fs.IntVar(&o.run.concurrency, "concurrency", 8, "concurrent callers in every phase")
	fs.DurationVar(&o.run.duration, "duration", 10*time.Second, "measured time per phase")
	fs.DurationVar(&o.run.warmup, "warmup", time.Second, "unmeasured warm-up per phase")
	fs.IntVar(&o.run.maxRequests, "max-requests", 1_000_000, "stop a phase after this many calls")
	fs.DurationVar(&o.run.callTimeout, "call-timeout", 2*time.Second, "deadline of each call")
	fs.StringVar(&o.mix, "mix", "recall=70,orchestrate=20,write=10", "weights of the mixed phase")
	fs.IntVar(&o.namespaces, "namespaces", 20, "namespaces of the corpus")
	fs.Uint64Var(&o.seed, "seed", corpus.DefaultConfig().Seed, "corpus seed (episodes, queries and the mix)")
	fs.IntVar(&o.queries, "queries", 10000, "distinct corpus queries cycled through")
	fs.IntVar(&o.limit, "limit", episode.DefaultLimit, "recall limit")
	fs.IntVar(&o.loadCorpus, "load-corpus", 0, "first make sure corpus episodes 0..N-1 are stored (written through WriteEpisodes)")
	fs.IntVar(&o.memoryPID, "memory-pid", 0, "pid of memory for RSS; 0: the process listening on --memory-grpc")
	fs.IntVar(&o.orchPID, "orchestrator-pid", 0, "pid of the orchestrator for RSS; 0: the process listening on --orchestrator-grpc")
	fs.DurationVar(&o.rssInterval, "rss-interval", 100*time.Millisecond, "VmRSS sampling interval")
	fs.StringVar(&phases, "phases", strings.Join(allPhases, ","), "phases to run: "+strings.Join(allPhases, ","))
	fs.StringVar(&o.memoryBin, "memory-bin", "bin/memory", "memory binary for startup, dead-postgres and outage")
	fs.StringVar(&o.orchBin, "orchestrator-bin", "bin/orchestrator", "orchestrator binary for startup and outage; empty: memory only")
	fs.IntVar(&o.rounds, "rounds", 3, "repetitions of each start-up and outage measurement")
	fs.DurationVar(&o.dropDuration, "drop-duration", 2*time.Second, "time each silent-drop phase runs")
	fs.StringVar(&o.logDir, "log-dir", "", "logs of spawned services (and their password file); default: a temporary directory, removed")
	fs.StringVar(&o.outFile, "out", "", "also write the report to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.phases = map[string]bool{}
	for p := range strings.SplitSeq(phases, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(allPhases, p) {
			return o, fmt.Errorf("--phases: unknown phase %q (%s)", p, strings.Join(allPhases, ","))
		}
		o.phases[p] = true
	}
	switch {
	case o.run.concurrency < 1 || o.run.duration <= 0 || o.run.warmup < 0 || o.run.maxRequests < 1 || o.run.callTimeout <= 0:
		return o, errors.New("--concurrency, --duration, --max-requests and --call-timeout must be positive")
	case o.namespaces < 1 || o.queries < 1 || o.loadCorpus < 0 || o.rounds < 1 || o.dropDuration <= 0 || o.rssInterval <= 0:
		return o, errors.New("--namespaces, --queries, --rounds, --drop-duration, --rss-interval must be positive, --load-corpus ≥ 0")
	case o.limit < 1 || o.limit > episode.MaxLimit:
		return o, fmt.Errorf("--limit must be 1..%d", episode.MaxLimit)
	case o.memoryGRPC == "":
		return o, errors.New("--memory-grpc is required")
	}
	for _, a := range []string{o.memoryGRPC, o.memoryHTTP, o.frontHTTP, o.orchGRPC} {
		if a == "" {
			continue
		}
		if err := checkLoopback(a); err != nil {
			return o, err
		}
	}
	return o, nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("%q is not a loopback address: brainload only loads this machine", addr)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// dbConfig is the pool configuration, from --database-url or the
// environment memory itself reads; nil when none is given.
func dbConfig(o options, getenv func(string) string) (*pgxpool.Config, error) {
	var cfg *pgxpool.Config
	var err error
	switch {
	case o.databaseURL != "":
		cfg, err = pgxpool.ParseConfig(o.databaseURL)
	case getenv("DATABASE_URL") != "" || getenv("POSTGRES_PASSWORD_FILE") != "" || getenv("POSTGRES_HOST") != "":
		var c pgconn.Config
		if c, err = pgconn.FromEnv(getenv); err == nil {
			cfg, err = c.PoolConfig()
		}
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("database settings: %w", err)
	}
	hosts := []string{cfg.ConnConfig.Host}
	for _, fb := range cfg.ConnConfig.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, h := range hosts {
		if !strings.HasPrefix(h, "/") && !isLoopback(h) {
			return nil, fmt.Errorf("database host %q is not a loopback address or socket: brainload only loads this machine", h)
		}
	}
	return cfg, nil
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s brainload: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	proc := procFS{root: "/proc"}
	res := &results{idle: map[string]int64{}, loadPhases: map[string]bool{}}

	// Resident memory: find the services, read them idle, then sample.
	pids := map[string]int{}
	for _, s := range []struct {
		name, addr string
		pid        int
	}{{"memory", o.memoryGRPC, o.memoryPID}, {"orchestrator", o.orchGRPC, o.orchPID}} {
		pid := s.pid
		if pid == 0 && s.addr != "" {
			if pid, err = proc.pidListeningOn(s.addr); err != nil {
				logf("no RSS for %s: %v", s.name, err)
				continue
			}
		}
		if pid != 0 {
			pids[s.name] = pid
			res.services = append(res.services, s.name)
		}
	}
	var stopSampler func()
	if len(pids) > 0 {
		res.rss = newSampler(proc, pids, o.rssInterval)
		res.rss.sampleOnce()
		for name := range pids {
			if kb, ok := res.rss.peak(name, time.Time{}, time.Now()); ok {
				res.idle[name] = kb
			}
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); res.rss.run(sctx) }()
		stopSampler = func() { cancel(); <-done }
		defer stopSampler()
	}
	loadStart := loadavg(proc)

	cc := corpus.DefaultConfig()
	cc.Seed, cc.Namespaces = o.seed, o.namespaces
	c, err := corpus.New(cc)
	if err != nil {
		return err
	}
	w := &workload{corpus: c, queries: o.queries, limit: o.limit, asOf: cc.Epoch, writeBase: max(o.loadCorpus, 100_000)}

	memConn, err := grpc.NewClient(o.memoryGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("memory %s: %w", o.memoryGRPC, err)
	}
	defer memConn.Close()
	w.memory = memoryv1.NewMemoryServiceClient(memConn)
	if o.orchGRPC != "" {
		orchConn, err := grpc.NewClient(o.orchGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("orchestrator %s: %w", o.orchGRPC, err)
		}
		defer orchConn.Close()
		w.orch = orchestratorv1.NewOrchestratorServiceClient(orchConn)
	}
	transport := &http.Transport{MaxIdleConns: 2 * o.run.concurrency, MaxIdleConnsPerHost: o.run.concurrency, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	w.http = &http.Client{Transport: transport}

	poolCfg, err := dbConfig(o, os.Getenv)
	if err != nil {
		return err
	}
	if poolCfg != nil {
		poolCfg.MaxConns, poolCfg.MinConns = int32(o.run.concurrency), 1
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		w.pool, err = pgxpool.NewWithConfig(pctx, poolCfg)
		if err == nil {
			err = w.pool.Ping(pctx)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("connect to PostgreSQL: %w", err)
		}
		defer w.pool.Close()
	} else {
		logf("no database settings (--database-url, DATABASE_URL or POSTGRES_*): no raw SQL row, no startup/outage phases")
	}

	if o.loadCorpus > 0 {
		start := time.Now()
		if err := loadCorpus(ctx, w.memory, w.pool, c, o.loadCorpus, stderr); err != nil {
			return err
		}
		res.phases = append(res.phases, phase{name: phCorpusLoad, start: start, end: time.Now()})
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	stats, err := w.memory.GetStats(sctx, &memoryv1.GetStatsRequest{})
	cancel()
	if err != nil {
		return fmt.Errorf("memory GetStats: %w", err)
	}

	measure := func(key, name string, call callFunc) {
		if !o.phases[key] || ctx.Err() != nil {
			return
		}
		logf("phase %s: concurrency %d, %s after %s warm-up", name, o.run.concurrency, o.run.duration, o.run.warmup)
		res.phases = append(res.phases, run(ctx, name, o.run, call))
		res.loadPhases[name] = true
		if ctx.Err() != nil {
			return // interrupted: report what there is
		}
		// An open breaker turns every later phase into a measurement of the
		// fallback; say so where the numbers are read.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := w.memory.GetStats(sctx, &memoryv1.GetStatsRequest{})
		cancel()
		switch {
		case err != nil:
			res.notes = append(res.notes, fmt.Sprintf("memory GetStats after phase %s: %v", name, err))
		case st.GetBreaker() == memoryv1.BreakerState_BREAKER_STATE_OPEN:
			n := fmt.Sprintf("memory's circuit breaker was open at the end of phase %s (postgres_available %v)", name, st.GetPostgresAvailable())
			logf("%s", n)
			res.notes = append(res.notes, n)
		}
	}
	if w.pool != nil {
		measure("sql", phSQL, w.sqlRecall)
	}
	measure("grpc", phGRPC, w.grpcRecall)
	if o.memoryHTTP != "" {
		measure("json", phJSONMemory, w.jsonRecall(kindJSONMemory, "http://"+o.memoryHTTP))
	}
	if o.frontHTTP != "" {
		measure("json", phJSONFront, w.jsonRecall(kindJSONFront, "http://"+o.frontHTTP))
	}
	mix, err := parseMix(o.mix)
	if err != nil {
		return err
	}
	if w.orch != nil {
		measure("orchestrate", phOrch, w.orchestrate)
	} else if slices.ContainsFunc(mix, func(s share) bool { return s.kind == "orchestrate" }) {
		return errors.New("--mix has orchestrate but --orchestrator-grpc is empty")
	}
	measure("mixed", phMixed, w.mixed(mix, o.seed))
	if stopSampler != nil {
		stopSampler()
	}
	loadAfterLoad := loadavg(proc)
	// Interrupted or not, what was measured gets reported: these stats
	// use their own short deadline and are optional.
	sctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	after, err := w.memory.GetStats(sctx, &memoryv1.GetStatsRequest{})
	cancel()
	if err != nil {
		res.notes = append(res.notes, fmt.Sprintf("memory GetStats after the load phases: %v", err))
	}

	if err := runFaults(ctx, o, poolCfg, w, res, logf); err != nil {
		return err
	}

	res.header = header(o, stats, after, loadStart, loadAfterLoad, loadavg(proc), pids)
	res.write(stdout)
	if o.outFile != "" {
		f, err := os.Create(o.outFile)
		if err != nil {
			return err
		}
		res.write(f)
		if err := f.Close(); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// runFaults runs the phases that spawn their own services.
func runFaults(ctx context.Context, o options, poolCfg *pgxpool.Config, w *workload, res *results, logf func(string, ...any)) error {
	want := o.phases["startup"] || o.phases["dead-postgres"] || o.phases["outage"]
	if !want || ctx.Err() != nil {
		return nil
	}
	if o.memoryBin == "" {
		logf("no --memory-bin: no startup, dead-postgres or outage phases")
		return nil
	}
	logDir := o.logDir
	if logDir == "" {
		d, err := os.MkdirTemp("", "brainload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		logDir = d
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	f := &faults{memoryBin: o.memoryBin, orchBin: o.orchBin, logDir: logDir, rounds: o.rounds,
		load: o.run, dropDuration: o.dropDuration, w: w, log: logf}
	if poolCfg != nil {
		env, err := childDBEnv(poolCfg.ConnConfig, logDir)
		if err != nil {
			return err
		}
		f.pgEnv = env
		f.pgAddr = net.JoinHostPort(poolCfg.ConnConfig.Host, strconv.Itoa(int(poolCfg.ConnConfig.Port)))
	} else {
		// Without a database only the unreachable cases can run.
		f.pgEnv = func(hostPort string) []string { return splitEnv(hostPort, "brain", "brain", "") }
	}
	if o.phases["startup"] && poolCfg != nil {
		logf("phase startup: %d rounds of process start → SERVING, Postgres up and unreachable (logs in %s)", o.rounds, logDir)
		if err := f.startup(ctx, &res.times); err != nil {
			return fmt.Errorf("startup: %w", err)
		}
	}
	if o.phases["dead-postgres"] {
		logf("phase dead-postgres: concurrency %d, %s, against a memory whose Postgres is a closed port", o.run.concurrency, o.run.duration)
		p, err := f.deadPostgres(ctx)
		if err != nil {
			return fmt.Errorf("dead-postgres: %w", err)
		}
		res.phases = append(res.phases, p)
	}
	if o.phases["outage"] && poolCfg != nil {
		logf("phase outage: %d rounds of Postgres stop/return, then silent packet drop", o.rounds)
		ps, err := f.outage(ctx, &res.times)
		if err != nil {
			return fmt.Errorf("outage: %w", err)
		}
		res.phases = append(res.phases, ps...)
	}
	return nil
}

// childDBEnv returns the database environment of a spawned memory: the
// split POSTGRES_* form, pointed at any host:port, with the password in a
// 0600 file (memory refuses a plain password variable).
func childDBEnv(cc *pgx.ConnConfig, dir string) (func(string) []string, error) {
	pwFile := ""
	if cc.Password != "" {
		pwFile = filepath.Join(dir, "pgpassword")
		if err := os.WriteFile(pwFile, []byte(cc.Password), 0o600); err != nil {
			return nil, fmt.Errorf("password file for spawned services: %w", err)
		}
	}
	return func(hostPort string) []string { return splitEnv(hostPort, cc.User, cc.Database, pwFile) }, nil
}

func splitEnv(hostPort, user, db, pwFile string) []string {
	host, port, _ := net.SplitHostPort(hostPort)
	env := []string{"POSTGRES_HOST=" + host, "POSTGRES_PORT=" + port, "POSTGRES_USER=" + user, "POSTGRES_DB=" + db, "POSTGRES_SSLMODE=disable"}
	if pwFile != "" {
		env = append(env, "POSTGRES_PASSWORD_FILE="+pwFile)
	}
	return env
}

func header(o options, st, after *memoryv1.GetStatsResponse, loadStart, loadMid, loadEnd string, pids map[string]int) []string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimLeft(v, " \t:"))
				break
			}
		}
	}
	var pidText []string
	for _, s := range []string{"memory", "orchestrator"} {
		if p, ok := pids[s]; ok {
			pidText = append(pidText, fmt.Sprintf("%s pid %d", s, p))
		}
	}
	return []string{
		fmt.Sprintf("## brainload %s", time.Now().UTC().Format(time.RFC3339)),
		"",
		fmt.Sprintf("- machine: %d CPUs (%s), %s/%s, %s", runtime.NumCPU(), cpu, runtime.GOOS, runtime.GOARCH, runtime.Version()),
		fmt.Sprintf("- load average (1/5/15 min): %s at start, %s after the load phases, %s at the end", loadStart, loadMid, loadEnd),
		fmt.Sprintf("- store: %d episodes in %d namespaces (schema %d); corpus seed %d, %d distinct queries, limit %d",
			st.GetEpisodeCount(), st.GetNamespaceCount(), st.GetSchemaVersion(), o.seed, o.queries, o.limit),
		fmt.Sprintf("- memory after the load phases: %d episodes, recall cache %d entries, pool %d/%d connections, breaker %s",
			after.GetEpisodeCount(), after.GetCacheEntries(), after.GetPool().GetTotalConns(), after.GetPool().GetMaxConns(), after.GetBreaker()),
		fmt.Sprintf("- load: concurrency %d, %s measured after %s warm-up per phase, at most %d calls, %s deadline per call; mix %s",
			o.run.concurrency, o.run.duration, o.run.warmup, o.run.maxRequests, o.run.callTimeout, o.mix),
		fmt.Sprintf("- targets: memory %s (HTTP %s), orchestrator %s (HTTP %s); %s", o.memoryGRPC, o.memoryHTTP, o.orchGRPC, o.frontHTTP, strings.Join(pidText, ", ")),
	}
}
