package e2e

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
)

// grpcCase is a bad request over gRPC and the error it must get: the code
// and, for INVALID_ARGUMENT, the field the message names.
type grpcCase struct {
	name  string
	call  func(ctx context.Context) error
	code  codes.Code
	field string
}

func testBadInput(t *testing.T, s *sharedStack) {
	t.Run("GRPC", func(t *testing.T) { testBadGRPC(t, s) })
	t.Run("InvalidUTF8GRPC", func(t *testing.T) { testInvalidUTF8GRPC(t, s) })
	t.Run("JSON", func(t *testing.T) { testBadJSON(t, s) })
	t.Run("LikeMetacharacters", func(t *testing.T) { testLikeMetacharacters(t, s) })
	t.Run("InjectionLooking", func(t *testing.T) { testInjectionLooking(t, s) })
	t.Run("UnknownNamespace", func(t *testing.T) { testUnknownNamespace(t, s) })
	// Whatever came before, both services still answer, and correctly.
	s.alive(t)
	ns := namespace("after-bad")
	write(t, s.memory, &memoryv1.Episode{Namespace: ns, Content: "still serving after the bad input"})
	resp, err := s.memory.Recall(ctxFor(t, 5*time.Second), &memoryv1.RecallRequest{Namespace: ns, Query: "still serving"})
	if err != nil || len(resp.GetEpisodes()) != 1 || resp.GetDegraded() {
		t.Fatalf("recall after the bad-input suite: %v %v", resp, err)
	}
}

