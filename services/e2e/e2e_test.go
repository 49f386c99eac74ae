package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/dynamicpb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/e2e/internal/stack"
	"github.com/brainhq/brain/services/kit/pgtest"
)

// sharedStack is one memory and one orchestrator over the package's shared
// PostgreSQL, used by the happy-path and bad-input suites (each test in its
// own namespace). Fault tests start their own.
type sharedStack struct {
	mem, orch         *stack.Process
	memConn, orchConn *grpc.ClientConn
	memory            memoryv1.MemoryServiceClient
	orchestrator      orchestratorv1.OrchestratorServiceClient
	// memHTTP and orchHTTP are base URLs ("http://127.0.0.1:port").
	memHTTP, orchHTTP string
}

func startShared(t *testing.T) *sharedStack {
	t.Helper()
	return startStackOn(t, pgtest.NewDatabase(t), true)
}

// startStackOn starts memory over dbURL and an orchestrator in front of it
// and waits until both serve; with measure, within the design's start-up
// bounds, recording the times.
func startStackOn(t *testing.T, dbURL string, measure bool) *sharedStack {
	t.Helper()
	healthy, ready := 5*time.Second, 5*time.Second
	if measure {
		healthy, ready = time.Second, 2*time.Second
	}
	s := &sharedStack{}
	s.mem = stack.StartMemory(t, bins.Memory, stack.MemoryConfig{Postgres: stack.Postgres{URL: dbURL}})
	if _, err := stack.WaitListening(s.mem.GRPCAddr, s.mem.Started, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	s.memConn = stack.Dial(t, s.mem.GRPCAddr)
	up := stack.MustWaitHealth(t, s.memConn, "", stack.Serving, s.mem.Started, healthy)
	pgUp := stack.MustWaitHealth(t, s.memConn, "postgres", stack.Serving, s.mem.Started, ready)
	t.Logf("memory: start -> SERVING %s, -> postgres SERVING (migrated) %s", up, pgUp)

	s.orch = stack.StartOrchestrator(t, bins.Orchestrator, stack.OrchestratorConfig{MemoryAddr: s.mem.GRPCAddr})
	if _, err := stack.WaitListening(s.orch.GRPCAddr, s.orch.Started, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	s.orchConn = stack.Dial(t, s.orch.GRPCAddr)
	oUp := stack.MustWaitHealth(t, s.orchConn, "", stack.Serving, s.orch.Started, healthy)
	oMem := stack.MustWaitHealth(t, s.orchConn, "memory/postgres", stack.Serving, s.orch.Started, ready)
	t.Logf("orchestrator: start -> SERVING %s, -> memory/postgres SERVING %s", oUp, oMem)
	if measure {
		measured.Duration("memory start → health SERVING (Postgres up)", up, "≤ 1 s")
		measured.Duration("memory start → `postgres` SERVING (fresh database, migrations on start)", pgUp, "")
		measured.Duration("orchestrator start → health SERVING", oUp, "≤ 1 s")
		measured.Duration("orchestrator start → `memory/postgres` SERVING", oMem, "≤ 2 s")
	}

	s.memory = memoryv1.NewMemoryServiceClient(s.memConn)
	s.orchestrator = orchestratorv1.NewOrchestratorServiceClient(s.orchConn)
	s.memHTTP, s.orchHTTP = "http://"+s.mem.HTTPAddr, "http://"+s.orch.HTTPAddr
	return s
}

// alive fails the test when either process has exited or stopped answering.
func (s *sharedStack) alive(t *testing.T) {
	t.Helper()
	for _, p := range []struct {
		proc *stack.Process
		conn *grpc.ClientConn
	}{{s.mem, s.memConn}, {s.orch, s.orchConn}} {
		if p.proc.Exited() {
			t.Fatalf("%s exited", p.proc.Name)
		}
		if st, err := stack.Check(p.conn, "", time.Second); err != nil || st != stack.Serving {
			t.Fatalf("%s health: %v %v", p.proc.Name, st, err)
		}
	}
}

// TestSharedStack runs the happy-path and bad-input suites against one
// stack, the way users reach it: gRPC, reflection, JSON through the
// gateway, NDJSON, the health protocol and /readyz.
func TestSharedStack(t *testing.T) {
	skipShort(t)
	s := startShared(t)
	t.Run("Health", func(t *testing.T) { testHealth(t, s) })
	t.Run("Reflection", func(t *testing.T) { testReflection(t, s) })
	t.Run("WriteReadJSONAndGRPC", func(t *testing.T) { testWriteRead(t, s) })
	t.Run("Orchestrate", func(t *testing.T) { testOrchestrate(t, s) })
	t.Run("NDJSON", func(t *testing.T) { testNDJSON(t, s) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(t, s) })
	s.alive(t)
}

func testHealth(t *testing.T, s *sharedStack) {
	for _, c := range []struct {
		proc     *stack.Process
		conn     *grpc.ClientConn
		services []string
	}{
		{s.mem, s.memConn, []string{"", "brain.memory.v1.MemoryService", "postgres"}},
		{s.orch, s.orchConn, []string{"", "brain.orchestrator.v1.OrchestratorService", "memory", "memory/postgres"}},
	} {
		for _, svc := range c.services {
			st, err := stack.Check(c.conn, svc, time.Second)
			if err != nil || st != stack.Serving {
				t.Errorf("%s health %q = %v, %v; want SERVING", c.proc.Name, svc, st, err)
			}
			// The binary's own health subcommand, as a container HEALTHCHECK runs it.
			if err := runHealthCmd(t, c.proc, svc); err != nil {
				t.Errorf("%s health --service %q: %v", c.proc.Name, svc, err)
			}
		}
		if _, err := stack.Check(c.conn, "no-such-service", time.Second); code(err) != codes.NotFound {
			t.Errorf("%s health of an unknown service: %v, want NOT_FOUND", c.proc.Name, err)
		}
	}

	type probe struct {
		url    string
		status int
		want   []string // substrings of the body
	}
	for _, p := range []probe{
		{s.memHTTP + "/healthz", 200, []string{"ok"}},
		{s.memHTTP + "/readyz", 200, []string{"ok"}},
		{s.memHTTP + "/readyz?verbose", 200, []string{"[+]shutdown ok", "[+]postgres ok", "readyz check passed"}},
		{s.memHTTP + "/readyz/postgres", 200, []string{"ok"}},
		{s.memHTTP + "/readyz/no-such-check", 404, []string{"no-such-check"}},
		{s.orchHTTP + "/healthz", 200, []string{"ok"}},
		{s.orchHTTP + "/readyz", 200, []string{"ok"}},
		{s.orchHTTP + "/readyz?verbose", 200, []string{"[+]memory ok", "[+]memory/postgres ok"}},
		{s.orchHTTP + "/readyz/memory", 200, []string{"ok"}},
		{s.orchHTTP + "/readyz/memory/postgres", 200, []string{"ok"}},
		{s.memHTTP + "/metrics", 200, []string{"brain_memory_recall_total", "grpc_server_handled_total"}},
		{s.orchHTTP + "/metrics", 200, []string{"grpc_server_handled_total", `grpc_service="brain.orchestrator.v1.OrchestratorService"`}},
		{s.orchHTTP + "/openapi.json", 200, []string{`"/v1/orchestrate"`, `"/v1/memory/episodes:recall"`}},
	} {
		status, body := httpDo(t, "GET", p.url, "")
		if status != p.status {
			t.Errorf("GET %s = %d, want %d: %.300s", p.url, status, p.status, body)
			continue
		}
		for _, w := range p.want {
			if !strings.Contains(string(body), w) {
				t.Errorf("GET %s: body lacks %q:\n%.300s", p.url, w, body)
			}
		}
	}
	status, body := httpDo(t, "GET", s.orchHTTP+"/openapi.json", "")
	if status == 200 && !json.Valid(body) {
		t.Errorf("/openapi.json is not valid JSON")
	}
}

func testReflection(t *testing.T, s *sharedStack) {
	ctx := ctxFor(t, 10*time.Second)
	ns := namespace("reflect")
	write(t, s.memory, &memoryv1.Episode{Namespace: ns, Content: "The reflection service lists every method"})

	for _, c := range []struct {
		conn *grpc.ClientConn
		want []string
	}{
		{s.memConn, []string{"brain.memory.v1.MemoryService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"}},
		{s.orchConn, []string{"brain.orchestrator.v1.OrchestratorService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"}},
	} {
		r, err := newReflector(ctx, c.conn)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.services()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("reflection list = %v, missing %s", got, w)
			}
		}
		if err := r.close(); err != nil {
			t.Error(err)
		}
	}

	// grpcurl -d '{"namespace": ..., "query": ...}' memory brain.memory.v1.MemoryService/Recall
	r, err := newReflector(ctx, s.memConn)
	if err != nil {
		t.Fatal(err)
	}
	md, err := r.method("brain.memory.v1.MemoryService", "Recall")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.close(); err != nil {
		t.Error(err)
	}
	if md.Input().FullName() != "brain.memory.v1.RecallRequest" || md.Output().FullName() != "brain.memory.v1.RecallResponse" {
		t.Fatalf("Recall resolved to %s -> %s", md.Input().FullName(), md.Output().FullName())
	}
	in, out := dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output())
	if err := protojson.Unmarshal([]byte(fmt.Sprintf(`{"namespace":%q,"query":"which service lists methods?","limit":3}`, ns)), in); err != nil {
		t.Fatal(err)
	}
	if err := s.memConn.Invoke(ctx, "/brain.memory.v1.MemoryService/Recall", in, out); err != nil {
		t.Fatalf("dynamic Recall: %v", err)
	}
	js, _ := protojson.Marshal(out)
	if !strings.Contains(string(js), `"source":"RECALL_SOURCE_POSTGRES"`) || !strings.Contains(string(js), "reflection service lists") {
		t.Errorf("dynamic Recall answered %s", js)
	}

	// grpcurl -d '{...}' orchestrator brain.orchestrator.v1.OrchestratorService/Orchestrate
	r, err = newReflector(ctx, s.orchConn)
	if err != nil {
		t.Fatal(err)
	}
	md, err = r.method("brain.orchestrator.v1.OrchestratorService", "Orchestrate")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.close(); err != nil {
		t.Error(err)
	}
	if !md.IsStreamingServer() || md.IsStreamingClient() {
		t.Fatalf("Orchestrate: server streaming %v, client streaming %v", md.IsStreamingServer(), md.IsStreamingClient())
	}
	in = dynamicpb.NewMessage(md.Input())
	if err := protojson.Unmarshal([]byte(fmt.Sprintf(`{"namespace":%q,"query":"which service lists methods?"}`, ns)), in); err != nil {
		t.Fatal(err)
	}
	stream, err := s.orchConn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/brain.orchestrator.v1.OrchestratorService/Orchestrate")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(in); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for {
		m := dynamicpb.NewMessage(md.Output())
		if err := stream.RecvMsg(m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("dynamic Orchestrate after %d messages: %v", len(msgs), err)
		}
		js, _ := protojson.Marshal(m)
		msgs = append(msgs, string(js))
	}
	if len(msgs) != 10 || !strings.HasPrefix(msgs[9], `{"summary":`) {
		t.Errorf("dynamic Orchestrate streamed %d messages, last %.80s", len(msgs), msgs[len(msgs)-1])
	}
}

