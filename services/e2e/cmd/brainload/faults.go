package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/e2e/internal/stack"
)

// Names of the start-up and readiness measurements.
const (
	tStartMemoryUp        = "memory start → SERVING (Postgres up)"
	tStartMemoryPgUp      = "memory start → \"postgres\" SERVING (Postgres up)"
	tStartOrchUp          = "orchestrator start → SERVING (memory up)"
	tStartOrchPgUp        = "orchestrator start → \"memory/postgres\" SERVING"
	tStartMemoryDead      = "memory start → health answering, SERVING (Postgres unreachable)"
	tStartMemoryDeadPg    = "memory start → \"postgres\" NOT_SERVING (Postgres unreachable)"
	tStartOrchDead        = "orchestrator start → SERVING (memory's Postgres unreachable)"
	tReadyDownMemory      = "Postgres stops → memory \"postgres\" NOT_SERVING"
	tReadyDownOrch        = "Postgres stops → orchestrator \"memory/postgres\" NOT_SERVING"
	tReadyUpMemory        = "Postgres returns → memory \"postgres\" SERVING"
	tReadyUpOrch          = "Postgres returns → orchestrator \"memory/postgres\" SERVING"
	tReadyDropMemory      = "packets silently dropped → memory \"postgres\" NOT_SERVING"
	tReadyHealMemory      = "packets flow again → memory \"postgres\" SERVING"
	kindDead              = "Recall, gRPC, Postgres unreachable and breaker open"
	kindDropRecall        = "Recall, gRPC, 300 ms deadline, Postgres silently dropping packets"
	kindDropOrchestrate   = "Orchestrate, gRPC, default budget, Postgres silently dropping packets"
	healthMemoryService   = "brain.memory.v1.MemoryService"
	healthOrchestratorSvc = "brain.orchestrator.v1.OrchestratorService"
)

// timings collects named durations in first-seen order.
type timings struct {
	order []string
	m     map[string][]time.Duration
}

func (t *timings) add(name string, d time.Duration) {
	if t.m == nil {
		t.m = map[string][]time.Duration{}
	}
	if _, ok := t.m[name]; !ok {
		t.order = append(t.order, name)
	}
	t.m[name] = append(t.m[name], d)
}

func (t *timings) rows() []row {
	var rs []row
	for _, n := range t.order {
		l := slices.Clone(t.m[n])
		slices.Sort(l)
		rs = append(rs, row{name: n, latencies: l, derived: true})
	}
	return rs
}

func (t *timings) get(name string) (row, bool) {
	l, ok := t.m[name]
	if !ok {
		return row{}, false
	}
	l = slices.Clone(l)
	slices.Sort(l)
	return row{name: name, latencies: l, derived: true}, true
}

// faults spawns its own memory (and orchestrator) processes from the built
// binaries, on free loopback ports, to measure start-up, the breaker-open
// answer, readiness changes and the silent-drop answer without touching the
// stack under load.
type faults struct {
	memoryBin, orchBin string
	logDir             string
	pgAddr             string                         // the real PostgreSQL, host:port
	pgEnv              func(hostPort string) []string // a child's database settings
	rounds             int
	load               runConfig // for the breaker-open phase
	dropDuration       time.Duration
	w                  *workload // the request shapes
	log                func(format string, args ...any)
}

// svc is a spawned service and a health client on it.
type svc struct {
	*service
	grpcAddr string
	conn     *grpc.ClientConn
	health   healthpb.HealthClient
}

func (s *svc) close() {
	s.stop()
	_ = s.conn.Close()
}

func (f *faults) start(bin, name string, env []string) (*svc, error) {
	grpcAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	conn, err := dialFast(grpcAddr)
	if err != nil {
		return nil, err
	}
	c, err := spawnChild(bin, name, f.logDir, append([]string{"GRPC_ADDR=" + grpcAddr, "HTTP_ADDR=" + httpAddr, "LOG_LEVEL=warn"}, env...))
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &svc{service: c, grpcAddr: grpcAddr, conn: conn, health: healthpb.NewHealthClient(conn)}, nil
}

func (f *faults) startMemory(name, pgHostPort string) (*svc, error) {
	return f.start(f.memoryBin, name, f.pgEnv(pgHostPort))
}

func (f *faults) startOrchestrator(name, memoryAddr string) (*svc, error) {
	return f.start(f.orchBin, name, []string{"MEMORY_ADDR=" + memoryAddr})
}

// wait records the time from the process start to want.
func (f *faults) waitFromStart(ctx context.Context, t *timings, name string, s *svc, service string, want healthpb.HealthCheckResponse_ServingStatus) error {
	d, err := waitStatus(ctx, s.health, service, want, s.started, 10*time.Second, s.service)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	t.add(name, d)
	return nil
}

// startup measures process start to SERVING, rounds times, with PostgreSQL
// up and with it unreachable (a closed loopback port).
func (f *faults) startup(ctx context.Context, t *timings) error {
	for r := range f.rounds {
		if err := f.startupRound(ctx, t, r, f.pgAddr, false); err != nil {
			return err
		}
		closed, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		if err := f.startupRound(ctx, t, r, closed, true); err != nil {
			return err
		}
	}
	return nil
}

