package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/e2e/internal/stack"
	"github.com/brainhq/brain/services/kit/pgtest"
	"github.com/brainhq/brain/services/memory/episode"
)

// storeStack is memory and the front door over a database the test can
// also reach directly (to plant rows the API would no longer accept).
type storeStack struct {
	*sharedStack
	dbURL string
}

func startStoreStack(t *testing.T) *storeStack {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	return &storeStack{sharedStack: startStackOn(t, dbURL, false), dbURL: dbURL}
}

// TestHardeningStore covers the store's limits, id spellings, blank text
// and the namespace alphabet, the way clients reach them: gRPC and JSON.
func TestHardeningStore(t *testing.T) {
	skipShort(t)
	s := startStoreStack(t)
	t.Run("LimitsAtMaxAndOnePast", func(t *testing.T) { testLimitsAtMaxAndOnePast(t, s) })
	t.Run("IDSpellings", func(t *testing.T) { testIDSpellings(t, s) })
	t.Run("BlankContentAndQuery", func(t *testing.T) { testBlankContentAndQuery(t, s) })
	t.Run("NamespacePunctuationOnEveryRoute", func(t *testing.T) { testNamespacePunctuation(t, s) })
	t.Run("LegacyNamespaceErasableOverGRPC", func(t *testing.T) { testLegacyNamespaceErasable(t, s) })
	s.alive(t)
}

// bothWays sends a WriteEpisodes request over gRPC and as JSON to memory's
// HTTP port and returns the gRPC error and the HTTP status and body.
func writeBothWays(t *testing.T, s *storeStack, req *memoryv1.WriteEpisodesRequest) (error, int, []byte) {
	t.Helper()
	_, gerr := s.memory.WriteEpisodes(ctxFor(t, 20*time.Second), req)
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	code, resp := httpDo(t, "POST", s.memHTTP+"/v1/memory/episodes:write", string(body))
	return gerr, code, resp
}

// wantRejected fails unless both answers refuse the request naming field.
func wantRejected(t *testing.T, what string, gerr error, code int, body []byte, field string) {
	t.Helper()
	if status.Code(gerr) != codes.InvalidArgument || !strings.Contains(status.Convert(gerr).Message(), field+":") {
		t.Errorf("%s over gRPC: %v, want INVALID_ARGUMENT naming %s", what, gerr, field)
	}
	if code != http.StatusBadRequest || !strings.Contains(string(body), field+":") {
		t.Errorf("%s over JSON: HTTP %d %s, want 400 naming %s", what, code, truncateBody(body), field)
	}
}

func wantAccepted(t *testing.T, what string, gerr error, code int, body []byte) {
	t.Helper()
	if gerr != nil {
		t.Errorf("%s over gRPC: %v", what, gerr)
	}
	if code != http.StatusOK {
		t.Errorf("%s over JSON: HTTP %d %s", what, code, truncateBody(body))
	}
}

func truncateBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

