package api

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/brainhq/brain/services/memory/episode"
)

// TestProtoDocumentsLimits: the proto is the contract clients read, so each
// field's comment must state the limit validation enforces (episode's
// constants); changing one without the other fails here.
func TestProtoDocumentsLimits(t *testing.T) {
	b, err := os.ReadFile("../../../proto/brain/memory/v1/memory.proto")
	if err != nil {
		t.Fatal(err)
	}
	// comment returns the comment lines right above a field declaration.
	comment := func(msg, decl string) string {
		body := string(b)
		i := strings.Index(body, "message "+msg+" {")
		if i < 0 {
			t.Fatalf("no message %s", msg)
		}
		j := strings.Index(body[i:], decl)
		if j < 0 {
			t.Fatalf("no %q in %s", decl, msg)
		}
		lines := strings.Split(body[i:i+j], "\n")
		var out []string
		for k := len(lines) - 2; k >= 0 && strings.HasPrefix(strings.TrimSpace(lines[k]), "//"); k-- {
			out = append([]string{strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[k]), "//"))}, out...)
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		msg, decl string
		want      []string
	}{
		{"Episode", "string namespace = 2;", []string{fmt.Sprintf("1..%d bytes", episode.MaxNamespaceBytes)}},
		{"Episode", "string session_id = 3;", []string{fmt.Sprintf("at most %d bytes", episode.MaxSessionBytes)}},
		{"Episode", "string content = 4;", []string{fmt.Sprintf("at most %d bytes", episode.MaxContentBytes), "white space"}},
		{"Episode", "map<string, string> metadata = 7;", []string{
			fmt.Sprintf("at most %d entries", episode.MaxMetadataEntries),
			fmt.Sprintf("keys 1..%d bytes", episode.MaxMetadataKeyBytes),
			fmt.Sprintf("at most %d bytes", episode.MaxMetadataValueBytes)}},
		{"WriteEpisodesRequest", "repeated Episode episodes = 1;", []string{fmt.Sprintf("1..%d episodes", episode.MaxBatch)}},
		{"RecallRequest", "string query = 2;", []string{fmt.Sprintf("1..%d bytes", episode.MaxQueryBytes), "white space"}},
		{"RecallRequest", "string session_id = 4;", []string{fmt.Sprintf("at most %d bytes", episode.MaxSessionBytes)}},
		{"ListEpisodesRequest", "string session_id = 2;", []string{fmt.Sprintf("at most %d bytes", episode.MaxSessionBytes)}},
		{"Episode", "string speaker = 11;", []string{fmt.Sprintf("at most %d bytes", episode.MaxSpeakerBytes)}},
		{"RecallRequest", "string speaker = 12;", []string{fmt.Sprintf("at most %d bytes", episode.MaxSpeakerBytes)}},
		{"ListEpisodesRequest", "string speaker = 8;", []string{fmt.Sprintf("at most %d bytes", episode.MaxSpeakerBytes)}},
		{"WorkingMemoryItem", "string content = 2;", []string{fmt.Sprintf("at most %d bytes", episode.MaxWorkingMemoryContentBytes)}},
		{"PutWorkingMemoryRequest", "repeated WorkingMemoryItem items = 4;", []string{fmt.Sprintf("0..%d items", episode.MaxWorkingMemoryItems)}},
		{"PutWorkingMemoryRequest", "string session_id = 2;", []string{fmt.Sprintf("1..%d bytes", episode.MaxSessionBytes)}},
		{"GetWorkingMemoryRequest", "string session_id = 2;", []string{fmt.Sprintf("1..%d bytes", episode.MaxSessionBytes)}},
	}
	for _, tt := range tests {
		c := comment(tt.msg, tt.decl)
		for _, w := range tt.want {
			if !strings.Contains(c, w) {
				t.Errorf("%s.%s: comment %q does not say %q", tt.msg, tt.decl, c, w)
			}
		}
	}
	if c := comment("Episode", "string namespace = 2;"); !strings.Contains(c, episode.NamespaceAlphabet) {
		t.Errorf("Episode.namespace: comment %q does not state the alphabet %q", c, episode.NamespaceAlphabet)
	}
	// Every other namespace field points at it (or, for the deletes, states the legacy rule).
	for _, msg := range []string{"RecallRequest", "GetEpisodeRequest", "ListEpisodesRequest", "RecordAccessRequest", "GetStatsRequest"} {
		if c := comment(msg, "string namespace = 1;"); !strings.Contains(c, "spelled as Episode.namespace says") {
			t.Errorf("%s.namespace: comment %q does not refer to the alphabet", msg, c)
		}
	}
	for _, msg := range []string{"DeleteEpisodeRequest", "DeleteNamespaceRequest"} {
		if c := comment(msg, "string namespace = 1;"); !strings.Contains(c, fmt.Sprintf("1..%d bytes of valid UTF-8 without NUL", episode.MaxNamespaceBytes)) {
			t.Errorf("%s.namespace: comment %q does not state the legacy rule", msg, c)
		}
	}
}