func (f *faults) startupRound(ctx context.Context, t *timings, r int, pgHostPort string, dead bool) error {
	kind := "up"
	if dead {
		kind = "dead"
	}
	mem, err := f.startMemory(fmt.Sprintf("startup-%s-%d-memory", kind, r), pgHostPort)
	if err != nil {
		return err
	}
	defer mem.close()
	if dead {
		if err := f.waitFromStart(ctx, t, tStartMemoryDead, mem, healthMemoryService, healthpb.HealthCheckResponse_SERVING); err != nil {
			return err
		}
		if err := f.waitFromStart(ctx, t, tStartMemoryDeadPg, mem, "postgres", healthpb.HealthCheckResponse_NOT_SERVING); err != nil {
			return err
		}
	} else {
		if err := f.waitFromStart(ctx, t, tStartMemoryUp, mem, healthMemoryService, healthpb.HealthCheckResponse_SERVING); err != nil {
			return err
		}
		if err := f.waitFromStart(ctx, t, tStartMemoryPgUp, mem, "postgres", healthpb.HealthCheckResponse_SERVING); err != nil {
			return err
		}
	}
	if f.orchBin == "" {
		return nil
	}
	orch, err := f.startOrchestrator(fmt.Sprintf("startup-%s-%d-orchestrator", kind, r), mem.grpcAddr)
	if err != nil {
		return err
	}
	defer orch.close()
	if dead {
		return f.waitFromStart(ctx, t, tStartOrchDead, orch, healthOrchestratorSvc, healthpb.HealthCheckResponse_SERVING)
	}
	if err := f.waitFromStart(ctx, t, tStartOrchUp, orch, healthOrchestratorSvc, healthpb.HealthCheckResponse_SERVING); err != nil {
		return err
	}
	return f.waitFromStart(ctx, t, tStartOrchPgUp, orch, "memory/postgres", healthpb.HealthCheckResponse_SERVING)
}

// deadPostgres measures Recall against a memory whose PostgreSQL is a
// closed port, once its breaker is open: every answer must be degraded.
func (f *faults) deadPostgres(ctx context.Context) (phase, error) {
	closed, err := freeLoopbackAddr()
	if err != nil {
		return phase{}, err
	}
	mem, err := f.startMemory("dead-postgres-memory", closed)
	if err != nil {
		return phase{}, err
	}
	defer mem.close()
	if _, err := waitStatus(ctx, mem.health, healthMemoryService, healthpb.HealthCheckResponse_SERVING, mem.started, 10*time.Second, mem.service); err != nil {
		return phase{}, err
	}
	client := memoryv1.NewMemoryServiceClient(mem.conn)
	if err := waitBreaker(ctx, client, f.w, memoryv1.BreakerState_BREAKER_STATE_OPEN); err != nil {
		return phase{}, err
	}
	call := func(ctx context.Context, i int) (outcome, error) {
		out := outcome{kind: kindDead}
		resp, err := client.Recall(ctx, f.w.recallRequest(i))
		if err != nil {
			return out, err
		}
		checkRecall(&out, resp)
		if !resp.GetDegraded() || resp.GetSource() == memoryv1.RecallSource_RECALL_SOURCE_POSTGRES {
			return out, fmt.Errorf("answer not flagged degraded: source %s", resp.GetSource())
		}
		return out, nil
	}
	p := run(ctx, "Postgres dead (breaker open)", f.load, call)
	st, err := client.GetStats(ctx, &memoryv1.GetStatsRequest{})
	if err != nil {
		return p, fmt.Errorf("stats after the dead-postgres phase: %w", err)
	}
	if st.GetBreaker() != memoryv1.BreakerState_BREAKER_STATE_OPEN {
		return p, fmt.Errorf("breaker %s after the dead-postgres phase, want OPEN", st.GetBreaker())
	}
	return p, nil
}

// waitBreaker sends recalls (which trip the breaker when PostgreSQL is
// gone) until GetStats reports want, for at most 10 s.
func waitBreaker(ctx context.Context, client memoryv1.MemoryServiceClient, w *workload, want memoryv1.BreakerState) error {
	deadline := time.Now().Add(10 * time.Second)
	var last memoryv1.BreakerState
	for i := 0; time.Now().Before(deadline); i++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _ = client.Recall(cctx, w.recallRequest(i))
		st, err := client.GetStats(cctx, &memoryv1.GetStatsRequest{})
		cancel()
		if err == nil && st.GetBreaker() == want {
			return nil
		}
		last = st.GetBreaker()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("breaker is %s, not %s, after 10 s", last, want)
}

// probe is one health service to watch for a change.
type probe struct {
	name    string
	s       *svc
	service string
}