func testLimitsAtMaxAndOnePast(t *testing.T, s *storeStack) {
	ns := namespace("limits")
	meta := func(entries, keyBytes, valueBytes int) map[string]string {
		m := make(map[string]string, entries)
		for i := range entries {
			p := fmt.Sprintf("%02d", i)
			m[p+strings.Repeat("k", keyBytes-len(p))] = strings.Repeat("v", valueBytes)
		}
		return m
	}
	// Distinct words, as real text has, so the index does real work.
	words := func(n int) string {
		var b strings.Builder
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "w%x ", i)
		}
		return b.String()[:n]
	}
	one := func(mod func(*memoryv1.Episode)) *memoryv1.WriteEpisodesRequest {
		e := &memoryv1.Episode{Namespace: ns, Content: "limits"}
		mod(e)
		return &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{e}}
	}
	cases := []struct {
		field          string
		atMax, pastMax func(*memoryv1.Episode)
	}{
		{"episodes[0].content",
			func(e *memoryv1.Episode) { e.Content = words(episode.MaxContentBytes) },
			func(e *memoryv1.Episode) { e.Content = words(episode.MaxContentBytes + 1) }},
		{"episodes[0].namespace",
			func(e *memoryv1.Episode) { e.Namespace = ns + strings.Repeat("n", episode.MaxNamespaceBytes-len(ns)) },
			func(e *memoryv1.Episode) { e.Namespace = ns + strings.Repeat("n", episode.MaxNamespaceBytes+1-len(ns)) }},
		{"episodes[0].session_id",
			func(e *memoryv1.Episode) { e.SessionId = strings.Repeat("s", episode.MaxSessionBytes) },
			func(e *memoryv1.Episode) { e.SessionId = strings.Repeat("s", episode.MaxSessionBytes+1) }},
		{"episodes[0].metadata",
			func(e *memoryv1.Episode) {
				e.Metadata = meta(episode.MaxMetadataEntries, episode.MaxMetadataKeyBytes, episode.MaxMetadataValueBytes)
			},
			func(e *memoryv1.Episode) { e.Metadata = meta(episode.MaxMetadataEntries+1, 4, 1) }},
		{"episodes[0].metadata.key",
			func(e *memoryv1.Episode) { e.Metadata = meta(1, episode.MaxMetadataKeyBytes, 1) },
			func(e *memoryv1.Episode) { e.Metadata = meta(1, episode.MaxMetadataKeyBytes+1, 1) }},
		{"episodes[0].metadata[00]",
			func(e *memoryv1.Episode) { e.Metadata = meta(1, 2, episode.MaxMetadataValueBytes) },
			func(e *memoryv1.Episode) { e.Metadata = meta(1, 2, episode.MaxMetadataValueBytes+1) }},
	}
	for _, c := range cases {
		req := one(c.atMax)
		gerr, code, body := writeBothWays(t, s, req)
		wantAccepted(t, c.field+" at its maximum", gerr, code, body)
		if code == http.StatusOK {
			// Read back what JSON stored: nothing was cut.
			var resp memoryv1.WriteEpisodesResponse
			if err := protojson.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			e := resp.GetEpisodes()[0]
			got, err := s.memory.GetEpisode(ctxFor(t, 5*time.Second), &memoryv1.GetEpisodeRequest{Namespace: e.GetNamespace(), Id: e.GetId()})
			want := req.GetEpisodes()[0]
			if err != nil || got.GetEpisode().GetContent() != want.GetContent() || got.GetEpisode().GetSessionId() != want.GetSessionId() ||
				len(got.GetEpisode().GetMetadata()) != len(want.GetMetadata()) {
				t.Errorf("%s at its maximum read back: %v", c.field, err)
			}
		}
		gerr, code, body = writeBothWays(t, s, one(c.pastMax))
		wantRejected(t, c.field+" one past its maximum", gerr, code, body, c.field)
	}

	// Batch size.
	batch := func(n int) *memoryv1.WriteEpisodesRequest {
		req := &memoryv1.WriteEpisodesRequest{}
		for i := range n {
			req.Episodes = append(req.Episodes, &memoryv1.Episode{Namespace: ns + "-batch", Content: fmt.Sprintf("batch item %d", i)})
		}
		return req
	}
	gerr, code, body := writeBothWays(t, s, batch(episode.MaxBatch))
	wantAccepted(t, "a batch at its maximum", gerr, code, body)
	gerr, code, body = writeBothWays(t, s, batch(episode.MaxBatch+1))
	wantRejected(t, "a batch one past its maximum", gerr, code, body, "episodes")

	// Query size.
	for _, tc := range []struct {
		n  int
		ok bool
	}{{episode.MaxQueryBytes, true}, {episode.MaxQueryBytes + 1, false}} {
		q := words(tc.n)
		_, gerr := s.memory.Recall(ctxFor(t, 10*time.Second), &memoryv1.RecallRequest{Namespace: ns, Query: q})
		b, _ := json.Marshal(map[string]string{"namespace": ns, "query": q})
		code, body := httpDo(t, "POST", s.memHTTP+"/v1/memory/episodes:recall", string(b))
		if tc.ok {
			wantAccepted(t, "a query at its maximum", gerr, code, body)
		} else {
			wantRejected(t, "a query one past its maximum", gerr, code, body, "query")
		}
	}
}

