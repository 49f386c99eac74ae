package store

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/brainhq/brain/services/memory/episode"
)

// TestSchemaLimitsMatchEpisode reads every length CHECK of the episodes
// table back from pg_catalog and compares it with episode's constants, so
// the schema and the API's validation cannot drift apart (they once did:
// the API took 64 KiB of content, the table 16 KiB, and the rest failed as
// INTERNAL).
func TestSchemaLimitsMatchEpisode(t *testing.T) {
	_, pool := newStore(t)
	ctx := testCtx(t)
	rows, err := pool.Query(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'episodes'::regclass AND contype = 'c'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	maxRe := regexp.MustCompile(`octet_length\((\w+)\) <= (\d+)`)
	minRe := regexp.MustCompile(`octet_length\((\w+)\) >= (\d+)`)
	gotMax, gotMin := map[string]int{}, map[string]int{}
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			t.Fatal(err)
		}
		for _, m := range maxRe.FindAllStringSubmatch(def, -1) {
			n, _ := strconv.Atoi(m[2])
			gotMax[m[1]] = n
		}
		for _, m := range minRe.FindAllStringSubmatch(def, -1) {
			n, _ := strconv.Atoi(m[2])
			gotMin[m[1]] = n
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantMax := map[string]int{
		"namespace":  episode.MaxNamespaceBytes,
		"session_id": episode.MaxSessionBytes,
		"content":    episode.MaxContentBytes,
		"speaker":    episode.MaxSpeakerBytes,
	}
	for col, want := range wantMax {
		if gotMax[col] != want {
			t.Errorf("schema bounds %s at %d bytes, episode says %d", col, gotMax[col], want)
		}
	}
	if len(gotMax) != len(wantMax) {
		t.Errorf("schema has length CHECKs on %v; this test knows %v: add the new one here and to episode", gotMax, wantMax)
	}
	if gotMin["namespace"] != 1 {
		t.Errorf("schema requires namespace of at least %d bytes, want 1", gotMin["namespace"])
	}
}

// TestWriteAtEachLimit stores an episode with every bounded field at its
// maximum, and refuses each one byte past it with ErrInvalid, never a
// PostgreSQL error.
func TestWriteAtEachLimit(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	meta := make(map[string]string, episode.MaxMetadataEntries)
	for i := range episode.MaxMetadataEntries {
		k := strconv.Itoa(i) + "-"
		meta[k+strings.Repeat("k", episode.MaxMetadataKeyBytes-len(k))] = strings.Repeat("v", episode.MaxMetadataValueBytes)
	}
	atMax := episode.Episode{
		Namespace: strings.Repeat("n", episode.MaxNamespaceBytes),
		SessionID: strings.Repeat("s", episode.MaxSessionBytes),
		Speaker:   strings.Repeat("é", episode.MaxSpeakerBytes/2),
		Content:   strings.Repeat("word ", episode.MaxContentBytes/5) + strings.Repeat("x", episode.MaxContentBytes%5),
		Metadata:  meta, Importance: 0.5,
	}
	if len(atMax.Content) != episode.MaxContentBytes {
		t.Fatalf("test content is %d bytes", len(atMax.Content))
	}
	out, err := s.Write(ctx, []episode.Episode{atMax})
	if err != nil {
		t.Fatalf("write at every maximum: %v", err)
	}
	got, err := s.Get(ctx, atMax.Namespace, out[0].ID)
	if err != nil || got.Content != atMax.Content || got.SessionID != atMax.SessionID || got.Speaker != atMax.Speaker || len(got.Metadata) != len(meta) {
		t.Fatalf("read back: %v (content %d bytes, %d metadata entries)", err, len(got.Content), len(got.Metadata))
	}
	over := []struct {
		name string
		mod  func(*episode.Episode)
	}{
		{"namespace", func(e *episode.Episode) { e.Namespace += "n" }},
		{"session_id", func(e *episode.Episode) { e.SessionID += "s" }},
		{"speaker", func(e *episode.Episode) { e.Speaker += "s" }},
		{"content", func(e *episode.Episode) { e.Content += "x" }},
		{"metadata key", func(e *episode.Episode) {
			e.Metadata = map[string]string{strings.Repeat("k", episode.MaxMetadataKeyBytes+1): "v"}
		}},
		{"metadata value", func(e *episode.Episode) {
			e.Metadata = map[string]string{"k": strings.Repeat("v", episode.MaxMetadataValueBytes+1)}
		}},
	}
	for _, tt := range over {
		t.Run(tt.name, func(t *testing.T) {
			bad := atMax
			tt.mod(&bad)
			if _, err := s.Write(ctx, []episode.Episode{bad}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.name) {
				t.Fatalf("one byte past the %s maximum: %v, want ErrInvalid naming it", tt.name, err)
			}
		})
	}
}
