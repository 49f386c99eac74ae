package store

import (
	"errors"
	"sync"
	"testing"

	"github.com/brainhq/brain/services/memory/episode"
)

func wmItem(id string, origin episode.Origin) episode.WorkingMemoryItem {
	return episode.WorkingMemoryItem{EpisodeID: id, Content: "c " + id, Origin: origin, Attention: 0.4,
		TurnsSinceAttended: 1, Rehearsals: 2, AddedAt: t0, LastAttendedAt: t0.Add(1e9)}
}

func TestWorkingMemoryCompareAndSet(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	eps := mustWrite(t, s, ep("ns", "alpha", 1), ep("ns", "beta", 1))

	wm, err := s.GetWorkingMemory(ctx, "ns", "s1")
	if err != nil || wm.Version != 0 || len(wm.Items) != 0 {
		t.Fatalf("unknown session: %+v, %v; want version 0, empty", wm, err)
	}
	put, err := s.PutWorkingMemory(ctx, "ns", "s1", 0, []episode.WorkingMemoryItem{
		wmItem(eps[1].ID, episode.OriginRecalled), wmItem(eps[0].ID, episode.OriginHeld)})
	if err != nil || put.Version != 1 {
		t.Fatalf("first put: %+v, %v; want version 1", put, err)
	}
	got, err := s.GetWorkingMemory(ctx, "ns", "s1")
	if err != nil || got.Version != 1 || len(got.Items) != 2 {
		t.Fatalf("get after put: %+v, %v", got, err)
	}
	if want := wmItem(eps[1].ID, episode.OriginRecalled); got.Items[0] != want {
		t.Errorf("item 0 = %+v, want %+v (order and fields kept)", got.Items[0], want)
	}
	// A stale version, and a second creation, lose.
	for _, stale := range []int64{0, 2, 7} {
		if _, err := s.PutWorkingMemory(ctx, "ns", "s1", stale, nil); !errors.Is(err, ErrVersionConflict) {
			t.Errorf("put with stale version %d: %v, want ErrVersionConflict", stale, err)
		}
	}
	put, err = s.PutWorkingMemory(ctx, "ns", "s1", 1, []episode.WorkingMemoryItem{wmItem(eps[0].ID, episode.OriginPredicted)})
	if err != nil || put.Version != 2 {
		t.Fatalf("second put: %+v, %v; want version 2", put, err)
	}
	if got, _ := s.GetWorkingMemory(ctx, "ns", "s1"); got.Version != 2 || len(got.Items) != 1 || got.Items[0].Origin != episode.OriginPredicted {
		t.Fatalf("get after second put: %+v", got)
	}
	// Another session of the same namespace is its own buffer.
	if got, _ := s.GetWorkingMemory(ctx, "ns", "s2"); got.Version != 0 {
		t.Errorf("other session: version %d, want 0", got.Version)
	}

	// Clear empties and advances, so a writer that read version 2 loses.
	cleared, v, err := s.ClearWorkingMemory(ctx, "ns", "s1")
	if err != nil || !cleared || v != 3 {
		t.Fatalf("clear: %v %d %v; want true 3", cleared, v, err)
	}
	if _, err := s.PutWorkingMemory(ctx, "ns", "s1", 2, nil); !errors.Is(err, ErrVersionConflict) {
		t.Errorf("put after clear with the old version: %v, want conflict", err)
	}
	if got, _ := s.GetWorkingMemory(ctx, "ns", "s1"); got.Version != 3 || len(got.Items) != 0 {
		t.Errorf("after clear: %+v", got)
	}
	if cleared, v, err := s.ClearWorkingMemory(ctx, "ns", "nobody"); err != nil || cleared || v != 0 {
		t.Errorf("clear of an unknown session: %v %d %v", cleared, v, err)
	}
}

func TestWorkingMemoryRefusesForeignEpisodes(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	other := mustWrite(t, s, ep("other", "theirs", 1))
	_, err := s.PutWorkingMemory(ctx, "ns", "s1", 0, []episode.WorkingMemoryItem{wmItem(other[0].ID, episode.OriginRecalled)})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("episode of another namespace: %v, want ErrInvalid", err)
	}
	// Rolled back: the session still has no buffer.
	if got, _ := s.GetWorkingMemory(ctx, "ns", "s1"); got.Version != 0 {
		t.Errorf("after a refused put: version %d, want 0", got.Version)
	}
}

func TestWorkingMemoryFollowsDeletes(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	eps := mustWrite(t, s, ep("ns", "alpha", 1), ep("ns", "beta", 1))
	items := []episode.WorkingMemoryItem{wmItem(eps[0].ID, episode.OriginRecalled), wmItem(eps[1].ID, episode.OriginHeld)}
	for _, sess := range []string{"s1", "s2"} {
		if _, err := s.PutWorkingMemory(ctx, "ns", sess, 0, items); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.Delete(ctx, "ns", eps[0].ID); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	for _, sess := range []string{"s1", "s2"} {
		got, _ := s.GetWorkingMemory(ctx, "ns", sess)
		if len(got.Items) != 1 || got.Items[0].EpisodeID != eps[1].ID {
			t.Errorf("%s after deleting an episode: %+v, want only %s", sess, got.Items, eps[1].ID)
		}
	}
	if _, err := s.DeleteNamespace(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteWorkingMemories(ctx, "ns"); err != nil || n != 2 {
		t.Fatalf("delete working memories: %d %v, want 2", n, err)
	}
	if got, _ := s.GetWorkingMemory(ctx, "ns", "s1"); got.Version != 0 || len(got.Items) != 0 {
		t.Errorf("after erasing the namespace: %+v, want version 0", got)
	}
}

// TestWorkingMemoryConcurrentPuts: writers racing on one version, each
// retrying after a conflict from a fresh read, advance the version by
// exactly one per writer and never lose one's item.
func TestWorkingMemoryConcurrentPuts(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	const writers = 8
	var eps []episode.Episode
	for range writers {
		eps = append(eps, ep("ns", "x", 1))
	}
	eps = mustWrite(t, s, eps...)
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for attempt := 0; attempt < 100; attempt++ {
				cur, err := s.GetWorkingMemory(ctx, "ns", "s")
				if err != nil {
					errs[w] = err
					return
				}
				items := append(cur.Items, wmItem(eps[w].ID, episode.OriginRecalled))
				_, err = s.PutWorkingMemory(ctx, "ns", "s", cur.Version, items)
				if !errors.Is(err, ErrVersionConflict) {
					errs[w] = err
					return
				}
			}
			errs[w] = errors.New("never won")
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	got, _ := s.GetWorkingMemory(ctx, "ns", "s")
	if got.Version != writers || len(got.Items) != writers {
		t.Fatalf("version %d with %d items, want %d and %d", got.Version, len(got.Items), writers, writers)
	}
}