func testIDSpellings(t *testing.T, s *storeStack) {
	ns := namespace("ids")
	u := newID()
	// One id in two cases is one id: the batch is refused, nothing stored.
	gerr, code, body := writeBothWays(t, s, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
		{Namespace: ns, Id: u, Content: "lower case"}, {Namespace: ns, Id: strings.ToUpper(u), Content: "upper case"}}})
	wantRejected(t, "one id in two cases", gerr, code, body, "episodes[1].id")
	if got := listAll(t, s.memory, ns); len(got) != 0 {
		t.Fatalf("refused batch stored %d episodes", len(got))
	}
	// Either case names the same episode everywhere; it is echoed in lower case.
	stored := write(t, s.memory, &memoryv1.Episode{Namespace: ns, Id: strings.ToUpper(u), Content: "stored once"})
	if stored[0].GetId() != u {
		t.Fatalf("id %q echoed as %q, want lower case", strings.ToUpper(u), stored[0].GetId())
	}
	if _, err := s.memory.GetEpisode(ctxFor(t, 5*time.Second), &memoryv1.GetEpisodeRequest{Namespace: ns, Id: strings.ToUpper(u)}); err != nil {
		t.Fatalf("GetEpisode in upper case: %v", err)
	}
	// Spellings uuid.Parse takes but the API does not are refused by every call alike.
	for _, id := range []string{"{" + u + "}", "urn:uuid:" + u, strings.ReplaceAll(u, "-", "")} {
		_, err := s.memory.WriteEpisodes(ctxFor(t, 5*time.Second), &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
			{Namespace: ns, Id: id, Content: "x"}}})
		wantCode(t, "WriteEpisodes "+id, err, "episodes[0].id")
		_, err = s.memory.GetEpisode(ctxFor(t, 5*time.Second), &memoryv1.GetEpisodeRequest{Namespace: ns, Id: id})
		wantCode(t, "GetEpisode "+id, err, "id")
		_, err = s.memory.DeleteEpisode(ctxFor(t, 5*time.Second), &memoryv1.DeleteEpisodeRequest{Namespace: ns, Id: id})
		wantCode(t, "DeleteEpisode "+id, err, "id")
		_, err = s.memory.RecordAccess(ctxFor(t, 5*time.Second), &memoryv1.RecordAccessRequest{Namespace: ns, Ids: []string{id}})
		wantCode(t, "RecordAccess "+id, err, "ids[0]")
	}
	if got := listAll(t, s.memory, ns); len(got) != 1 {
		t.Fatalf("namespace holds %d episodes, want 1", len(got))
	}
}

func wantCode(t *testing.T, what string, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), field+":") {
		t.Errorf("%s: %v, want INVALID_ARGUMENT naming %s", what, err, field)
	}
}

func testBlankContentAndQuery(t *testing.T, s *storeStack) {
	ns := namespace("blank")
	for _, blank := range []string{" ", "\n\t \r\n", "\u00a0\u2003"} {
		gerr, code, body := writeBothWays(t, s, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
			{Namespace: ns, Content: blank}}})
		wantRejected(t, fmt.Sprintf("content %q", blank), gerr, code, body, "episodes[0].content")
		_, gerr = s.memory.Recall(ctxFor(t, 5*time.Second), &memoryv1.RecallRequest{Namespace: ns, Query: blank})
		b, _ := json.Marshal(map[string]string{"namespace": ns, "query": blank})
		code, body = httpDo(t, "POST", s.memHTTP+"/v1/memory/episodes:recall", string(b))
		wantRejected(t, fmt.Sprintf("query %q", blank), gerr, code, body, "query")
	}
	if got := listAll(t, s.memory, ns); len(got) != 0 {
		t.Fatalf("blank content stored: %d episodes", len(got))
	}
}

// testNamespacePunctuation runs every HTTP route, on both ports, with a
// namespace holding each punctuation character the alphabet allows, put
// in the path as is and percent-encoded (as encodeURIComponent does).
func testNamespacePunctuation(t *testing.T, s *storeStack) {
	for _, c := range []string{".", "_", "-", ":", "@", ".:@_-"} {
		for _, base := range []string{s.memHTTP, s.orchHTTP} {
			for _, encode := range []bool{false, true} {
				ns := namespace("p") + c + "x"
				seg := ns
				if encode {
					seg = url.QueryEscape(ns) // escapes ':' and '@' too
				}
				t.Run(fmt.Sprintf("%q/%s/encoded=%v", c, strings.TrimPrefix(base, "http://"), encode), func(t *testing.T) {
					routesWork(t, base, ns, seg)
				})
			}
		}
	}
	// A namespace with '/' (or '*', or a space) is refused at the door.
	for _, ns := range []string{"a/b", "a*", "a b"} {
		gerr, code, body := writeBothWays(t, s, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{Namespace: ns, Content: "x"}}})
		wantRejected(t, fmt.Sprintf("namespace %q", ns), gerr, code, body, "episodes[0].namespace")
	}
}