func testBadGRPC(t *testing.T, s *sharedStack) {
	mem, orch := s.memory, s.orchestrator
	ns := namespace("bad")
	f := func(x float64) *float64 { return &x }
	ep := func(mod func(*memoryv1.Episode)) *memoryv1.WriteEpisodesRequest {
		e := &memoryv1.Episode{Namespace: ns, Content: "fine content"}
		mod(e)
		return &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{e}}
	}
	recall := func(req *memoryv1.RecallRequest) func(ctx context.Context) error {
		return func(ctx context.Context) error { _, err := mem.Recall(ctx, req); return err }
	}
	writeReq := func(req *memoryv1.WriteEpisodesRequest) func(ctx context.Context) error {
		return func(ctx context.Context) error { _, err := mem.WriteEpisodes(ctx, req); return err }
	}
	run := func(req *orchestratorv1.OrchestrateRequest) func(ctx context.Context) error {
		return func(ctx context.Context) error { return orchestrate(ctx, orch, req).err }
	}
	many := func(n int) []*memoryv1.Episode {
		out := make([]*memoryv1.Episode, n)
		for i := range out {
			out[i] = &memoryv1.Episode{Namespace: ns, Content: "x"}
		}
		return out
	}
	bigMeta := map[string]string{}
	for i := 0; i < 33; i++ {
		bigMeta[fmt.Sprintf("k%d", i)] = "v"
	}
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = newID()
		}
		return out
	}
	dup := newID()
	long := strings.Repeat("a", 129)
	cases := []grpcCase{
		{"recall empty namespace", recall(&memoryv1.RecallRequest{Query: "q"}), codes.InvalidArgument, "namespace"},
		{"recall empty query", recall(&memoryv1.RecallRequest{Namespace: ns}), codes.InvalidArgument, "query"},
		{"recall oversized query", recall(&memoryv1.RecallRequest{Namespace: ns, Query: strings.Repeat("q", 4097)}), codes.InvalidArgument, "query"},
		{"recall oversized namespace", recall(&memoryv1.RecallRequest{Namespace: long, Query: "q"}), codes.InvalidArgument, "namespace"},
		{"recall control character in namespace", recall(&memoryv1.RecallRequest{Namespace: "a\x00b", Query: "q"}), codes.InvalidArgument, "namespace"},
		{"recall negative limit", recall(&memoryv1.RecallRequest{Namespace: ns, Query: "q", Limit: -1}), codes.InvalidArgument, "limit"},
		{"recall limit over 100", recall(&memoryv1.RecallRequest{Namespace: ns, Query: "q", Limit: 101}), codes.InvalidArgument, "limit"},
		{"recall huge limit", recall(&memoryv1.RecallRequest{Namespace: ns, Query: "q", Limit: math.MaxInt32}), codes.InvalidArgument, "limit"},
		{"recall min_importance above 1", recall(&memoryv1.RecallRequest{Namespace: ns, Query: "q", MinImportance: f(2)}), codes.InvalidArgument, "min_importance"},
		{"recall NaN min_importance", recall(&memoryv1.RecallRequest{Namespace: ns, Query: "q", MinImportance: f(math.NaN())}), codes.InvalidArgument, "min_importance"},
		{"recall negative weight", recall(&memoryv1.RecallRequest{Namespace: ns, Query: "q", Weights: &memoryv1.RecallWeights{Relevance: -1}}), codes.InvalidArgument, "weights.relevance"},
		{"recall half-life too short", recall(&memoryv1.RecallRequest{Namespace: ns, Query: "q", RecencyHalfLife: durationpb.New(time.Millisecond)}), codes.InvalidArgument, "recency_half_life"},
		{"recall unknown match mode", recall(&memoryv1.RecallRequest{Namespace: ns, Query: "q", Match: 99}), codes.InvalidArgument, "match"},
		{"recall timestamp out of range", recall(&memoryv1.RecallRequest{Namespace: ns, Query: "q", AsOf: ts(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))}), codes.InvalidArgument, "as_of"},

		{"write no episodes", writeReq(&memoryv1.WriteEpisodesRequest{}), codes.InvalidArgument, "episodes"},
		{"write 501 episodes", writeReq(&memoryv1.WriteEpisodesRequest{Episodes: many(501)}), codes.InvalidArgument, "episodes"},
		{"write empty content", writeReq(ep(func(e *memoryv1.Episode) { e.Content = "" })), codes.InvalidArgument, "episodes[0].content"},
		{"write oversized content", writeReq(ep(func(e *memoryv1.Episode) { e.Content = strings.Repeat("c", 64<<10+1) })), codes.InvalidArgument, "episodes[0].content"},
		{"write empty namespace", writeReq(ep(func(e *memoryv1.Episode) { e.Namespace = "" })), codes.InvalidArgument, "episodes[0].namespace"},
		{"write malformed id", writeReq(ep(func(e *memoryv1.Episode) { e.Id = "not-a-uuid" })), codes.InvalidArgument, "episodes[0].id"},
		{"write id without dashes", writeReq(ep(func(e *memoryv1.Episode) { e.Id = strings.ReplaceAll(newID(), "-", "") })), codes.InvalidArgument, "episodes[0].id"},
		{"write id that looks like SQL", writeReq(ep(func(e *memoryv1.Episode) { e.Id = "1' OR '1'='1" })), codes.InvalidArgument, "episodes[0].id"},
		{"write importance above 1", writeReq(ep(func(e *memoryv1.Episode) { e.Importance = f(1.5) })), codes.InvalidArgument, "episodes[0].importance"},
		{"write infinite importance", writeReq(ep(func(e *memoryv1.Episode) { e.Importance = f(math.Inf(1)) })), codes.InvalidArgument, "episodes[0].importance"},
		{"write created_at in year 3000", writeReq(ep(func(e *memoryv1.Episode) { e.CreatedAt = ts(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)) })), codes.InvalidArgument, "episodes[0].created_at"},
		{"write 33 metadata entries", writeReq(ep(func(e *memoryv1.Episode) { e.Metadata = bigMeta })), codes.InvalidArgument, "episodes[0].metadata"},
		{"write oversized metadata key", writeReq(ep(func(e *memoryv1.Episode) { e.Metadata = map[string]string{strings.Repeat("k", 65): "v"} })), codes.InvalidArgument, "episodes[0].metadata.key"},
		{"write affect out of range", writeReq(ep(func(e *memoryv1.Episode) { e.Affect = &memoryv1.Affect{Valence: 2} })), codes.InvalidArgument, "episodes[0].affect.valence"},
		{"write the same id twice in a batch", writeReq(&memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
			{Id: dup, Namespace: ns, Content: "one"}, {Id: dup, Namespace: ns, Content: "two"}}}), codes.InvalidArgument, "episodes[1].id"},
		{"write beyond the message size limit", writeReq(ep(func(e *memoryv1.Episode) { e.Content = strings.Repeat("c", 5<<20) })), codes.ResourceExhausted, ""},

		{"get malformed id", func(ctx context.Context) error {
			_, err := mem.GetEpisode(ctx, &memoryv1.GetEpisodeRequest{Namespace: ns, Id: "../../etc/passwd"})
			return err
		}, codes.InvalidArgument, "id"},
		{"get empty id", func(ctx context.Context) error {
			_, err := mem.GetEpisode(ctx, &memoryv1.GetEpisodeRequest{Namespace: ns})
			return err
		}, codes.InvalidArgument, "id"},
		{"get absent id", func(ctx context.Context) error {
			_, err := mem.GetEpisode(ctx, &memoryv1.GetEpisodeRequest{Namespace: ns, Id: newID()})
			return err
		}, codes.NotFound, ""},
		{"list negative page size", func(ctx context.Context) error {
			_, err := mem.ListEpisodes(ctx, &memoryv1.ListEpisodesRequest{Namespace: ns, PageSize: -5})
			return err
		}, codes.InvalidArgument, "page_size"},
		{"list huge page size", func(ctx context.Context) error {
			_, err := mem.ListEpisodes(ctx, &memoryv1.ListEpisodesRequest{Namespace: ns, PageSize: math.MaxInt32})
			return err
		}, codes.InvalidArgument, "page_size"},
		{"list forged page token", func(ctx context.Context) error {
			_, err := mem.ListEpisodes(ctx, &memoryv1.ListEpisodesRequest{Namespace: ns, PageToken: "eyJpZCI6IjEifQ"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"record access no ids", func(ctx context.Context) error {
			_, err := mem.RecordAccess(ctx, &memoryv1.RecordAccessRequest{Namespace: ns})
			return err
		}, codes.InvalidArgument, "ids"},
		{"record access malformed id", func(ctx context.Context) error {
			_, err := mem.RecordAccess(ctx, &memoryv1.RecordAccessRequest{Namespace: ns, Ids: []string{newID(), "zzz"}})
			return err
		}, codes.InvalidArgument, "ids[1]"},
		{"record access 101 ids", func(ctx context.Context) error {
			_, err := mem.RecordAccess(ctx, &memoryv1.RecordAccessRequest{Namespace: ns, Ids: ids(101)})
			return err
		}, codes.InvalidArgument, "ids"},
		{"delete namespace empty", func(ctx context.Context) error {
			_, err := mem.DeleteNamespace(ctx, &memoryv1.DeleteNamespaceRequest{})
			return err
		}, codes.InvalidArgument, "namespace"},
		{"delete malformed id", func(ctx context.Context) error {
			_, err := mem.DeleteEpisode(ctx, &memoryv1.DeleteEpisodeRequest{Namespace: ns, Id: "%"})
			return err
		}, codes.InvalidArgument, "id"},
		{"stats oversized namespace", func(ctx context.Context) error {
			_, err := mem.GetStats(ctx, &memoryv1.GetStatsRequest{Namespace: long})
			return err
		}, codes.InvalidArgument, "namespace"},

		{"orchestrate empty query", run(&orchestratorv1.OrchestrateRequest{Namespace: ns}), codes.InvalidArgument, "query"},
		{"orchestrate empty namespace", run(&orchestratorv1.OrchestrateRequest{Query: "q"}), codes.InvalidArgument, "namespace"},
		{"orchestrate oversized query", run(&orchestratorv1.OrchestrateRequest{Namespace: ns, Query: strings.Repeat("q", 4097)}), codes.InvalidArgument, "query"},
		{"orchestrate oversized goal", run(&orchestratorv1.OrchestrateRequest{Namespace: ns, Query: "q", Goal: strings.Repeat("g", 1025)}), codes.InvalidArgument, "goal"},
		{"orchestrate emotion out of range", run(&orchestratorv1.OrchestrateRequest{Namespace: ns, Query: "q",
			CurrentEmotion: &orchestratorv1.Emotion{Valence: 5}}), codes.InvalidArgument, "current_emotion.valence"},
		{"orchestrate huge recall limit", run(&orchestratorv1.OrchestrateRequest{Namespace: ns, Query: "q",
			Options: &orchestratorv1.OrchestrateOptions{RecallLimit: math.MaxInt32}}), codes.InvalidArgument, "options."},
		{"orchestrate negative candidate pool", run(&orchestratorv1.OrchestrateRequest{Namespace: ns, Query: "q",
			Options: &orchestratorv1.OrchestrateOptions{CandidatePool: -1}}), codes.InvalidArgument, "options."},
		{"orchestrate budget of an hour", run(&orchestratorv1.OrchestrateRequest{Namespace: ns, Query: "q",
			Options: &orchestratorv1.OrchestrateOptions{Budget: durationpb.New(time.Hour)}}), codes.InvalidArgument, "options.budget"},
		{"orchestrate negative budget", run(&orchestratorv1.OrchestrateRequest{Namespace: ns, Query: "q",
			Options: &orchestratorv1.OrchestrateOptions{Budget: durationpb.New(-time.Second)}}), codes.InvalidArgument, "options.budget"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call(ctxFor(t, 5*time.Second))
			checkStatus(t, err, c.code, c.field)
		})
	}
}

