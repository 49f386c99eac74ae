package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/brainhq/brain/services/kit/pgtest"
	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/recall"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newStore returns a Store over a fresh, migrated database.
// migratedDatabase is a new database of the test cluster with the schema
// applied; it returns its URL.
func migratedDatabase(t testing.TB) string {
	t.Helper()
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	return url
}

func newStore(t testing.TB) (*Store, *pgxpool.Pool) {
	t.Helper()
	ctx := testCtx(t)
	pool, err := pgxpool.New(ctx, migratedDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return New(pool), pool
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func ep(ns, content string, ageDays float64) episode.Episode {
	return episode.Episode{
		Namespace: ns, Content: content, Importance: 0.5,
		CreatedAt: t0.Add(-time.Duration(ageDays * float64(24*time.Hour))),
	}
}

func mustWrite(t testing.TB, s *Store, eps ...episode.Episode) []episode.Episode {
	t.Helper()
	out, err := s.Write(testCtx(t), eps)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func contents(rs []recall.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Episode.Content)
	}
	return out
}

func TestMigrateIdempotentAndPing(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := New(pool)
	if err := s.Ping(ctx); !errors.Is(err, ErrNotMigrated) {
		t.Fatalf("Ping before migrate = %v, want ErrNotMigrated", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i := range 2 {
		if err := Migrate(ctx, conn); err != nil {
			t.Fatalf("migrate #%d: %v", i+1, err)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after migrate: %v", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != SchemaVersion {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, SchemaVersion)
	}
	// A database ahead of the binary is refused by Migrate and flagged by Ping.
	if _, err := conn.Exec(ctx, "UPDATE "+versionTable+" SET version = $1", SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "expects") {
		t.Fatalf("Ping with newer schema = %v, want a version error", err)
	}
	if err := Migrate(ctx, conn); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Migrate with newer schema = %v, want refusal", err)
	}
}

func TestWriteGetDelete(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	aff := &episode.Affect{Valence: -0.5, Arousal: 0.8, Intensity: 0.3}
	in := []episode.Episode{
		{Namespace: "ns", SessionID: "s1", Content: "first", Importance: 0.9, CreatedAt: t0,
			Metadata: map[string]string{"k": "v"}, Affect: aff},
		{Namespace: "ns", Content: "second", Importance: 0.5, ID: strings.ToUpper(uuid.NewString())},
	}
	before := time.Now().Add(-time.Second)
	out, err := s.Write(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Content != "first" || out[1].Content != "second" {
		t.Fatalf("Write returned %+v", out)
	}
	if _, err := uuid.Parse(out[0].ID); err != nil || out[0].ID != strings.ToLower(out[0].ID) {
		t.Fatalf("assigned id %q is not a canonical UUID", out[0].ID)
	}
	if out[1].ID != strings.ToLower(in[1].ID) {
		t.Fatalf("client id %q stored as %q", in[1].ID, out[1].ID)
	}
	if !out[0].CreatedAt.Equal(t0) || out[1].CreatedAt.Before(before) {
		t.Fatalf("created_at %v / %v", out[0].CreatedAt, out[1].CreatedAt)
	}
	got, err := s.Get(ctx, "ns", out[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SessionID != "s1" || got.Importance != 0.9 || got.Metadata["k"] != "v" || got.Affect == nil || *got.Affect != *aff ||
		got.AccessCount != 0 || got.LastAccessedAt != nil {
		t.Fatalf("Get = %+v", got)
	}
	if g2, _ := s.Get(ctx, "ns", out[1].ID); g2.Affect != nil || g2.Metadata != nil {
		t.Fatalf("episode without affect/metadata read back as %+v", g2)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid", ""} {
		if _, err := s.Get(ctx, "ns", id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if ok, err := s.Delete(ctx, "ns", out[0].ID); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	if ok, err := s.Delete(ctx, "ns", out[0].ID); ok || err != nil {
		t.Fatalf("second Delete = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.Delete(ctx, "ns", "garbage"); ok || err != nil {
		t.Fatalf("Delete(garbage) = %v, %v", ok, err)
	}
	if _, err := s.Get(ctx, "ns", out[0].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete = %v", err)
	}
	st, err := s.Stats(ctx, "")
	if err != nil || st.EpisodeCount != 1 || st.NamespaceCount != 1 || st.SchemaVersion != SchemaVersion {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
}

func TestWriteRejectsUnstorable(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	good := episode.Episode{Namespace: "ns", Content: "ok", Importance: 0.5}
	tests := []struct {
		name string
		mod  func(*episode.Episode)
	}{
		{"empty namespace", func(e *episode.Episode) { e.Namespace = "" }},
		{"long namespace", func(e *episode.Episode) { e.Namespace = strings.Repeat("n", 129) }},
		{"bad uuid", func(e *episode.Episode) { e.ID = "123" }},
		{"nul in content", func(e *episode.Episode) { e.Content = "a\x00b" }},
		{"invalid utf8", func(e *episode.Episode) { e.Content = "a\xffb" }},
		{"content too long", func(e *episode.Episode) { e.Content = strings.Repeat("x", episode.MaxContentBytes+1) }},
		{"importance > 1", func(e *episode.Episode) { e.Importance = 1.5 }},
		{"importance NaN", func(e *episode.Episode) { e.Importance = math.NaN() }},
		{"affect Inf", func(e *episode.Episode) { e.Affect = &episode.Affect{Valence: math.Inf(1)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := good
			tt.mod(&bad)
			// The good episode must not be stored either: all or nothing.
			if _, err := s.Write(ctx, []episode.Episode{good, bad}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Write = %v, want ErrInvalid", err)
			}
		})
	}
	if st, _ := s.Stats(ctx, "ns"); st.EpisodeCount != 0 {
		t.Fatalf("%d episodes stored from rejected batches", st.EpisodeCount)
	}
}

// A batch that fails in the database (here: a constraint) stores nothing.
func TestWriteAllOrNothing(t *testing.T) {
	s, pool := newStore(t)
	ctx := testCtx(t)
	if _, err := pool.Exec(ctx, `ALTER TABLE episodes ADD CONSTRAINT no_boom CHECK (content <> 'boom')`); err != nil {
		t.Fatal(err)
	}
	_, err := s.Write(ctx, []episode.Episode{ep("a", "fine", 0), ep("b", "boom", 0)})
	if err == nil {
		t.Fatal("Write with a failing row succeeded")
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM episodes) + (SELECT count(*) FROM postings) +
		(SELECT coalesce(sum(episode_count), 0) FROM namespace_stats)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after failed batch: %d rows, %v", n, err)
	}
}

func TestWriteIdempotentUpsert(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	id := uuid.NewString()
	first := mustWrite(t, s, episode.Episode{ID: id, Namespace: "ns", Content: "original text about gardens", Importance: 0.4})
	if _, err := s.RecordAccess(ctx, "ns", []string{id}, t0); err != nil {
		t.Fatal(err)
	}
	// Retry: same row, created_at kept (it was server-assigned), access kept.
	again := mustWrite(t, s, episode.Episode{ID: id, Namespace: "ns", Content: "original text about gardens", Importance: 0.4})
	if !again[0].CreatedAt.Equal(first[0].CreatedAt) || again[0].AccessCount != 1 {
		t.Fatalf("retry changed the row: %+v vs %+v", again[0], first[0])
	}
	// Update with new content re-indexes it.
	mustWrite(t, s, episode.Episode{ID: id, Namespace: "ns", Content: "new text about volcanoes", Importance: 0.7, CreatedAt: t0})
	got, _ := s.Get(ctx, "ns", id)
	if got.Content != "new text about volcanoes" || got.Importance != 0.7 || !got.CreatedAt.Equal(t0) {
		t.Fatalf("update not applied: %+v", got)
	}
	for q, want := range map[string]int{"gardens": 0, "volcano": 1} {
		rs, err := s.Recall(ctx, recall.Query{Namespace: "ns", Text: q})
		if err != nil || len(rs) != want {
			t.Fatalf("Recall(%q) = %v, %v; want %d results", q, contents(rs), err, want)
		}
	}
	// Duplicate ids in one batch: stored once, last occurrence wins.
	dup := uuid.NewString()
	out := mustWrite(t, s,
		episode.Episode{ID: dup, Namespace: "ns", Content: "one", Importance: 0.5},
		episode.Episode{ID: dup, Namespace: "ns", Content: "two", Importance: 0.5})
	if out[0].Content != "two" || out[1].Content != "two" || out[0].ID != out[1].ID {
		t.Fatalf("duplicate ids: %+v", out)
	}
	if st, _ := s.Stats(ctx, "ns"); st.EpisodeCount != 2 {
		t.Fatalf("EpisodeCount = %d, want 2", st.EpisodeCount)
	}
	checkIndex(t, s)
	// Importance and time alone change: ranking sees the new values.
	later := t0.Add(time.Hour)
	mustWrite(t, s, episode.Episode{ID: id, Namespace: "ns", Content: "new text about volcanoes", Importance: 0.1, CreatedAt: later})
	rs, err := s.Recall(ctx, recall.Query{Namespace: "ns", Text: "volcanoes", AsOf: later})
	if err != nil || len(rs) != 1 || rs[0].Scores.Importance != 0.1 || rs[0].Scores.Recency != 1 {
		t.Fatalf("after importance/time update: %+v, %v", rs, err)
	}
	checkIndex(t, s)
}

// checkIndex verifies the trigger-maintained tables against a recount from
// episodes: the ranking's statistics are exact, not approximately kept.
func checkIndex(t testing.TB, s *Store) {
	t.Helper()
	ctx := testCtx(t)
	var diffs int
	err := s.pool.QueryRow(ctx, `
WITH words AS (SELECT e.namespace, e.id, u.lexeme, (ts_lexize('english_stem', u.lexeme))[1] AS stem,
	coalesce(cardinality(u.positions), 1) AS tf FROM episodes e, unnest(to_tsvector('simple', e.content)) u),
toks AS (SELECT namespace, id, lexeme FROM words WHERE stem IS NOT NULL),
want_df AS (SELECT namespace, lexeme, count(*)::int AS df FROM toks GROUP BY 1, 2),
want_ns AS (SELECT e.namespace, count(*) AS n,
	coalesce(sum((SELECT sum(w.tf) FROM words w WHERE w.namespace = e.namespace AND w.id = e.id AND w.stem IS NOT NULL)), 0) AS len
	FROM episodes e GROUP BY 1)
SELECT
 (SELECT count(*) FROM (SELECT * FROM want_df EXCEPT SELECT namespace, lexeme, df FROM term_stats) x) +
 (SELECT count(*) FROM (SELECT namespace, lexeme, df FROM term_stats EXCEPT SELECT * FROM want_df) x) +
 (SELECT count(*) FROM (SELECT namespace, id, lexeme FROM toks EXCEPT SELECT namespace, episode_id, lexeme FROM postings) x) +
 (SELECT count(*) FROM (SELECT namespace, episode_id, lexeme FROM postings EXCEPT SELECT namespace, id, lexeme FROM toks) x) +
 (SELECT count(*) FROM (SELECT namespace, n, len FROM want_ns EXCEPT SELECT namespace, episode_count, total_len FROM namespace_stats) x) +
 (SELECT count(*) FROM namespace_stats s WHERE s.episode_count <> 0 AND NOT EXISTS (SELECT 1 FROM episodes e WHERE e.namespace = s.namespace)) +
 (SELECT count(*) FROM postings p JOIN episodes e ON e.namespace = p.namespace AND e.id = p.episode_id
   WHERE p.importance <> e.importance OR p.created_at <> e.created_at)
`).Scan(&diffs)
	if err != nil {
		t.Fatal(err)
	}
	if diffs != 0 {
		t.Fatalf("derived index tables differ from episodes in %d rows", diffs)
	}
}

func TestRecallRankedFindsNaturalQuestions(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	mustWrite(t, s,
		ep("u", "We adopted a beagle puppy on Saturday and named him Biscuit.", 10),
		ep("u", "The weather was rainy all weekend, so we stayed inside.", 1),
		ep("u", "My sister is learning to play the violin.", 2),
		ep("u", "I need to buy new running shoes before the marathon.", 3),
		ep("u", "Dinner was pasta with mushrooms.", 0.5),
	)
	rs, err := s.Recall(ctx, recall.Query{Namespace: "u", Text: "What did I name the puppy we adopted?", AsOf: t0})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || !strings.Contains(rs[0].Episode.Content, "Biscuit") {
		t.Fatalf("Recall = %q, want only the puppy episode", contents(rs))
	}
	sc := rs[0].Scores
	w := recall.DefaultWeights()
	if sc.Relevance != 1 || sc.Importance != 0.5 || math.Abs(sc.Recency-recall.Recency(10*24*time.Hour, 0)) > 1e-9 ||
		math.Abs(sc.Total-w.Total(sc)) > 1e-9 {
		t.Fatalf("scores %+v", sc)
	}
	// Stemming: "runs"/"shoe" match "running shoes".
	rs, _ = s.Recall(ctx, recall.Query{Namespace: "u", Text: "shoe for runs", AsOf: t0})
	if len(rs) != 1 || !strings.Contains(rs[0].Episode.Content, "shoes") {
		t.Fatalf("stemmed recall = %q", contents(rs))
	}
	// Only stop words: nothing to match, no error.
	if rs, err := s.Recall(ctx, recall.Query{Namespace: "u", Text: "what is it?"}); err != nil || len(rs) != 0 {
		t.Fatalf("stop-word recall = %q, %v", contents(rs), err)
	}
}

func TestRecallRankingOrder(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	// A rare word outweighs a common one (IDF), and more matching words
	// outweigh fewer.
	var eps []episode.Episode
	for i := range 30 {
		eps = append(eps, ep("r", fmt.Sprintf("note %d about the garden", i), 5))
	}
	eps = append(eps,
		ep("r", "the garden has a rare orchid", 5),
		ep("r", "an orchid", 5),
		ep("r", "orchid garden tour with a guide", 5))
	mustWrite(t, s, eps...)
	rs, err := s.Recall(ctx, recall.Query{Namespace: "r", Text: "orchid garden guide", AsOf: t0, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	got := contents(rs)
	if len(got) != 5 || got[0] != "orchid garden tour with a guide" || !slices.Contains(got[1:3], "an orchid") ||
		!slices.Contains(got[1:3], "the garden has a rare orchid") {
		t.Fatalf("ranking = %q", got)
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].Scores.Total > rs[i-1].Scores.Total {
			t.Fatalf("results not ordered by total: %+v", rs)
		}
	}
	// Weights: with recency only, the newest matching episode comes first.
	mustWrite(t, s, ep("r", "garden party yesterday", 1))
	rs, _ = s.Recall(ctx, recall.Query{Namespace: "r", Text: "orchid garden guide", AsOf: t0, Limit: 1,
		Weights: recall.Weights{Recency: 1}})
	if len(rs) != 1 || rs[0].Episode.Content != "garden party yesterday" {
		t.Fatalf("recency-only = %q", contents(rs))
	}
	// Importance filter and weight.
	imp := mustWrite(t, s, episode.Episode{Namespace: "r", Content: "vital garden fact", Importance: 1, CreatedAt: t0.Add(-30 * 24 * time.Hour)})
	minImp := 0.9
	rs, _ = s.Recall(ctx, recall.Query{Namespace: "r", Text: "garden", AsOf: t0, MinImportance: &minImp})
	if len(rs) != 1 || rs[0].Episode.ID != imp[0].ID {
		t.Fatalf("min importance = %q", contents(rs))
	}
}

func TestRecallAsOfReproducible(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	mustWrite(t, s, ep("a", "old memory of the lake", 14), ep("a", "new memory of the lake", 0))
	q := recall.Query{Namespace: "a", Text: "lake memory", AsOf: t0}
	first, err := s.Recall(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	second, _ := s.Recall(ctx, q)
	if !slices.EqualFunc(first, second, func(a, b recall.Result) bool { return a.Scores == b.Scores && a.Episode.ID == b.Episode.ID }) {
		t.Fatalf("same as_of, different answers: %+v vs %+v", first, second)
	}
	byContent := map[string]recall.Scores{}
	for _, r := range first {
		byContent[r.Episode.Content] = r.Scores
	}
	if r := byContent["old memory of the lake"].Recency; math.Abs(r-0.25) > 1e-9 {
		t.Fatalf("recency of a 14-day-old episode at half-life 7d = %v, want 0.25", r)
	}
	// as_of before the episode: age clamps at 0.
	rs, _ := s.Recall(ctx, recall.Query{Namespace: "a", Text: "lake", AsOf: t0.Add(-30 * 24 * time.Hour)})
	for _, r := range rs {
		if r.Scores.Recency != 1 {
			t.Fatalf("future episode recency %v, want 1", r.Scores.Recency)
		}
	}
	// Half-life is honoured.
	rs, _ = s.Recall(ctx, recall.Query{Namespace: "a", Text: "old lake", AsOf: t0, HalfLife: 14 * 24 * time.Hour, Limit: 1})
	if len(rs) != 1 || math.Abs(rs[0].Scores.Recency-0.5) > 1e-9 {
		t.Fatalf("half-life 14d: %+v", rs)
	}
}

func TestRecallFilters(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	mk := func(sess, content string, age float64) episode.Episode {
		e := ep("f", content, age)
		e.SessionID = sess
		return e
	}
	mustWrite(t, s, mk("s1", "coffee in the morning", 3), mk("s2", "coffee with friends", 2), mk("s3", "tea at noon", 1))
	after, before := t0.Add(-2*24*time.Hour), t0.Add(-24*time.Hour)
	tests := []struct {
		name string
		q    recall.Query
		want []string
	}{
		{"session", recall.Query{SessionID: "s2", Text: "coffee"}, []string{"coffee with friends"}},
		{"after inclusive", recall.Query{CreatedAfter: &after, Text: "coffee"}, []string{"coffee with friends"}},
		{"before exclusive", recall.Query{CreatedBefore: &after, Text: "coffee"}, []string{"coffee in the morning"}},
		{"range", recall.Query{CreatedAfter: &after, CreatedBefore: &before, Text: "coffee tea"}, []string{"coffee with friends"}},
		{"substring session", recall.Query{SessionID: "s1", Text: "COFFEE", Mode: recall.Substring}, []string{"coffee in the morning"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Namespace, tt.q.AsOf = "f", t0
			rs, err := s.Recall(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := contents(rs); !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRecallSubstringLiteral(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	texts := []string{
		"discount of 100% today", "discount of 1000 today", "file_name.txt", "filename.txt",
		`path C:\temp\new`, `path C:tempnew`, "'); DROP TABLE episodes; --",
	}
	var eps []episode.Episode
	for i, c := range texts {
		e := ep("lit", c, float64(i))
		eps = append(eps, e)
	}
	mustWrite(t, s, eps...)
	tests := []struct {
		query string
		want  []string
	}{
		{"100%", []string{"discount of 100% today"}},
		{"%", []string{"discount of 100% today"}},
		{"file_name", []string{"file_name.txt"}},
		{"_", []string{"file_name.txt"}},
		{`C:\temp`, []string{`path C:\temp\new`}},
		{`\`, []string{`path C:\temp\new`}},
		{"'); DROP TABLE episodes; --", []string{"'); DROP TABLE episodes; --"}},
		{"DISCOUNT OF 1000", []string{"discount of 1000 today"}},
		{"nothing like this", nil},
	}
	for _, tt := range tests {
		rs, err := s.Recall(ctx, recall.Query{Namespace: "lit", Text: tt.query, Mode: recall.Substring, AsOf: t0})
		if err != nil {
			t.Fatalf("%q: %v", tt.query, err)
		}
		if got := contents(rs); !slices.Equal(got, tt.want) {
			t.Errorf("substring %q = %q, want %q", tt.query, got, tt.want)
		}
		for _, r := range rs {
			if r.Scores.Relevance != 1 {
				t.Errorf("substring relevance %v", r.Scores.Relevance)
			}
		}
	}
	// Importance orders substring matches, then recency.
	mustWrite(t, s, episode.Episode{Namespace: "lit", Content: "top discount", Importance: 0.9, CreatedAt: t0.Add(-400 * time.Hour)})
	rs, _ := s.Recall(ctx, recall.Query{Namespace: "lit", Text: "discount", Mode: recall.Substring, AsOf: t0})
	if got := contents(rs); !slices.Equal(got, []string{"top discount", "discount of 100% today", "discount of 1000 today"}) {
		t.Fatalf("substring order = %q", got)
	}
}

func TestInjectionTextStoredLiterally(t *testing.T) {
	s, pool := newStore(t)
	ctx := testCtx(t)
	evil := []string{
		"'); DROP TABLE episodes; --",
		`" OR 1=1; --`,
		"a' | 'b & !c:* <-> d",
		"$1 $$ $fn$ \\x00 %s %v",
		"Robert'); DELETE FROM postings WHERE ('1'='1",
	}
	ns := "ns'; DROP TABLE episodes; --"
	var eps []episode.Episode
	for _, c := range evil {
		eps = append(eps, episode.Episode{Namespace: ns, SessionID: c, Content: c, Importance: 0.5,
			Metadata: map[string]string{c: c}})
	}
	out := mustWrite(t, s, eps...)
	for i, e := range out {
		got, err := s.Get(ctx, ns, e.ID)
		if err != nil || got.Content != evil[i] || got.SessionID != evil[i] || got.Metadata[evil[i]] != evil[i] {
			t.Fatalf("round trip of %q: %+v, %v", evil[i], got, err)
		}
	}
	for _, q := range evil {
		for _, mode := range []recall.MatchMode{recall.Ranked, recall.Substring} {
			if _, err := s.Recall(ctx, recall.Query{Namespace: ns, Text: q, Mode: mode, SessionID: q}); err != nil {
				t.Fatalf("recall %q (%v): %v", q, mode, err)
			}
			if _, err := s.Recall(ctx, recall.Query{Namespace: ns, Text: q, Mode: mode}); err != nil {
				t.Fatalf("recall %q (%v): %v", q, mode, err)
			}
		}
	}
	rs, err := s.Recall(ctx, recall.Query{Namespace: ns, Text: "DROP TABLE episodes"})
	if err != nil || len(rs) != 1 || rs[0].Episode.Content != evil[0] {
		t.Fatalf("ranked recall of the injection text = %q, %v", contents(rs), err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM episodes`).Scan(&n); err != nil || n != len(evil) {
		t.Fatalf("episodes table: %d rows, %v", n, err)
	}
}

// Every translated fuzz-corpus query is accepted by PostgreSQL: the tsquery
// parses and the LIKE pattern finds its literal.
func TestTranslationAcceptedByPostgres(t *testing.T) {
	_, pool := newStore(t)
	ctx := testCtx(t)
	dir := "../recall/testdata/fuzz/FuzzTranslate"
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("fuzz corpus: %v (%d files)", err, len(entries))
	}
	inputs := []string{"What did I name my new puppy?", "it's 100% o'clock\\", "ab_c% \\%"}
	for _, e := range entries {
		b, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		s, err := parseCorpusString(string(b))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		inputs = append(inputs, s)
	}
	for _, in := range inputs {
		terms := recall.Terms(in)
		if tsq := recall.TSQuery(terms); tsq != "" {
			if _, err := pool.Exec(ctx, `SELECT to_tsquery('english', $1)`, tsq); err != nil {
				t.Errorf("to_tsquery(%q) from %q: %v", tsq, in, err)
			}
			if _, err := pool.Exec(ctx, `SELECT to_tsvector('simple', array_to_string($1::text[], ' '))`, terms); err != nil {
				t.Errorf("to_tsvector of %q: %v", terms, err)
			}
		}
		if !validPGText(in) {
			continue
		}
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT $1::text ILIKE $2 ESCAPE '\'`, "<"+in+">", recall.ContainsPattern(in)).Scan(&ok); err != nil || !ok {
			t.Errorf("ILIKE pattern of %q: %v, %v", in, ok, err)
		}
		if err := pool.QueryRow(ctx, `SELECT $1::text LIKE $2 ESCAPE '\'`, in+"x", recall.EscapeLike(in)).Scan(&ok); err != nil || ok {
			t.Errorf("LIKE pattern of %q matches more than the literal: %v, %v", in, ok, err)
		}
	}
}

func validPGText(s string) bool {
	return !strings.ContainsRune(s, 0) && strings.ToValidUTF8(s, "\uFFFD") == s
}

// parseCorpusString reads a one-string Go fuzz corpus file.
func parseCorpusString(file string) (string, error) {
	lines := strings.Split(strings.TrimSpace(file), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
		return "", fmt.Errorf("unexpected corpus file %q", file)
	}
	lit := strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")")
	return strconv.Unquote(lit)
}