func routesWork(t *testing.T, base, ns, seg string) {
	t.Helper()
	must := func(what string, code int, body []byte) map[string]any {
		t.Helper()
		if code != http.StatusOK {
			t.Fatalf("%s: HTTP %d %s", what, code, truncateBody(body))
		}
		return decodeJSON(t, body)
	}
	wb, _ := json.Marshal(map[string]any{"episodes": []map[string]any{{"namespace": ns, "content": "the punctuated namespace keeps its lighthouse"}}})
	code, body := httpDo(t, "POST", base+"/v1/memory/episodes:write", string(wb))
	eps := must("write", code, body)["episodes"].([]any)
	ep := eps[0].(map[string]any)
	id := ep["id"].(string)
	if ep["namespace"] != ns {
		t.Fatalf("write echoed namespace %v, want %q", ep["namespace"], ns)
	}
	rb, _ := json.Marshal(map[string]any{"namespace": ns, "query": "lighthouse"})
	code, body = httpDo(t, "POST", base+"/v1/memory/episodes:recall", string(rb))
	if got := must("recall", code, body)["episodes"]; got == nil || len(got.([]any)) != 1 {
		t.Fatalf("recall: %s", body)
	}
	code, body = httpDo(t, "GET", base+"/v1/memory/namespaces/"+seg+"/episodes/"+id, "")
	if got := must("get", code, body)["episode"].(map[string]any); got["namespace"] != ns {
		t.Fatalf("get: %s", body)
	}
	code, body = httpDo(t, "GET", base+"/v1/memory/namespaces/"+seg+"/episodes", "")
	if got := must("list", code, body)["episodes"]; got == nil || len(got.([]any)) != 1 {
		t.Fatalf("list: %s", body)
	}
	ab, _ := json.Marshal(map[string]any{"namespace": ns, "ids": []string{id}})
	code, body = httpDo(t, "POST", base+"/v1/memory/episodes:recordAccess", string(ab))
	if got := must("record access", code, body)["updated"]; got != float64(1) {
		t.Fatalf("record access: %s", body)
	}
	code, body = httpDo(t, "GET", base+"/v1/memory/stats?namespace="+url.QueryEscape(ns), "")
	if got := must("stats", code, body)["episodeCount"]; got != "1" {
		t.Fatalf("stats: %s", body)
	}
	code, body = httpDo(t, "DELETE", base+"/v1/memory/namespaces/"+seg+"/episodes/"+id, "")
	if got := must("delete episode", code, body)["deleted"]; got != true {
		t.Fatalf("delete episode: %s", body)
	}
	// One more, so that erasing the namespace has something to count.
	code, body = httpDo(t, "POST", base+"/v1/memory/episodes:write", string(wb))
	must("write again", code, body)
	code, body = httpDo(t, "DELETE", base+"/v1/memory/namespaces/"+seg, "")
	if got := must("delete namespace", code, body)["deleted"]; got != "1" {
		t.Fatalf("delete namespace: %s", body)
	}
}