// checkStatus fails unless err has code want and, for a field, a message
// naming it the way the validators do ("field: reason").
func checkStatus(t *testing.T, err error, want codes.Code, field string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if st.Message() == "" {
		t.Errorf("%s without a message", want)
	}
	if field != "" && !strings.Contains(st.Message(), field) {
		t.Errorf("message %q does not name %s", st.Message(), field)
	}
}

// testInvalidUTF8GRPC sends proto3 strings that are not UTF-8, as a client
// without Go's check can: the server must answer INVALID_ARGUMENT naming
// the field, not INTERNAL.
func testInvalidUTF8GRPC(t *testing.T, s *sharedStack) {
	str := func(b []byte, num protowire.Number, v string) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, v)
	}
	msg := func(b []byte, num protowire.Number, inner []byte) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, inner)
	}
	bad := "caf\xe9 \xff\xfe"
	recall := str(str(nil, 1, "utf8"), 2, bad)               // RecallRequest{namespace, query}
	writeEp := msg(nil, 1, str(str(nil, 2, "utf8"), 4, bad)) // WriteEpisodesRequest{episodes[0]{namespace, content}}
	nsBad := str(str(nil, 1, "ns\xc3"), 2, "fine")           // GetEpisodeRequest{namespace: bad}
	orch := str(str(nil, 1, "utf8"), 2, bad)                 // OrchestrateRequest{namespace, query}
	for _, c := range []struct {
		name, method string
		body         []byte
		field        string
	}{
		{"recall query", "/brain.memory.v1.MemoryService/Recall", recall, "query"},
		{"write content", "/brain.memory.v1.MemoryService/WriteEpisodes", writeEp, "episodes[0].content"},
		{"get namespace", "/brain.memory.v1.MemoryService/GetEpisode", nsBad, "namespace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := invokeRaw(ctxFor(t, 5*time.Second), s.memConn, c.method, c.body)
			checkStatus(t, err, codes.InvalidArgument, c.field)
		})
	}
	t.Run("orchestrate query", func(t *testing.T) {
		ctx := ctxFor(t, 5*time.Second)
		stream, err := s.orchConn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true},
			"/brain.orchestrator.v1.OrchestratorService/Orchestrate", grpc.ForceCodecV2(rawCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.SendMsg(&rawFrame{b: orch}); err != nil {
			t.Fatal(err)
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		var out rawFrame
		err = stream.RecvMsg(&out)
		checkStatus(t, err, codes.InvalidArgument, "query")
	})
	s.alive(t)
}

