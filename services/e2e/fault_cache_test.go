package e2e

import (
	"strings"
	"testing"
	"time"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/e2e/internal/stack"
)

// recallIDs recalls req and returns the answer and its episode ids.
func recallIDs(t *testing.T, mem memoryv1.MemoryServiceClient, req *memoryv1.RecallRequest) (*memoryv1.RecallResponse, map[string]bool) {
	t.Helper()
	resp, err := mem.Recall(ctxFor(t, 2*time.Second), req)
	if err != nil {
		t.Fatalf("Recall %q in %q: %v", req.GetQuery(), req.GetNamespace(), err)
	}
	ids := map[string]bool{}
	for _, e := range resp.GetEpisodes() {
		ids[e.GetEpisode().GetId()] = true
	}
	return resp, ids
}

// TestFaultDeletedNotServedFromCache: write, recall (cached), delete, stop
// PostgreSQL, recall the same query: what was deleted never comes back from
// the cache, by DeleteNamespace or by DeleteEpisode, while a namespace
// nobody deleted from is still served from the cache (so the cache was in
// use).
func TestFaultDeletedNotServedFromCache(t *testing.T) {
	skipShort(t)
	f := startFault(t, faultOptions{})

	erased := namespace("erased")
	gone := write(t, f.memory, &memoryv1.Episode{Namespace: erased, Content: "the lighthouse keeper retired in spring"})[0]
	erasedQ := &memoryv1.RecallRequest{Namespace: erased, Query: "lighthouse keeper"}

	pruned := namespace("pruned")
	eps := write(t, f.memory,
		&memoryv1.Episode{Namespace: pruned, Content: "the orchard harvest was early"},
		&memoryv1.Episode{Namespace: pruned, Content: "the orchard fence needs paint"})
	forgotten, kept := eps[0], eps[1]
	prunedQ := &memoryv1.RecallRequest{Namespace: pruned, Query: "orchard"}
	// Another question of the same namespace whose answer never held the
	// deleted episode.
	keptQ := &memoryv1.RecallRequest{Namespace: pruned, Query: "fence paint"}

	control := namespace("control")
	controlEp := write(t, f.memory, &memoryv1.Episode{Namespace: control, Content: "the tide tables are printed weekly"})[0]
	controlQ := &memoryv1.RecallRequest{Namespace: control, Query: "tide tables"}

	for _, c := range []struct {
		req  *memoryv1.RecallRequest
		want []string
	}{
		{erasedQ, []string{gone.GetId()}},
		{prunedQ, []string{forgotten.GetId(), kept.GetId()}},
		{keptQ, []string{kept.GetId()}},
		{controlQ, []string{controlEp.GetId()}},
	} {
		resp, ids := recallIDs(t, f.memory, c.req)
		if resp.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_POSTGRES || len(ids) != len(c.want) {
			t.Fatalf("warm-up recall %q: %v", c.req.GetQuery(), resp)
		}
		for _, id := range c.want {
			if !ids[id] {
				t.Fatalf("warm-up recall %q lacks %s: %v", c.req.GetQuery(), id, resp)
			}
		}
	}

	del, err := f.memory.DeleteNamespace(ctxFor(t, 5*time.Second), &memoryv1.DeleteNamespaceRequest{Namespace: erased})
	if err != nil || del.GetDeleted() != 1 {
		t.Fatalf("DeleteNamespace: %v %v", del, err)
	}
	de, err := f.memory.DeleteEpisode(ctxFor(t, 5*time.Second), &memoryv1.DeleteEpisodeRequest{Namespace: pruned, Id: forgotten.GetId()})
	if err != nil || !de.GetDeleted() {
		t.Fatalf("DeleteEpisode: %v %v", de, err)
	}

	stopAt := time.Now()
	if err := f.cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	stack.MustWaitHealth(t, f.memConn, "postgres", stack.NotServing, stopAt, statusChange)

	if resp, ids := recallIDs(t, f.memory, erasedQ); ids[gone.GetId()] || resp.GetSource() == memoryv1.RecallSource_RECALL_SOURCE_CACHE {
		t.Errorf("after DeleteNamespace and with PostgreSQL down, recall served %v: the erased episode came back", resp)
	}
	if resp, ids := recallIDs(t, f.memory, prunedQ); ids[forgotten.GetId()] {
		t.Errorf("after DeleteEpisode and with PostgreSQL down, recall served %v: the deleted episode came back", resp)
	}
	// DeleteEpisode drops only the answers that held the episode.
	if resp, ids := recallIDs(t, f.memory, keptQ); resp.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_CACHE || !ids[kept.GetId()] {
		t.Errorf("an answer without the deleted episode was not served from the cache: %v", resp)
	}
	if resp, ids := recallIDs(t, f.memory, controlQ); resp.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_CACHE || !ids[controlEp.GetId()] {
		t.Errorf("control namespace not served from the cache with PostgreSQL down: %v", resp)
	}
}

