package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/e2e/internal/stack"
	"github.com/brainhq/brain/services/kit/pgtest"
)

// Regression tests for three service bugs this suite found; each failed
// before its fix.

// TestBreakerClosesWhenPostgresAnswersAgain: three recalls time out during
// a blip shorter than the health probe's timeout, which opens the breaker;
// the probe never fails, so its status never flips. The breaker must still
// close (memory closes it on every passing probe), or memory would answer
// every recall degraded and refuse every write while `postgres` says SERVING.
func TestBreakerClosesWhenPostgresAnswersAgain(t *testing.T) {
	skipShort(t)
	// No minimum span, so three simultaneous timeouts open the breaker as
	// they did when this bug was found (by default they must span 500 ms).
	f := startFault(t, faultOptions{proxy: true, memEnv: []string{"BREAKER_MIN_SPAN=0s"}})
	ns := namespace("blip")
	write(t, f.memory, &memoryv1.Episode{Namespace: ns, Content: "the blip passes"})

	f.pgProxy.Drop()
	done := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			// A deadline past RECALL_TIMEOUT (300 ms): the service's own cap
			// ends these calls, so they count toward the breaker (a caller's
			// deadline that ends them first does not).
			resp, err := f.memory.Recall(ctxFor(t, time.Second), &memoryv1.RecallRequest{Namespace: ns, Query: fmt.Sprintf("blip %d", i)})
			if err == nil && !resp.GetDegraded() {
				err = fmt.Errorf("recall not degraded while Postgres drops: %v", resp)
			}
			done <- err
		}()
	}
	for i := 0; i < 3; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	f.pgProxy.Forward() // the blip is over, well within the probe's 1 s timeout
	backAt := time.Now()
	waitBreaker(t, f.memory, memoryv1.BreakerState_BREAKER_STATE_OPEN, time.Second)

	deadline := backAt.Add(statusChange)
	for {
		resp, err := f.memory.Recall(ctxFor(t, time.Second), &memoryv1.RecallRequest{Namespace: ns, Query: "does the blip pass?"})
		if err == nil && resp.GetSource() == memoryv1.RecallSource_RECALL_SOURCE_POSTGRES {
			t.Logf("recall from Postgres again %s after the blip", time.Since(backAt))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after Postgres answers again (health `postgres` %s), recall still %s: %s",
				statusChange, healthOf(f.memConn, "postgres"), resp.GetSource(), resp.GetDegradedReason())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMemoryExitWhilePostgresDrops: SIGTERM while PostgreSQL silently drops
// traffic, after a recall timed out. pgx closes the timed-out connection by
// sending a cancel request over a new connection, which hangs too, and
// pgxpool.Close waits for it (15 s); memory must bound that wait and exit
// within its drain period.
func TestMemoryExitWhilePostgresDrops(t *testing.T) {
	skipShort(t)
	const drain = time.Second
	f := startFault(t, faultOptions{proxy: true, memEnv: []string{"SHUTDOWN_DELAY=0s", "DRAIN_TIMEOUT=" + drain.String()}})
	f.pgProxy.Drop()
	defer f.pgProxy.Forward()
	resp, err := f.memory.Recall(ctxFor(t, defaultBudget), &memoryv1.RecallRequest{Namespace: "n", Query: "held"})
	if err != nil || !resp.GetDegraded() {
		t.Fatalf("recall while dropping: %v %v", resp, err)
	}
	termAt := time.Now()
	if err := f.mem.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	checkExit(t, f.mem, termAt, 0, drain, "after a recall timed out, Postgres still dropping")
}

// TestOrchestratorFollowsMemoryBackAfterLongOutage: memory is away for a
// few seconds (a restart in Kubernetes), and the orchestrator's connection
// to it must not sit in gRPC's default reconnect backoff (1 s growing 1.6×
// per attempt, up to 120 s), or `memory` health and every LAB that needs
// memory stay degraded long after memory is back. A proxy in front of memory counts the
// orchestrator's connection attempts, so memory comes back right after one:
// the next is then seconds away.
func TestOrchestratorFollowsMemoryBackAfterLongOutage(t *testing.T) {
	skipShort(t)
	memCfg := stack.MemoryConfig{Postgres: stack.Postgres{URL: pgtest.NewDatabase(t)}}
	var err error
	if memCfg.GRPCAddr, err = stack.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	mem := stack.StartMemory(t, bins.Memory, memCfg)
	memCfg.HTTPAddr = mem.HTTPAddr
	proxy := newProxy(t, mem.GRPCAddr)
	orch := stack.StartOrchestrator(t, bins.Orchestrator, stack.OrchestratorConfig{MemoryAddr: proxy.Addr()})
	if _, err := stack.WaitListening(orch.GRPCAddr, orch.Started, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	orchConn := stack.Dial(t, orch.GRPCAddr)
	stack.MustWaitHealth(t, orchConn, "memory/postgres", stack.Serving, orch.Started, 5*time.Second)

	killAt := time.Now()
	mem.Kill()
	stack.MustWaitHealth(t, orchConn, "memory", stack.NotServing, killAt, statusChange)
	// Attempts come at once, then ~1 s, ~2.6 s and ~5.2 s after the loss;
	// the one after that is 4 s (±20%) away.
	base := proxy.Accepted()
	for proxy.Accepted() < base+3 {
		if time.Since(killAt) > 20*time.Second {
			t.Fatalf("only %d reconnection attempts in 20 s", proxy.Accepted()-base)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mem = stack.StartMemory(t, bins.Memory, memCfg)
	up, err := stack.WaitHealth(orchConn, "memory", stack.Serving, mem.Started, statusChange)
	if err != nil {
		t.Fatalf("memory back after %s away: %v", mem.Started.Sub(killAt), err)
	}
	t.Logf("memory back after %s away -> orchestrator `memory` SERVING %s", mem.Started.Sub(killAt), up)
	r := orchestrate(ctxFor(t, 5*time.Second), orchestratorv1.NewOrchestratorServiceClient(orchConn),
		&orchestratorv1.OrchestrateRequest{Namespace: "n", Query: "is memory back?"})
	r.complete(t)
	if st := r.labs["LAB_011"].GetStatus(); st != orchestratorv1.LabStatus_LAB_STATUS_OK {
		t.Errorf("LAB_011 = %s (%s) with memory back", st, r.labs["LAB_011"].GetDetail())
	}
}