// jsonCase is a bad JSON request and the HTTP status it must get.
type jsonCase struct {
	name, method, path, body string
	status                   int
	// field, when set, must appear in the error message.
	field string
}

func testBadJSON(t *testing.T, s *sharedStack) {
	ns := namespace("badjson")
	cases := []jsonCase{
		{"truncated JSON", "POST", "/v1/memory/episodes:recall", `{"namespace":`, 400, ""},
		{"not an object", "POST", "/v1/memory/episodes:recall", `["namespace"]`, 400, ""},
		{"namespace as a number", "POST", "/v1/memory/episodes:recall", `{"namespace":5,"query":"q"}`, 400, ""},
		{"limit as words", "POST", "/v1/memory/episodes:recall", `{"namespace":"n","query":"q","limit":"ten"}`, 400, ""},
		{"limit beyond int32", "POST", "/v1/memory/episodes:recall", `{"namespace":"n","query":"q","limit":99999999999}`, 400, ""},
		{"limit negative", "POST", "/v1/memory/episodes:recall", `{"namespace":"n","query":"q","limit":-1}`, 400, "limit"},
		{"query as a list", "POST", "/v1/memory/episodes:recall", `{"namespace":"n","query":["a"]}`, 400, ""},
		{"unknown enum name", "POST", "/v1/memory/episodes:recall", `{"namespace":"n","query":"q","match":"MATCH_MODE_REGEX"}`, 400, ""},
		{"unknown field", "POST", "/v1/memory/episodes:recall", `{"namespace":"n","query":"q","bogus":1}`, 400, "bogus"},
		{"empty query", "POST", "/v1/memory/episodes:recall", `{"namespace":"n","query":""}`, 400, "query"},
		{"invalid UTF-8", "POST", "/v1/memory/episodes:recall", "{\"namespace\":\"n\",\"query\":\"caf\xe9\"}", 400, ""},
		{"bad timestamp", "POST", "/v1/memory/episodes:recall", `{"namespace":"n","query":"q","asOf":"yesterday"}`, 400, ""},
		{"episodes as an object", "POST", "/v1/memory/episodes:write", `{"episodes":{}}`, 400, ""},
		{"episode unknown field", "POST", "/v1/memory/episodes:write", `{"episodes":[{"namespace":"n","content":"c","sql":"DROP"}]}`, 400, "sql"},
		{"episode NaN importance", "POST", "/v1/memory/episodes:write", `{"episodes":[{"namespace":"n","content":"c","importance":"NaN"}]}`, 400, "importance"},
		{"episode empty content", "POST", "/v1/memory/episodes:write", `{"episodes":[{"namespace":"n","content":""}]}`, 400, "content"},
		{"episode malformed id", "POST", "/v1/memory/episodes:write", `{"episodes":[{"id":"42","namespace":"n","content":"c"}]}`, 400, "id"},
		{"get malformed id", "GET", "/v1/memory/namespaces/" + ns + "/episodes/not-a-uuid", "", 400, "id"},
		{"get absent episode", "GET", "/v1/memory/namespaces/" + ns + "/episodes/" + newID(), "", 404, ""},
		{"list negative page size", "GET", "/v1/memory/namespaces/" + ns + "/episodes?pageSize=-1", "", 400, "page_size"},
		{"list page size as words", "GET", "/v1/memory/namespaces/" + ns + "/episodes?pageSize=many", "", 400, ""},
		{"list page size beyond int32", "GET", "/v1/memory/namespaces/" + ns + "/episodes?pageSize=99999999999", "", 400, ""},
		{"list unknown query parameter", "GET", "/v1/memory/namespaces/" + ns + "/episodes?pagesize=10", "", 400, "pagesize"},
		{"record access malformed id", "POST", "/v1/memory/episodes:recordAccess", `{"namespace":"n","ids":["x"]}`, 400, "ids[0]"},
		{"orchestrate without query", "POST", "/v1/orchestrate", `{"namespace":"n"}`, 400, "query"},
		{"orchestrate unknown field", "POST", "/v1/orchestrate", `{"namespace":"n","query":"q","mode":"fast"}`, 400, "mode"},
		{"orchestrate budget not a duration", "POST", "/v1/orchestrate", `{"namespace":"n","query":"q","options":{"budget":"soon"}}`, 400, ""},
		{"orchestrate budget too long", "POST", "/v1/orchestrate", `{"namespace":"n","query":"q","options":{"budget":"3600s"}}`, 400, "options.budget"},
		{"orchestrate huge recall limit", "POST", "/v1/orchestrate", `{"namespace":"n","query":"q","options":{"recallLimit":2147483647}}`, 400, "options."},
		{"orchestrate invalid UTF-8", "POST", "/v1/orchestrate", "{\"namespace\":\"n\",\"query\":\"\xff\"}", 400, ""},
	}
	for _, base := range []struct{ name, url string }{{"front door", s.orchHTTP}, {"memory", s.memHTTP}} {
		t.Run(base.name, func(t *testing.T) {
			for _, c := range cases {
				if base.url == s.memHTTP && strings.HasPrefix(c.path, "/v1/orchestrate") {
					continue // memory does not serve the orchestrator's routes
				}
				t.Run(c.name, func(t *testing.T) {
					status, body := httpDo(t, c.method, base.url+c.path, c.body)
					if status != c.status {
						t.Fatalf("%s %s %s = %d %s, want %d", c.method, c.path, c.body, status, body, c.status)
					}
					m := decodeJSON(t, body)
					if e, ok := m["error"].(map[string]any); ok {
						m = e // a stream's error comes wrapped: {"error": {...}}
					}
					msg, _ := m["message"].(string)
					if msg == "" {
						t.Errorf("error body without a message: %s", body)
					}
					if c.field != "" && !strings.Contains(msg, c.field) {
						t.Errorf("message %q does not name %s", msg, c.field)
					}
				})
			}
		})
	}

	// A body beyond MAX_RECV_BYTES (4 MiB) is refused, whole, without
	// taking the server down.
	big := `{"episodes":[{"namespace":"n","content":"` + strings.Repeat("c", 5<<20) + `"}]}`
	status, body := httpDo(t, "POST", s.orchHTTP+"/v1/memory/episodes:write", big)
	if status != 400 && status != 413 {
		t.Errorf("5 MiB body = %d %.200s, want 400 or 413", status, body)
	}
	s.alive(t)
}