// waitAll watches every probe concurrently from `from` until each reports
// want, and records each one's time.
func waitAll(ctx context.Context, t *timings, from time.Time, want healthpb.HealthCheckResponse_ServingStatus, probes ...probe) error {
	type res struct {
		name string
		d    time.Duration
		err  error
	}
	out := make([]res, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			d, err := waitStatus(ctx, p.s.health, p.service, want, from, 10*time.Second, p.s.service)
			out[i] = res{p.name, d, err}
		})
	}
	wg.Wait()
	var errs []error
	for _, r := range out {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
			continue
		}
		t.add(r.name, r.d)
	}
	return errors.Join(errs...)
}

// outage puts a fault proxy between a fresh memory and PostgreSQL and
// measures how fast readiness follows PostgreSQL stopping and returning
// (rounds times), then how Recall and Orchestrate answer while packets are
// silently dropped.
func (f *faults) outage(ctx context.Context, t *timings) ([]phase, error) {
	px, err := stack.NewProxy(f.pgAddr)
	if err != nil {
		return nil, err
	}
	defer px.Close()
	mem, err := f.startMemory("outage-memory", px.Addr())
	if err != nil {
		return nil, err
	}
	defer mem.close()
	down := []probe{{tReadyDownMemory, mem, "postgres"}}
	up := []probe{{tReadyUpMemory, mem, "postgres"}}
	var orch *svc
	if f.orchBin != "" {
		if orch, err = f.startOrchestrator("outage-orchestrator", mem.grpcAddr); err != nil {
			return nil, err
		}
		defer orch.close()
		down = append(down, probe{tReadyDownOrch, orch, "memory/postgres"})
		up = append(up, probe{tReadyUpOrch, orch, "memory/postgres"})
	}
	var setup timings // start-up here is not what is measured
	if err := waitAll(ctx, &setup, time.Now(), healthpb.HealthCheckResponse_SERVING, up...); err != nil {
		return nil, err
	}
	for r := range f.rounds {
		f.log("outage round %d/%d: stop Postgres (proxy closes), then bring it back", r+1, f.rounds)
		px.Down()
		if err := waitAll(ctx, t, time.Now(), healthpb.HealthCheckResponse_NOT_SERVING, down...); err != nil {
			return nil, err
		}
		if err := px.Up(); err != nil {
			return nil, err
		}
		if err := waitAll(ctx, t, time.Now(), healthpb.HealthCheckResponse_SERVING, up...); err != nil {
			return nil, err
		}
	}

	client := memoryv1.NewMemoryServiceClient(mem.conn)
	recallCall := func(ctx context.Context, i int) (outcome, error) {
		out := outcome{kind: kindDropRecall}
		resp, err := client.Recall(ctx, f.w.recallRequest(i))
		if err != nil {
			return out, err
		}
		checkRecall(&out, resp)
		return out, nil
	}
	recallCfg := runConfig{concurrency: f.load.concurrency, duration: f.dropDuration, maxRequests: f.load.maxRequests, callTimeout: 300 * time.Millisecond}
	var phases []phase
	f.log("silent drop: Recall with a 300 ms deadline for %s", f.dropDuration)
	p, err := f.dropped(ctx, t, px, mem, client, "Postgres silently dropping: Recall", recallCfg, recallCall)
	if err != nil {
		return nil, err
	}
	phases = append(phases, p)
	if orch != nil {
		oc := *f.w
		oc.orch = orchestratorv1.NewOrchestratorServiceClient(orch.conn)
		orchCall := func(ctx context.Context, i int) (outcome, error) {
			out, err := oc.orchestrate(ctx, i)
			out.kind = kindDropOrchestrate
			return out, err
		}
		orchCfg := recallCfg
		orchCfg.callTimeout = 5 * time.Second // the server's default budget is what is measured
		f.log("silent drop: Orchestrate with the server's default budget for %s", f.dropDuration)
		p, err := f.dropped(ctx, t, px, mem, client, "Postgres silently dropping: Orchestrate", orchCfg, orchCall)
		if err != nil {
			return nil, err
		}
		phases = append(phases, p)
	}
	return phases, nil
}

// dropped freezes the proxy with PostgreSQL healthy and the breaker closed,
// runs call for the configured time, and thaws it, recording readiness
// changes both ways.
func (f *faults) dropped(ctx context.Context, t *timings, px *stack.Proxy, mem *svc, client memoryv1.MemoryServiceClient,
	name string, cfg runConfig, call callFunc) (phase, error) {
	if err := waitBreaker(ctx, client, f.w, memoryv1.BreakerState_BREAKER_STATE_CLOSED); err != nil {
		return phase{}, err
	}
	px.Drop()
	from := time.Now()
	var readyErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		readyErr = waitAll(ctx, t, from, healthpb.HealthCheckResponse_NOT_SERVING, probe{tReadyDropMemory, mem, "postgres"})
	})
	p := run(ctx, name, cfg, call)
	wg.Wait()
	px.Forward()
	if readyErr != nil {
		return p, readyErr
	}
	return p, waitAll(ctx, t, time.Now(), healthpb.HealthCheckResponse_SERVING, probe{tReadyHealMemory, mem, "postgres"})
}