// TestFaultOrchestrateUsesRecallCache: the orchestrator asks as of now, so
// the cache must be keyed by the question, not the clock. Run Orchestrate,
// stop PostgreSQL, run the same Orchestrate again: LAB_011 is served from
// the cache, with the episode recalled before.
func TestFaultOrchestrateUsesRecallCache(t *testing.T) {
	skipShort(t)
	f := startFault(t, faultOptions{withOrchestrator: true})
	ns := namespace("orchcache")
	ep := write(t, f.memory, &memoryv1.Episode{Namespace: ns, Content: "the deploy went fine after the second rollout"})[0]
	req := &orchestratorv1.OrchestrateRequest{Namespace: ns, Query: "how did the deploy go?"}

	r := orchestrate(ctxFor(t, 5*time.Second), f.orchestrator, req)
	r.complete(t)
	wm := r.labs["LAB_011"].GetWorkingMemory()
	if wm.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_POSTGRES || len(wm.GetItems()) != 1 || wm.GetItems()[0].GetEpisodeId() != ep.GetId() {
		t.Fatalf("LAB_011 with PostgreSQL up: %s %v", r.labs["LAB_011"].GetStatus(), wm)
	}

	stopAt := time.Now()
	if err := f.cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	stack.MustWaitHealth(t, f.memConn, "postgres", stack.NotServing, stopAt, statusChange)
	time.Sleep(10 * time.Millisecond) // as_of of the next run is strictly later

	r = orchestrate(ctxFor(t, 5*time.Second), f.orchestrator, req)
	r.complete(t)
	l011 := r.labs["LAB_011"]
	wm = l011.GetWorkingMemory()
	if wm.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_CACHE || !wm.GetDegraded() ||
		len(wm.GetItems()) != 1 || wm.GetItems()[0].GetEpisodeId() != ep.GetId() || wm.GetItems()[0].GetSynthetic() {
		t.Errorf("LAB_011 with PostgreSQL down after the same run: %s %q %v; want the cached episode from CACHE",
			l011.GetStatus(), l011.GetDetail(), wm)
	}
}

// waitCacheSync waits until memory p hears the deletes of every replica.
func waitCacheSync(t *testing.T, p *stack.Process) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := httpDo(t, "GET", "http://"+p.HTTPAddr+"/metrics", "")
		if strings.Contains(string(body), "\nbrain_memory_recall_cache_sync 1\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("memory not listening for deletes (brain_memory_recall_cache_sync) within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFaultReplicaDeleteNotServedFromCache: two memory replicas over one
// database, each with its own cache. Write, recall on both, delete through
// one, stop PostgreSQL, recall on the other: the deleted episode does not
// come back from its cache.
func TestFaultReplicaDeleteNotServedFromCache(t *testing.T) {
	skipShort(t)
	f := startFault(t, faultOptions{})
	other := stack.StartMemory(t, bins.Memory, stack.MemoryConfig{Postgres: stack.Postgres{
		Host: "127.0.0.1", Port: f.cluster.Port(), Database: f.db, PasswordFile: f.cluster.PasswordFile()}})
	f.waitUp(t, other)
	otherConn := stack.Dial(t, other.GRPCAddr)
	stack.MustWaitHealth(t, otherConn, "postgres", stack.Serving, other.Started, 5*time.Second)
	otherMem := memoryv1.NewMemoryServiceClient(otherConn)
	waitCacheSync(t, f.mem)
	waitCacheSync(t, other)

	ns := namespace("replicas")
	eps := write(t, f.memory,
		&memoryv1.Episode{Namespace: ns, Content: "the ferry timetable changed"},
		&memoryv1.Episode{Namespace: ns, Content: "the bridge tolls were dropped"})
	erased := &memoryv1.RecallRequest{Namespace: ns, Query: "ferry timetable"}
	for _, mem := range []memoryv1.MemoryServiceClient{f.memory, otherMem} {
		if resp, ids := recallIDs(t, mem, erased); !ids[eps[0].GetId()] {
			t.Fatalf("warm-up recall: %v", resp)
		}
	}
	entries := func() int32 {
		st, err := otherMem.GetStats(ctxFor(t, time.Second), &memoryv1.GetStatsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetCacheEntries()
	}
	if n := entries(); n != 1 {
		t.Fatalf("other replica caches %d answers, want 1", n)
	}

	if _, err := f.memory.DeleteNamespace(ctxFor(t, 5*time.Second), &memoryv1.DeleteNamespaceRequest{Namespace: ns}); err != nil {
		t.Fatal(err)
	}
	// The purge travels through PostgreSQL; wait for it rather than race
	// the outage against its delivery.
	deadline := time.Now().Add(statusChange)
	for entries() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the other replica still caches %d answers %s after the delete", entries(), statusChange)
		}
		time.Sleep(10 * time.Millisecond)
	}

	stopAt := time.Now()
	if err := f.cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	stack.MustWaitHealth(t, otherConn, "postgres", stack.NotServing, stopAt, statusChange)
	if resp, ids := recallIDs(t, otherMem, erased); ids[eps[0].GetId()] || resp.GetSource() == memoryv1.RecallSource_RECALL_SOURCE_CACHE {
		t.Errorf("the other replica served %v after the delete, with PostgreSQL down", resp)
	}
}