// testLikeMetacharacters: %, _ and \ in a substring query match themselves
// only (the prototype's ILIKE took them as wildcards).
func testLikeMetacharacters(t *testing.T, s *sharedStack) {
	ns := namespace("like")
	contents := []string{"discount 100% off", "discount 1000 off", "see file_name.txt", "see fileXname.txt", `path C:\temp\x`, "plain text"}
	var eps []*memoryv1.Episode
	for _, c := range contents {
		eps = append(eps, &memoryv1.Episode{Namespace: ns, Content: c})
	}
	write(t, s.memory, eps...)
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"100%", []string{"discount 100% off"}},
		{"%", []string{"discount 100% off"}},
		{"file_name", []string{"see file_name.txt"}},
		{"_", []string{"see file_name.txt"}},
		{`\temp`, []string{`path C:\temp\x`}},
		{`%_\`, nil},
		{"FILE_NAME", []string{"see file_name.txt"}}, // case-insensitive, as ILIKE
	} {
		resp, err := s.memory.Recall(ctxFor(t, 5*time.Second), &memoryv1.RecallRequest{
			Namespace: ns, Query: c.query, Match: memoryv1.MatchMode_MATCH_MODE_SUBSTRING})
		if err != nil {
			t.Fatalf("substring recall %q: %v", c.query, err)
		}
		var got []string
		for _, e := range resp.GetEpisodes() {
			got = append(got, e.GetEpisode().GetContent())
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") || resp.GetDegraded() {
			t.Errorf("substring recall %q = %q (degraded %v), want %q", c.query, got, resp.GetDegraded(), c.want)
		}
	}
	// Ranked recall takes the same characters as separators, not syntax.
	for _, q := range []string{"100% & | ! :*", `'(" <-> \`, "%%%"} {
		resp, err := s.memory.Recall(ctxFor(t, 5*time.Second), &memoryv1.RecallRequest{Namespace: ns, Query: q})
		if err != nil || resp.GetDegraded() {
			t.Errorf("ranked recall %q: %v (degraded %v)", q, err, resp.GetDegraded())
		}
	}
}

