package store

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/recall"
)

// Two namespaces hold an episode with the same id and the same words; every
// method on one must neither see nor change the other.
func TestNamespaceIsolation(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	id := uuid.NewString()
	for _, ns := range []string{"alice", "bob"} {
		e := ep(ns, "secret plan for "+ns+" about the shared word zebra", 1)
		e.ID, e.SessionID = id, "sess"
		mustWrite(t, s, e)
	}
	mustWrite(t, s, ep("bob", "another zebra note of bob", 1))

	// Write: same id in two namespaces is two rows.
	if st, _ := s.Stats(ctx, ""); st.EpisodeCount != 3 || st.NamespaceCount != 2 {
		t.Fatalf("Stats = %+v", st)
	}
	// Get.
	a, err := s.Get(ctx, "alice", id)
	if err != nil || a.Content != "secret plan for alice about the shared word zebra" {
		t.Fatalf("Get alice = %+v, %v", a, err)
	}
	if _, err := s.Get(ctx, "carol", id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get carol = %v", err)
	}
	// Recall, both modes, with and without filters.
	for _, q := range []recall.Query{
		{Text: "zebra plan"}, {Text: "zebra", Mode: recall.Substring},
		{Text: "zebra", SessionID: "sess"}, {Text: "bob"}, {Text: "bob", Mode: recall.Substring},
	} {
		q.Namespace, q.AsOf = "alice", t0
		rs, err := s.Recall(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Episode.Namespace != "alice" || r.Episode.Content == "another zebra note of bob" {
				t.Fatalf("recall %+v in alice returned %+v", q, r.Episode)
			}
		}
		if q.Text == "bob" && len(rs) != 0 {
			t.Fatalf("alice's recall of bob's word returned %q", contents(rs))
		}
	}
	// Relevance statistics are per namespace too: bob's extra zebra does not
	// change alice's scores.
	before, _ := s.Recall(ctx, recall.Query{Namespace: "alice", Text: "zebra", AsOf: t0})
	mustWrite(t, s, ep("bob", "zebra zebra zebra", 1))
	after, _ := s.Recall(ctx, recall.Query{Namespace: "alice", Text: "zebra", AsOf: t0})
	if len(before) != 1 || len(after) != 1 || before[0].Scores != after[0].Scores {
		t.Fatalf("alice's scores moved with bob's writes: %+v vs %+v", before, after)
	}
	// List.
	eps, _, err := s.List(ctx, ListQuery{Namespace: "alice"})
	if err != nil || len(eps) != 1 || eps[0].Namespace != "alice" {
		t.Fatalf("List alice = %+v, %v", eps, err)
	}
	// A token from bob's listing is refused in alice's.
	_, tok, _ := s.List(ctx, ListQuery{Namespace: "bob", PageSize: 1})
	if _, _, err := s.List(ctx, ListQuery{Namespace: "alice", PageToken: tok}); !errors.Is(err, ErrBadPageToken) {
		t.Fatalf("bob's token in alice's list: %v", err)
	}
	// RecordAccess.
	if n, err := s.RecordAccess(ctx, "alice", []string{id}, t0); n != 1 || err != nil {
		t.Fatalf("RecordAccess = %d, %v", n, err)
	}
	if b, _ := s.Get(ctx, "bob", id); b.AccessCount != 0 || b.LastAccessedAt != nil {
		t.Fatalf("alice's access touched bob's episode: %+v", b)
	}
	if n, _ := s.RecordAccess(ctx, "carol", []string{id}, t0); n != 0 {
		t.Fatalf("RecordAccess in carol updated %d", n)
	}
	// Delete.
	if ok, _ := s.Delete(ctx, "carol", id); ok {
		t.Fatal("Delete in carol deleted something")
	}
	if ok, _ := s.Delete(ctx, "alice", id); !ok {
		t.Fatal("Delete in alice deleted nothing")
	}
	if _, err := s.Get(ctx, "bob", id); err != nil {
		t.Fatalf("alice's delete removed bob's episode: %v", err)
	}
	// DeleteNamespace.
	mustWrite(t, s, ep("alice", "zebra again", 0))
	if n, err := s.DeleteNamespace(ctx, "bob"); n != 3 || err != nil {
		t.Fatalf("DeleteNamespace bob = %d, %v", n, err)
	}
	if rs, _ := s.Recall(ctx, recall.Query{Namespace: "alice", Text: "zebra"}); len(rs) != 1 {
		t.Fatalf("alice after bob's erase: %q", contents(rs))
	}
	if st, _ := s.Stats(ctx, "bob"); st.EpisodeCount != 0 {
		t.Fatalf("bob after erase: %+v", st)
	}
	if st, _ := s.Stats(ctx, ""); st.EpisodeCount != 1 || st.NamespaceCount != 1 {
		t.Fatalf("Stats after erase = %+v", st)
	}
	checkIndex(t, s)
}

