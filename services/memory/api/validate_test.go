package api

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/badrequest"
	"github.com/brainhq/brain/services/memory/episode"
)

// wantInvalid fails unless err is INVALID_ARGUMENT naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), field+":") {
		t.Fatalf("got %v, want INVALID_ARGUMENT naming %s", err, field)
	}
}

// Validation happens before any dependency is used, so a Server without
// dependencies answers every bad request.
func bare() *Server { return New(Deps{}) }

func TestContentAndQueryOfOnlyWhiteSpace(t *testing.T) {
	ctx := context.Background()
	for _, blank := range []string{" ", "\t", "\n\r\n", "   \t  ", "\u00a0", "\u2003\u3000"} {
		_, err := bare().WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
			{Namespace: "ns", Content: blank}}})
		wantInvalid(t, err, "episodes[0].content")
		_, err = bare().Recall(ctx, &memoryv1.RecallRequest{Namespace: "ns", Query: blank})
		wantInvalid(t, err, "query")
	}
}

func TestDuplicateIDsInAnySpelling(t *testing.T) {
	ctx := context.Background()
	u := uuid.NewString()
	for _, other := range []string{u, strings.ToUpper(u), strings.ToUpper(u[:8]) + u[8:]} {
		_, err := bare().WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
			{Namespace: "ns", Id: u, Content: "one"}, {Namespace: "ns", Id: other, Content: "two"}}})
		wantInvalid(t, err, "episodes[1].id")
	}
}

// uuid.Parse takes more spellings than the API does: every call refuses
// braces, urn:uuid: and bare hex alike, and takes the hyphenated form in
// either case.
func TestIDSpellings(t *testing.T) {
	u := uuid.NewString()
	tests := []struct {
		id string
		ok bool
	}{
		{u, true},
		{strings.ToUpper(u), true},
		{"{" + u + "}", false},
		{"urn:uuid:" + u, false},
		{strings.ReplaceAll(u, "-", ""), false},
		{u[:35], false},
		{"not-a-uuid", false},
	}
	for _, tt := range tests {
		var v badrequest.Violations
		checkID(&v, "id", tt.id, true)
		if (v.Len() == 0) != tt.ok {
			t.Errorf("checkID(%q): %v, want ok=%v", tt.id, v.Err(), tt.ok)
		}
	}
}

func TestNamespaceAlphabetOnEveryCall(t *testing.T) {
	ctx := context.Background()
	id := uuid.NewString()
	reads := map[string]func(ns string) error{
		"write": func(ns string) error {
			_, err := bare().WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{Namespace: ns, Content: "c"}}})
			return err
		},
		"recall": func(ns string) error {
			_, err := bare().Recall(ctx, &memoryv1.RecallRequest{Namespace: ns, Query: "q"})
			return err
		},
		"get": func(ns string) error {
			_, err := bare().GetEpisode(ctx, &memoryv1.GetEpisodeRequest{Namespace: ns, Id: id})
			return err
		},
		"list": func(ns string) error {
			_, err := bare().ListEpisodes(ctx, &memoryv1.ListEpisodesRequest{Namespace: ns})
			return err
		},
		"record access": func(ns string) error {
			_, err := bare().RecordAccess(ctx, &memoryv1.RecordAccessRequest{Namespace: ns, Ids: []string{id}})
			return err
		},
		"stats": func(ns string) error {
			_, err := bare().GetStats(ctx, &memoryv1.GetStatsRequest{Namespace: ns})
			return err
		},
	}
	for name, call := range reads {
		for _, ns := range []string{"a/b", "a*", "a b", "-a", "café"} {
			err := call(ns)
			wantInvalid(t, err, "namespace")
			if !strings.Contains(err.Error(), episode.NamespaceAlphabet) {
				t.Errorf("%s(%q): %v does not state the alphabet", name, ns, err)
			}
		}
	}
	// The deletes refuse only what could never have been stored.
	for _, ns := range []string{"", strings.Repeat("n", episode.MaxNamespaceBytes+1), "a\x00b", "a\xffb"} {
		_, err := bare().DeleteNamespace(ctx, &memoryv1.DeleteNamespaceRequest{Namespace: ns})
		wantInvalid(t, err, "namespace")
		_, err = bare().DeleteEpisode(ctx, &memoryv1.DeleteEpisodeRequest{Namespace: ns, Id: id})
		wantInvalid(t, err, "namespace")
	}
}