// testInjectionLooking: strings that look like SQL are data: stored and
// returned byte for byte, scoped to their namespace, and nothing else moves.
func testInjectionLooking(t *testing.T, s *sharedStack) {
	victim := namespace("victim")
	write(t, s.memory, &memoryv1.Episode{Namespace: victim, Content: "the victim's only memory"})
	// A namespace that looks like SQL is outside the namespace alphabet:
	// refused at the door, nothing stored.
	if _, err := s.memory.WriteEpisodes(ctxFor(t, 5*time.Second), &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
		{Namespace: "x'; DROP TABLE episodes; --", Content: "c"}}}); code(err) != codes.InvalidArgument {
		t.Fatalf("injection-looking namespace: %v, want INVALID_ARGUMENT", err)
	}
	evilNS := namespace("x--drop-table-episodes")
	content := `Robert'); DROP TABLE episodes;-- $1 \x00 %s {{.}} <script>`
	stored := write(t, s.memory, &memoryv1.Episode{Namespace: evilNS, Content: content, SessionId: `" OR ""="`,
		Metadata: map[string]string{"'; DELETE FROM episodes; --": "1=1"}})
	got, err := s.memory.GetEpisode(ctxFor(t, 5*time.Second), &memoryv1.GetEpisodeRequest{Namespace: evilNS, Id: stored[0].GetId()})
	if err != nil || got.GetEpisode().GetContent() != content || got.GetEpisode().GetMetadata()["'; DELETE FROM episodes; --"] != "1=1" {
		t.Fatalf("injection-looking episode came back as %v, %v", got.GetEpisode(), err)
	}
	for _, q := range []string{"' OR '1'='1", "Robert'); DROP TABLE episodes;--", "1; SELECT pg_sleep(10)"} {
		for _, mode := range []memoryv1.MatchMode{memoryv1.MatchMode_MATCH_MODE_RANKED, memoryv1.MatchMode_MATCH_MODE_SUBSTRING} {
			start := time.Now()
			resp, err := s.memory.Recall(ctxFor(t, 5*time.Second), &memoryv1.RecallRequest{Namespace: evilNS, Query: q, Match: mode})
			if err != nil || resp.GetDegraded() || time.Since(start) > time.Second {
				t.Fatalf("recall %q (%s): %v, degraded %v, took %s", q, mode, err, resp.GetDegraded(), time.Since(start))
			}
			for _, e := range resp.GetEpisodes() {
				if e.GetEpisode().GetNamespace() != evilNS {
					t.Errorf("recall in %q returned an episode of %q", evilNS, e.GetEpisode().GetNamespace())
				}
			}
		}
	}
	// Orchestrate with the same strings streams a full run.
	orchestrate(ctxFor(t, 10*time.Second), s.orchestrator, &orchestratorv1.OrchestrateRequest{
		Namespace: evilNS, Query: "Robert'); DROP TABLE episodes;--", Goal: "' OR 1=1 --", SessionId: `"; --`}).complete(t)
	// The table and the other namespace are untouched.
	if eps := listAll(t, s.memory, victim); len(eps) != 1 || eps[0].GetContent() != "the victim's only memory" {
		t.Fatalf("victim namespace after the injection attempts: %v", eps)
	}
	if eps := listAll(t, s.memory, evilNS); len(eps) != 1 {
		t.Fatalf("%d episodes in the evil namespace, want 1", len(eps))
	}
}