// testLegacyNamespaceErasable plants episodes under names the alphabet no
// longer admits (as a database written by an older version holds them):
// nothing reads them, but DeleteNamespace and DeleteEpisode over gRPC
// still erase them.
func testLegacyNamespaceErasable(t *testing.T, s *storeStack) {
	ctx := ctxFor(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, ns := range []string{"legacy/with slash", "tenant*", " café "} {
		ids := []string{newID(), newID()}
		for _, id := range ids {
			if _, err := conn.Exec(ctx, `INSERT INTO episodes (namespace, id, content, created_at) VALUES ($1, $2, 'legacy words', now())`, ns, id); err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.memory.ListEpisodes(ctxFor(t, 5*time.Second), &memoryv1.ListEpisodesRequest{Namespace: ns})
		wantCode(t, fmt.Sprintf("ListEpisodes %q", ns), err, "namespace")
		de, err := s.memory.DeleteEpisode(ctxFor(t, 5*time.Second), &memoryv1.DeleteEpisodeRequest{Namespace: ns, Id: ids[0]})
		if err != nil || !de.GetDeleted() {
			t.Fatalf("DeleteEpisode in legacy %q: %v %v", ns, de, err)
		}
		dn, err := s.memory.DeleteNamespace(ctxFor(t, 10*time.Second), &memoryv1.DeleteNamespaceRequest{Namespace: ns})
		if err != nil || dn.GetDeleted() != 1 {
			t.Fatalf("DeleteNamespace legacy %q: %v %v, want 1 deleted", ns, dn, err)
		}
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM episodes WHERE namespace = $1`, ns).Scan(&left); err != nil || left != 0 {
			t.Fatalf("legacy %q: %d episodes left (%v)", ns, left, err)
		}
	}
}

// TestHardeningStoreLargeWorkFitsItsBudget: a batch of 50 × 15 KB of
// distinct words takes PostgreSQL longer than one query's time even when it
// is healthy. It got UNAVAILABLE every time (so a retry never helped); its
// budget now grows with its bytes, and the pool's statement_timeout does
// not cut it short. QUERY_TIMEOUT and PG_STATEMENT_TIMEOUT are set well
// below what the batch needs, so the test shows the budget, not a fast
// machine.
func TestHardeningStoreLargeWorkFitsItsBudget(t *testing.T) {
	skipShort(t)
	dbURL := pgtest.NewDatabase(t)
	mem := stack.StartMemory(t, bins.Memory, stack.MemoryConfig{
		Postgres: stack.Postgres{URL: dbURL},
		Env:      []string{"QUERY_TIMEOUT=300ms", "PG_STATEMENT_TIMEOUT=300ms"},
	})
	if _, err := stack.WaitListening(mem.GRPCAddr, mem.Started, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	conn := stack.Dial(t, mem.GRPCAddr)
	stack.MustWaitHealth(t, conn, "postgres", stack.Serving, mem.Started, 5*time.Second)
	client := memoryv1.NewMemoryServiceClient(conn)

	ns := namespace("large")
	var seed uint64 = 1
	words := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			seed = seed*6364136223846793005 + 1442695040888963407
			fmt.Fprintf(&b, "q%x ", seed>>40)
		}
		return b.String()[:n]
	}
	batch := func(ids []string) *memoryv1.WriteEpisodesRequest {
		req := &memoryv1.WriteEpisodesRequest{}
		for _, id := range ids {
			req.Episodes = append(req.Episodes, &memoryv1.Episode{Id: id, Namespace: ns, Content: words(15_000)})
		}
		return req
	}
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = newID()
	}
	for _, what := range []string{"insert", "rewrite with new content"} {
		start := time.Now()
		_, err := client.WriteEpisodes(ctxFor(t, time.Minute), batch(ids))
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s of 50 × 15 KB under QUERY_TIMEOUT=300ms: %v after %s", what, err, took)
		}
		t.Logf("%s of 50 × 15 KB: %s", what, took.Round(time.Millisecond))
		measured.Duration("write 50 × 15 KB distinct words, "+what+" (QUERY_TIMEOUT=300ms)", took, "")
	}
	st, err := client.GetStats(ctxFor(t, 5*time.Second), &memoryv1.GetStatsRequest{Namespace: ns})
	if err != nil || st.GetEpisodeCount() != 50 {
		t.Fatalf("stats after insert and rewrite: %v %v, want 50 episodes", st, err)
	}

	// A namespace whose erase takes longer than one query: it was one
	// statement under QUERY_TIMEOUT, so it could never be erased; now it
	// goes in bounded batches, and the count is still exact.
	const many = 12_000
	big := namespace("erase")
	for i := 0; i < many; i += episode.MaxBatch {
		req := &memoryv1.WriteEpisodesRequest{}
		for j := i; j < i+episode.MaxBatch; j++ {
			req.Episodes = append(req.Episodes, &memoryv1.Episode{Namespace: big,
				Content: fmt.Sprintf("harbour log %d: the tide turned, the lighthouse keeper wrote %s", j, words(120))})
		}
		if _, err := client.WriteEpisodes(ctxFor(t, time.Minute), req); err != nil {
			t.Fatalf("fill %s: %v", big, err)
		}
	}
	start := time.Now()
	dn, err := client.DeleteNamespace(ctxFor(t, 2*time.Minute), &memoryv1.DeleteNamespaceRequest{Namespace: big})
	took := time.Since(start)
	if err != nil || dn.GetDeleted() != many {
		t.Fatalf("DeleteNamespace of %d episodes under QUERY_TIMEOUT=300ms: %v %v after %s", many, dn, err, took)
	}
	t.Logf("erased %d episodes in %s", many, took.Round(time.Millisecond))
	measured.Duration(fmt.Sprintf("DeleteNamespace of %d episodes (QUERY_TIMEOUT=300ms)", many), took, "")
	if st, err := client.GetStats(ctxFor(t, 5*time.Second), &memoryv1.GetStatsRequest{Namespace: big}); err != nil || st.GetEpisodeCount() != 0 {
		t.Fatalf("stats after the erase: %v %v", st, err)
	}
}
