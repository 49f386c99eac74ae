package app

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/pgtest"
)

// TestWorkingMemoryRPCs: the working-memory calls end to end over gRPC and
// JSON against PostgreSQL: an unknown session is empty at version 0, a put
// advances the version by one, a stale version is ABORTED, bad input is
// INVALID_ARGUMENT naming the field, and deletes reach the buffers.
func TestWorkingMemoryRPCs(t *testing.T) {
	r := startApp(t, testConfig(t, pgtest.NewDatabase(t)))
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	ctx := ctxT(t)
	w, err := r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
		{Namespace: "alice", Content: "one"}, {Namespace: "alice", Content: "two"}, {Namespace: "bob", Content: "bob's"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a1, a2, b1 := w.GetEpisodes()[0].GetId(), w.GetEpisodes()[1].GetId(), w.GetEpisodes()[2].GetId()

	got, err := r.client.GetWorkingMemory(ctx, &memoryv1.GetWorkingMemoryRequest{Namespace: "alice", SessionId: "s1"})
	if err != nil || got.GetWorkingMemory().GetVersion() != 0 || len(got.GetWorkingMemory().GetItems()) != 0 {
		t.Fatalf("unknown session: %v %v, want empty at version 0", got, err)
	}
	item := func(id string) *memoryv1.WorkingMemoryItem {
		return &memoryv1.WorkingMemoryItem{EpisodeId: id, Content: "c", Origin: memoryv1.Origin_ORIGIN_RECALLED, Attention: 0.5}
	}
	for v := int64(0); v < 3; v++ {
		put, err := r.client.PutWorkingMemory(ctx, &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: "s1",
			ExpectedVersion: v, Items: []*memoryv1.WorkingMemoryItem{item(a1), item(a2)}})
		if err != nil || put.GetWorkingMemory().GetVersion() != v+1 {
			t.Fatalf("put at version %d: %v %v, want version %d", v, put, err, v+1)
		}
	}
	_, err = r.client.PutWorkingMemory(ctx, &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: "s1", ExpectedVersion: 1})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("stale version: %v, want ABORTED", err)
	}

	bad := []struct {
		name  string
		req   *memoryv1.PutWorkingMemoryRequest
		field string
	}{
		{"no session", &memoryv1.PutWorkingMemoryRequest{Namespace: "alice"}, "session_id"},
		{"long session", &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: strings.Repeat("s", 129)}, "session_id"},
		{"bad namespace", &memoryv1.PutWorkingMemoryRequest{Namespace: "a/b", SessionId: "s"}, "namespace"},
		{"negative version", &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: "s", ExpectedVersion: -1}, "expected_version"},
		{"too many items", &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: "s",
			Items: make([]*memoryv1.WorkingMemoryItem, 21)}, "items"},
		{"no origin", &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: "s",
			Items: []*memoryv1.WorkingMemoryItem{{EpisodeId: a1}}}, "items[0].origin"},
		{"bad id", &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: "s",
			Items: []*memoryv1.WorkingMemoryItem{item("nope")}}, "items[0].episode_id"},
		{"twice", &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: "s",
			Items: []*memoryv1.WorkingMemoryItem{item(a1), item(a1)}}, "items[1].episode_id"},
		{"attention", &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: "s",
			Items: []*memoryv1.WorkingMemoryItem{{EpisodeId: a1, Origin: memoryv1.Origin_ORIGIN_HELD, Attention: 2}}}, "items[0].attention"},
		{"another namespace's episode", &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: "s",
			Items: []*memoryv1.WorkingMemoryItem{item(b1)}}, "episode_id"},
	}
	for _, tc := range bad {
		_, err := r.client.PutWorkingMemory(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.field)
		}
	}

	// JSON: GET and DELETE on the session's route.
	path := r.http + "/v1/memory/namespaces/alice/sessions/s1/working-memory"
	var wm struct {
		WorkingMemory struct {
			Version string `json:"version"`
			Items   []struct {
				EpisodeID string `json:"episodeId"`
				Origin    string `json:"origin"`
			} `json:"items"`
		} `json:"workingMemory"`
	}
	httpJSON(t, "GET", path, 200, &wm)
	if wm.WorkingMemory.Version != "3" || len(wm.WorkingMemory.Items) != 2 || wm.WorkingMemory.Items[0].Origin != "ORIGIN_RECALLED" {
		t.Fatalf("JSON get: %+v", wm)
	}
	// Deleting an episode removes its item.
	if _, err := r.client.DeleteEpisode(ctx, &memoryv1.DeleteEpisodeRequest{Namespace: "alice", Id: a1}); err != nil {
		t.Fatal(err)
	}
	httpJSON(t, "GET", path, 200, &wm)
	if len(wm.WorkingMemory.Items) != 1 || wm.WorkingMemory.Items[0].EpisodeID != a2 {
		t.Fatalf("after deleting %s: %+v", a1, wm)
	}
	var cl struct {
		Cleared bool   `json:"cleared"`
		Version string `json:"version"`
	}
	httpJSON(t, "DELETE", path, 200, &cl)
	if !cl.Cleared || cl.Version != "4" {
		t.Fatalf("JSON clear: %+v", cl)
	}
	httpJSON(t, "GET", r.http+"/v1/memory/namespaces/alice/sessions/"+strings.Repeat("s", 129)+"/working-memory", 400, nil)

	// DeleteNamespace erases the buffers: the session starts over at 0.
	if _, err := r.client.PutWorkingMemory(ctx, &memoryv1.PutWorkingMemoryRequest{Namespace: "alice", SessionId: "s1",
		ExpectedVersion: 4, Items: []*memoryv1.WorkingMemoryItem{item(a2)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.DeleteNamespace(ctx, &memoryv1.DeleteNamespaceRequest{Namespace: "alice"}); err != nil {
		t.Fatal(err)
	}
	got, err = r.client.GetWorkingMemory(ctx, &memoryv1.GetWorkingMemoryRequest{Namespace: "alice", SessionId: "s1"})
	if err != nil || got.GetWorkingMemory().GetVersion() != 0 {
		t.Fatalf("after DeleteNamespace: %v %v, want version 0", got, err)
	}
}

func httpJSON(t *testing.T, method, url string, want int, into any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
}