// testUnknownNamespace: a namespace nobody wrote to is empty, not an error.
func testUnknownNamespace(t *testing.T, s *sharedStack) {
	ns := namespace("nobody")
	resp, err := s.memory.Recall(ctxFor(t, 5*time.Second), &memoryv1.RecallRequest{Namespace: ns, Query: "anything at all"})
	if err != nil || len(resp.GetEpisodes()) != 0 || resp.GetDegraded() || resp.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_POSTGRES {
		t.Errorf("recall in an unknown namespace: %v, %v", resp, err)
	}
	if eps := listAll(t, s.memory, ns); len(eps) != 0 {
		t.Errorf("list of an unknown namespace: %d episodes", len(eps))
	}
	st, err := s.memory.GetStats(ctxFor(t, 5*time.Second), &memoryv1.GetStatsRequest{Namespace: ns})
	if err != nil || st.GetEpisodeCount() != 0 || !st.GetPostgresAvailable() {
		t.Errorf("stats of an unknown namespace: %v, %v", st, err)
	}
	del, err := s.memory.DeleteNamespace(ctxFor(t, 5*time.Second), &memoryv1.DeleteNamespaceRequest{Namespace: ns})
	if err != nil || del.GetDeleted() != 0 {
		t.Errorf("delete of an unknown namespace: %v, %v", del, err)
	}
	r := orchestrate(ctxFor(t, 10*time.Second), s.orchestrator, &orchestratorv1.OrchestrateRequest{Namespace: ns, Query: "anything at all"})
	r.complete(t)
	if wm := r.labs["LAB_011"].GetWorkingMemory(); len(wm.GetItems()) != 0 || wm.GetDegraded() {
		t.Errorf("LAB_011 in an unknown namespace: %v", wm)
	}
}