func TestDeleteNamespaceErasesIndex(t *testing.T) {
	s, pool := newStore(t)
	ctx := testCtx(t)
	var eps []episode.Episode
	for i := range 300 {
		eps = append(eps, ep("gone", fmt.Sprintf("episode %d with words lorem ipsum %d", i, i%7), float64(i)/24))
	}
	mustWrite(t, s, eps...)
	if n, err := s.DeleteNamespace(ctx, "gone"); n != 300 || err != nil {
		t.Fatalf("DeleteNamespace = %d, %v", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM episodes) + (SELECT count(*) FROM postings) +
		(SELECT count(*) FROM term_stats) + (SELECT coalesce(sum(episode_count + total_len), 0) FROM namespace_stats)`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("left after erase: %d, %v", left, err)
	}
	if n, err := s.DeleteNamespace(ctx, "gone"); n != 0 || err != nil {
		t.Fatalf("second DeleteNamespace = %d, %v", n, err)
	}
}

func TestRecordAccess(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	out := mustWrite(t, s, ep("ra", "one", 0), ep("ra", "two", 0), ep("ra", "three", 0))
	ids := []string{out[0].ID, out[1].ID, out[1].ID, "junk", uuid.NewString()}
	n, err := s.RecordAccess(ctx, "ra", ids, t0)
	if err != nil || n != 2 {
		t.Fatalf("RecordAccess = %d, %v; want 2", n, err)
	}
	// An earlier access counts but does not move last access back.
	if n, _ := s.RecordAccess(ctx, "ra", []string{out[0].ID}, t0.Add(-time.Hour)); n != 1 {
		t.Fatalf("second RecordAccess = %d", n)
	}
	a, _ := s.Get(ctx, "ra", out[0].ID)
	b, _ := s.Get(ctx, "ra", out[1].ID)
	c, _ := s.Get(ctx, "ra", out[2].ID)
	if a.AccessCount != 2 || !a.LastAccessedAt.Equal(t0) || b.AccessCount != 1 || c.AccessCount != 0 || c.LastAccessedAt != nil {
		t.Fatalf("after access: %+v %+v %+v", a, b, c)
	}
	if n, err := s.RecordAccess(ctx, "ra", nil, t0); n != 0 || err != nil {
		t.Fatalf("empty RecordAccess = %d, %v", n, err)
	}
}

// Several writers retrying the same batch at once store each id exactly
// once, and the index stays exact.
func TestConcurrentIdempotentWrites(t *testing.T) {
	s, pool := newStore(t)
	ctx := testCtx(t)
	var batch []episode.Episode
	for i := range 40 {
		ns := []string{"c1", "c2"}[i%2]
		batch = append(batch, episode.Episode{ID: uuid.NewString(), Namespace: ns, Importance: 0.5,
			Content: fmt.Sprintf("concurrent episode %d about topic %d", i, i%5)})
	}
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*3)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := slices.Clone(batch)
			if w%2 == 1 {
				slices.Reverse(b) // other order: lock ordering must hold
			}
			for range 3 {
				if _, err := s.Write(ctx, b); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write: %v", err)
	}
	var rows, distinct int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (namespace, id)) FROM episodes`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != len(batch) || distinct != len(batch) {
		t.Fatalf("%d rows (%d distinct), want %d", rows, distinct, len(batch))
	}
	checkIndex(t, s)
}

func TestListPaging(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	var eps []episode.Episode
	for i := range 57 {
		e := ep("l", fmt.Sprintf("item %d", i), 0)
		// Pairs share a timestamp so the id tie-break is exercised.
		e.CreatedAt = t0.Add(time.Duration(i/2) * time.Minute)
		e.SessionID = []string{"a", "b", "c"}[i%3]
		eps = append(eps, e)
	}
	mustWrite(t, s, eps...)
	mustWrite(t, s, ep("other", "item x", 0))

	collect := func(q ListQuery) []episode.Episode {
		t.Helper()
		var all []episode.Episode
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("paging does not end")
			}
			page, next, err := s.List(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > max(q.PageSize, 1) && q.PageSize > 0 {
				t.Fatalf("page of %d > %d", len(page), q.PageSize)
			}
			all = append(all, page...)
			if next == "" {
				return all
			}
			q.PageToken = next
		}
	}
	inOrder := func(all []episode.Episode, desc bool) bool {
		return slices.IsSortedFunc(all, func(a, b episode.Episode) int {
			c := a.CreatedAt.Compare(b.CreatedAt)
			if c == 0 {
				c = compareUUID(a.ID, b.ID)
			}
			if desc {
				return -c
			}
			return c
		})
	}
	after, before := t0.Add(5*time.Minute), t0.Add(20*time.Minute)
	tests := []struct {
		name string
		q    ListQuery
		want func(episode.Episode) bool
	}{
		{"all asc", ListQuery{PageSize: 10}, func(episode.Episode) bool { return true }},
		{"all desc", ListQuery{PageSize: 7, Descending: true}, func(episode.Episode) bool { return true }},
		{"default size", ListQuery{}, func(episode.Episode) bool { return true }},
		{"session", ListQuery{SessionID: "b", PageSize: 4}, func(e episode.Episode) bool { return e.SessionID == "b" }},
		{"strict range", ListQuery{CreatedAfter: &after, CreatedBefore: &before, PageSize: 3, Descending: true},
			func(e episode.Episode) bool { return e.CreatedAt.After(after) && e.CreatedAt.Before(before) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Namespace = "l"
			all := collect(tt.q)
			var want []string
			for _, e := range eps {
				if tt.want(e) {
					want = append(want, e.Content)
				}
			}
			var got []string
			for _, e := range all {
				got = append(got, e.Content)
			}
			slices.Sort(want)
			sorted := slices.Clone(got)
			slices.Sort(sorted)
			if !slices.Equal(sorted, want) {
				t.Fatalf("listed %d episodes %q, want each of %d exactly once", len(got), got, len(want))
			}
			if !inOrder(all, tt.q.Descending) {
				t.Fatalf("not in (created_at, id) order: %q", got)
			}
		})
	}
	// Tokens are bound to their filters and must be well-formed.
	_, tok, _ := s.List(ctx, ListQuery{Namespace: "l", PageSize: 2})
	for _, q := range []ListQuery{
		{Namespace: "l", PageToken: tok, Descending: true},
		{Namespace: "l", PageToken: tok, SessionID: "a"},
		{Namespace: "l", PageToken: "!!!"},
		{Namespace: "l", PageToken: tok[:len(tok)-2]},
	} {
		if _, _, err := s.List(ctx, q); !errors.Is(err, ErrBadPageToken) {
			t.Errorf("List(%+v) = %v, want ErrBadPageToken", q, err)
		}
	}
}

func compareUUID(a, b string) int {
	ua, ub := uuid.MustParse(a), uuid.MustParse(b)
	return slices.Compare(ua[:], ub[:])
}