func testWriteRead(t *testing.T, s *sharedStack) {
	ns := namespace("json")
	id := newID()
	// Through the front door: the orchestrator's HTTP port proxies memory's routes.
	body := fmt.Sprintf(`{"episodes":[{"id":%q,"namespace":%q,"sessionId":"s1","content":"The staging database moved to a new host","importance":0.9,"metadata":{"team":"infra"},"affect":{"valence":0.2,"arousal":0.3,"intensity":0.4}}]}`, id, ns)
	for i := 0; i < 2; i++ { // the retry with the same id stores one copy
		status, resp := httpDo(t, "POST", s.orchHTTP+"/v1/memory/episodes:write", body)
		if status != 200 {
			t.Fatalf("write through the front door = %d: %s", status, resp)
		}
		eps := decodeJSON(t, resp)["episodes"].([]any)
		if len(eps) != 1 || eps[0].(map[string]any)["id"] != id {
			t.Fatalf("write answered %s", resp)
		}
	}
	if n := len(listAll(t, s.memory, ns)); n != 1 {
		t.Fatalf("after writing the same id twice, %d episodes", n)
	}

	// gRPC sees what JSON wrote.
	got, err := s.memory.GetEpisode(ctxFor(t, 5*time.Second), &memoryv1.GetEpisodeRequest{Namespace: ns, Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if e := got.GetEpisode(); e.GetContent() != "The staging database moved to a new host" || e.GetSessionId() != "s1" ||
		e.GetImportance() != 0.9 || e.GetMetadata()["team"] != "infra" || e.GetAffect().GetIntensity() != 0.4 {
		t.Errorf("GetEpisode = %v", e)
	}

	// Recall over JSON on both HTTP ports.
	for _, base := range []string{s.memHTTP, s.orchHTTP} {
		status, resp := httpDo(t, "POST", base+"/v1/memory/episodes:recall",
			fmt.Sprintf(`{"namespace":%q,"query":"where is the staging database?"}`, ns))
		if status != 200 {
			t.Fatalf("recall on %s = %d: %s", base, status, resp)
		}
		m := decodeJSON(t, resp)
		if m["source"] != "RECALL_SOURCE_POSTGRES" || m["degraded"] != false {
			t.Errorf("recall on %s: source %v degraded %v", base, m["source"], m["degraded"])
		}
		eps, _ := m["episodes"].([]any)
		if len(eps) != 1 || eps[0].(map[string]any)["episode"].(map[string]any)["id"] != id {
			t.Errorf("recall on %s = %s", base, resp)
		}
	}

	// GET, list, stats, labs, delete.
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/v1/memory/namespaces/" + ns + "/episodes/" + id, `"content":"The staging database moved to a new host"`},
		{"GET", "/v1/memory/namespaces/" + ns + "/episodes?pageSize=5", `"id":"` + id + `"`},
		{"GET", "/v1/memory/stats?namespace=" + ns, `"episodeCount":"1"`},
		{"GET", "/v1/labs", `"id":"LAB_011"`},
		{"DELETE", "/v1/memory/namespaces/" + ns + "/episodes/" + id, `"deleted":true`},
		{"DELETE", "/v1/memory/namespaces/" + ns + "/episodes/" + id, `"deleted":false`},
	} {
		status, resp := httpDo(t, c.method, s.orchHTTP+c.path, "")
		if status != 200 || !strings.Contains(string(resp), c.want) {
			t.Errorf("%s %s = %d %s; want 200 with %s", c.method, c.path, status, resp, c.want)
		}
	}
	status, resp := httpDo(t, "GET", s.orchHTTP+"/v1/memory/namespaces/"+ns+"/episodes/"+id, "")
	if status != 404 {
		t.Errorf("GET of a deleted episode = %d %s, want 404", status, resp)
	}
	labs, err := s.orchestrator.ListLabs(ctxFor(t, 5*time.Second), &orchestratorv1.ListLabsRequest{})
	if err != nil || len(labs.GetLabs()) != 9 {
		t.Errorf("ListLabs = %d labs, %v", len(labs.GetLabs()), err)
	}
}

// deploySeed is a small history: two sessions in which a deploy was
// mentioned, each followed by what happened next, and an unrelated one.
type deploySeed struct {
	ns                 string
	a1, a2, a3, b1, b2 string // ids; a1 and b1 mention the deploy
	c1                 string
	followers          map[string]string // buffered id -> the episode right after it
}

func seedDeploy(t *testing.T, mem memoryv1.MemoryServiceClient) deploySeed {
	t.Helper()
	d := deploySeed{ns: namespace("deploy"), a1: newID(), a2: newID(), a3: newID(), b1: newID(), b2: newID(), c1: newID()}
	d.followers = map[string]string{d.a1: d.a2, d.b1: d.b2}
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	imp := func(x float64) *float64 { return &x }
	ep := func(id, session, content string, at time.Duration, affect *memoryv1.Affect) *memoryv1.Episode {
		return &memoryv1.Episode{Id: id, Namespace: d.ns, SessionId: session, Content: content,
			Importance: imp(0.8), CreatedAt: ts(base.Add(at)), Affect: affect}
	}
	write(t, mem,
		ep(d.a1, "session-a", "The deploy of release 1.2 finished after the canary", 0, &memoryv1.Affect{Valence: 0.6, Arousal: 0.5, Intensity: 0.5}),
		ep(d.a2, "session-a", "Celebrated with cake in the kitchen", time.Minute, nil),
		ep(d.a3, "session-a", "Wrote the retrospective notes", 2*time.Minute, nil),
		ep(d.b1, "session-b", "The deploy to staging stalled on the schema migration", 30*time.Minute, &memoryv1.Affect{Valence: -0.6, Arousal: 0.5, Intensity: 0.5}),
		ep(d.b2, "session-b", "Rolled back staging and opened an incident", 31*time.Minute, nil),
		ep(d.c1, "session-c", "Lunch was pasta with the team", 60*time.Minute, nil),
	)
	return d
}

func testOrchestrate(t *testing.T, s *sharedStack) {
	d := seedDeploy(t, s.memory)
	r := orchestrate(ctxFor(t, 10*time.Second), s.orchestrator, &orchestratorv1.OrchestrateRequest{
		Namespace: d.ns, Query: "how did the deploy go?", SessionId: "session-now", Goal: "ship the release"})
	r.complete(t)
	t.Logf("orchestrate over gRPC: first result after %s, stream done after %s, order %v", r.first, r.elapsed, r.order)
	measured.Duration("Orchestrate over gRPC, memory and Postgres up: first LAB result", r.first, "")
	measured.Duration("Orchestrate over gRPC, memory and Postgres up: whole stream", r.elapsed, "≤ 300 ms budget")
	if r.elapsed > 300*time.Millisecond {
		t.Errorf("the run took %s, beyond the default budget of 300 ms", r.elapsed)
	}
	if r.order[0] != "LAB_011" || r.order[8] != "LAB_006" {
		t.Errorf("completion order %v: LAB_011 has no dependencies and LAB_006 depends on all", r.order)
	}
	for _, id := range labIDs {
		if st := r.labs[id].GetStatus(); st != orchestratorv1.LabStatus_LAB_STATUS_OK {
			t.Errorf("%s = %s (%s), want OK", id, st, r.labs[id].GetDetail())
		}
	}
	if len(r.summary.GetDegradedLabs()) != 0 || len(r.summary.GetLabs()) != 9 {
		t.Errorf("summary: degraded %v, %d timings", r.summary.GetDegradedLabs(), len(r.summary.GetLabs()))
	}

	// LAB_011: the buffer holds the episodes about the deploy, nothing else.
	wm := r.labs["LAB_011"].GetWorkingMemory()
	var buffered []string
	for _, it := range wm.GetItems() {
		buffered = append(buffered, it.GetEpisodeId())
		if it.GetSynthetic() {
			t.Errorf("synthetic item with memory up: %v", it)
		}
	}
	slices.Sort(buffered)
	want := []string{d.a1, d.b1}
	slices.Sort(want)
	if !slices.Equal(buffered, want) || wm.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_POSTGRES || wm.GetDegraded() {
		t.Errorf("LAB_011 buffer %v from %s (degraded %v), want %v (a1, b1) from POSTGRES", buffered, wm.GetSource(), wm.GetDegraded(), want)
	}
	if n := len(r.summary.GetWorkingMemory()); n != 2 {
		t.Errorf("summary working memory has %d items, want 2", n)
	}
	if status, body := httpDo(t, "GET", s.orchHTTP+"/metrics", ""); status != 200 ||
		!strings.Contains(string(body), `brain_orchestrator_lab_duration_seconds_count{lab="LAB_011",status="OK"}`) {
		t.Errorf("orchestrator /metrics after a run = %d, no LAB_011 duration:\n%.300s", status, body)
	}

	// LAB_009 touched them, and memory's access counts rise (recorded in
	// the background, so poll, bounded).
	rec := r.labs["LAB_009"].GetReconsolidation()
	touched := slices.Clone(rec.GetEpisodeIds())
	slices.Sort(touched)
	if rec.GetTouched() != 2 || !slices.Equal(touched, want) {
		t.Errorf("LAB_009 touched %d %v, want %v", rec.GetTouched(), touched, want)
	}
	start := time.Now()
	for _, id := range want {
		for {
			got, err := s.memory.GetEpisode(ctxFor(t, time.Second), &memoryv1.GetEpisodeRequest{Namespace: d.ns, Id: id})
			if err != nil {
				t.Fatal(err)
			}
			if got.GetEpisode().GetAccessCount() >= 1 && got.GetEpisode().GetLastAccessedAt() != nil {
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("access count of %s still %d 5 s after the run", id, got.GetEpisode().GetAccessCount())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("access counts raised within %s of the run", time.Since(start))
	measured.Duration("LAB_009 access recorded in memory after the run", time.Since(start), "")
	// The unrelated episode was not touched.
	got, err := s.memory.GetEpisode(ctxFor(t, time.Second), &memoryv1.GetEpisodeRequest{Namespace: d.ns, Id: d.c1})
	if err != nil || got.GetEpisode().GetAccessCount() != 0 {
		t.Errorf("unrelated episode: access count %d, %v", got.GetEpisode().GetAccessCount(), err)
	}

	// LAB_007 predicts what followed each attended episode in its session.
	preds := r.labs["LAB_007"].GetPreload().GetPredictions()
	if len(preds) == 0 {
		t.Fatalf("LAB_007 predicted nothing: %s", r.labs["LAB_007"].GetDetail())
	}
	predicted := map[string]string{}
	for _, p := range preds {
		predicted[p.GetFollowsEpisodeId()] = p.GetEpisodeId()
		if d.followers[p.GetFollowsEpisodeId()] != p.GetEpisodeId() || p.GetConfidence() < 0.3 {
			t.Errorf("LAB_007 predicted %s after %s (confidence %.2f); the episode after it in its session is %s",
				p.GetEpisodeId(), p.GetFollowsEpisodeId(), p.GetConfidence(), d.followers[p.GetFollowsEpisodeId()])
		}
	}
	// The most attended item is about half the attention, so its follower
	// (one minute later) clears the 0.3 threshold.
	top := r.labs["LAB_010"].GetAttention().GetItems()[0].GetEpisodeId()
	if predicted[top] != d.followers[top] {
		t.Errorf("LAB_007 did not predict %s, which followed the most attended %s: %v", d.followers[top], top, preds)
	}
}

func testNDJSON(t *testing.T, s *sharedStack) {
	d := seedDeploy(t, s.memory)
	body := fmt.Sprintf(`{"namespace":%q,"query":"how did the deploy go?","goal":"ship the release"}`, d.ns)
	resp, err := postChunked(ctxFor(t, 10*time.Second), s.orch.HTTPAddr, "/v1/orchestrate", body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.status != 200 {
		t.Fatalf("POST /v1/orchestrate = %d: %s", resp.status, resp.body)
	}
	lines := ndjsonLines(t, resp.body)
	if len(lines) != 10 {
		t.Fatalf("%d NDJSON lines, want 10 (nine LABs and the summary):\n%s", len(lines), resp.body)
	}
	seen := map[string]bool{}
	for i, l := range lines {
		res, ok := l["result"].(map[string]any)
		if !ok || len(l) != 1 {
			t.Fatalf("line %d is not {\"result\": ...}: %v", i, l)
		}
		if i < 9 {
			lab, _ := res["lab"].(map[string]any)
			id, _ := lab["labId"].(string)
			if id == "" || lab["status"] != "LAB_STATUS_OK" {
				t.Errorf("line %d: lab %v status %v", i, id, lab["status"])
			}
			seen[id] = true
		} else if _, ok := res["summary"].(map[string]any); !ok {
			t.Errorf("last line is not the summary: %v", l)
		}
	}
	if len(seen) != 9 {
		t.Errorf("LABs streamed: %v", seen)
	}
	// Each message is flushed as it is produced: every line ends a chunk of
	// its own, and no chunk holds the end of two lines.
	ends := 0
	for i, c := range resp.chunks {
		n := bytes.Count(c.data, []byte("\n"))
		if n > 1 || (n == 1 && c.data[len(c.data)-1] != '\n') {
			t.Errorf("chunk %d holds %d line ends (not flushed per message): %q", i, n, c.data)
		}
		ends += n
	}
	if ends != 10 {
		t.Errorf("%d chunks end a line, want 10", ends)
	}
	first, last := resp.chunks[0].at, resp.chunks[len(resp.chunks)-1].at
	t.Logf("NDJSON: %d chunks, first line after %s, last after %s (content type %s)", len(resp.chunks), first, last, resp.header.Get("Content-Type"))
	measured.Duration("Orchestrate as NDJSON through the gateway: first line", first, "")
	measured.Duration("Orchestrate as NDJSON through the gateway: whole stream", last, "")

	// The same through an ordinary HTTP client, reading line by line.
	req := fmt.Sprintf(`{"namespace":%q,"query":"how did the deploy go?"}`, d.ns)
	status, out := httpDo(t, "POST", s.orchHTTP+"/v1/orchestrate", req)
	if status != 200 || len(ndjsonLines(t, out)) != 10 {
		t.Errorf("POST /v1/orchestrate with net/http: %d, %d lines", status, len(ndjsonLines(t, out)))
	}
}

// healthOf is a helper for the fault tests: the current status or the
// error's code as text.
func healthOf(conn *grpc.ClientConn, svc string) string {
	st, err := stack.Check(conn, svc, time.Second)
	if err != nil {
		return "error " + code(err).String()
	}
	return healthpb.HealthCheckResponse_ServingStatus_name[int32(st)]
}