// TestLimitsAtMaxAndOnePast checks each bounded request field at its
// maximum (no violation) and one past it (INVALID_ARGUMENT naming it).
func TestLimitsAtMaxAndOnePast(t *testing.T) {
	meta := func(entries, keyBytes, valueBytes int) map[string]string {
		m := make(map[string]string, entries)
		for i := range entries {
			k := strings.Repeat("k", keyBytes)
			if entries > 1 {
				p := string(rune('a'+i%26)) + string(rune('a'+i/26))
				k = p + k[len(p):]
			}
			m[k] = strings.Repeat("v", valueBytes)
		}
		return m
	}
	ep := func(mod func(*memoryv1.Episode)) *memoryv1.Episode {
		e := &memoryv1.Episode{Namespace: "ns", Content: "c"}
		mod(e)
		return e
	}
	tests := []struct {
		field   string
		atMax   *memoryv1.Episode
		pastMax *memoryv1.Episode
	}{
		{"episodes[0].content",
			ep(func(e *memoryv1.Episode) { e.Content = strings.Repeat("c", episode.MaxContentBytes) }),
			ep(func(e *memoryv1.Episode) { e.Content = strings.Repeat("c", episode.MaxContentBytes+1) })},
		{"episodes[0].namespace",
			ep(func(e *memoryv1.Episode) { e.Namespace = strings.Repeat("n", episode.MaxNamespaceBytes) }),
			ep(func(e *memoryv1.Episode) { e.Namespace = strings.Repeat("n", episode.MaxNamespaceBytes+1) })},
		{"episodes[0].session_id",
			ep(func(e *memoryv1.Episode) { e.SessionId = strings.Repeat("s", episode.MaxSessionBytes) }),
			ep(func(e *memoryv1.Episode) { e.SessionId = strings.Repeat("s", episode.MaxSessionBytes+1) })},
		{"episodes[0].speaker",
			ep(func(e *memoryv1.Episode) { e.Speaker = strings.Repeat("ü", episode.MaxSpeakerBytes/2) }),
			ep(func(e *memoryv1.Episode) { e.Speaker = strings.Repeat("s", episode.MaxSpeakerBytes+1) })},
		{"episodes[0].speaker",
			ep(func(e *memoryv1.Episode) { e.Speaker = "Nate" }),
			ep(func(e *memoryv1.Episode) { e.Speaker = "Na\xffte" })},
		{"episodes[0].metadata",
			ep(func(e *memoryv1.Episode) { e.Metadata = meta(episode.MaxMetadataEntries, 2, 1) }),
			ep(func(e *memoryv1.Episode) { e.Metadata = meta(episode.MaxMetadataEntries+1, 2, 1) })},
		{"episodes[0].metadata.key",
			ep(func(e *memoryv1.Episode) { e.Metadata = meta(1, episode.MaxMetadataKeyBytes, 1) }),
			ep(func(e *memoryv1.Episode) { e.Metadata = meta(1, episode.MaxMetadataKeyBytes+1, 1) })},
		{"episodes[0].metadata[k]",
			ep(func(e *memoryv1.Episode) {
				e.Metadata = map[string]string{"k": strings.Repeat("v", episode.MaxMetadataValueBytes)}
			}),
			ep(func(e *memoryv1.Episode) {
				e.Metadata = map[string]string{"k": strings.Repeat("v", episode.MaxMetadataValueBytes+1)}
			})},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			var v badrequest.Violations
			checkEpisode(&v, "episodes[0]", tt.atMax)
			if v.Len() != 0 {
				t.Fatalf("at the maximum: %v", v.Err())
			}
			checkEpisode(&v, "episodes[0]", tt.pastMax)
			wantInvalid(t, v.Err(), tt.field)
		})
	}
	t.Run("query", func(t *testing.T) {
		_, err := bare().Recall(context.Background(), &memoryv1.RecallRequest{Namespace: "ns", Query: strings.Repeat("q", episode.MaxQueryBytes+1)})
		wantInvalid(t, err, "query")
	})
	t.Run("recall speaker", func(t *testing.T) {
		_, err := bare().Recall(context.Background(), &memoryv1.RecallRequest{Namespace: "ns", Query: "q", Speaker: strings.Repeat("s", episode.MaxSpeakerBytes+1)})
		wantInvalid(t, err, "speaker")
	})
	t.Run("recall metadata filter", func(t *testing.T) {
		_, err := bare().Recall(context.Background(), &memoryv1.RecallRequest{Namespace: "ns", Query: "q",
			Metadata: map[string]string{strings.Repeat("k", episode.MaxMetadataKeyBytes+1): "v"}})
		wantInvalid(t, err, "metadata.key")
	})
	t.Run("list metadata filter", func(t *testing.T) {
		_, err := bare().ListEpisodes(context.Background(), &memoryv1.ListEpisodesRequest{Namespace: "ns",
			Metadata: meta(episode.MaxMetadataEntries+1, 2, 1)})
		wantInvalid(t, err, "metadata")
	})
	t.Run("list speaker", func(t *testing.T) {
		_, err := bare().ListEpisodes(context.Background(), &memoryv1.ListEpisodesRequest{Namespace: "ns", Speaker: "\xff"})
		wantInvalid(t, err, "speaker")
	})
	t.Run("episodes", func(t *testing.T) {
		eps := make([]*memoryv1.Episode, episode.MaxBatch+1)
		for i := range eps {
			eps[i] = &memoryv1.Episode{Namespace: "ns", Content: "c"}
		}
		_, err := bare().WriteEpisodes(context.Background(), &memoryv1.WriteEpisodesRequest{Episodes: eps})
		wantInvalid(t, err, "episodes")
	})
}
