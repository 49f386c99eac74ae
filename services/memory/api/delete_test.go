package api

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/fallback"
	"github.com/brainhq/brain/services/memory/recall"
)

// deleteStore fails or succeeds deletes; the handlers under test call
// nothing else.
type deleteStore struct {
	Store
	err     error
	erasing *int // batches left to erase before the namespace is empty
}

func (s deleteStore) Delete(context.Context, string, string) (bool, error) {
	return s.err == nil, s.err
}
func (s deleteStore) DeleteWorkingMemories(context.Context, string) (int64, error) { return 0, nil }
func (s deleteStore) DeleteNamespaceBatch(context.Context, string) (int64, error) {
	if s.err != nil {
		return 0, s.err
	}
	if *s.erasing == 0 {
		return 0, nil
	}
	*s.erasing--
	return 1, nil
}

// TestDeletesPurgeTheCache: whatever a delete's outcome, no cached answer
// holding what it deleted survives it, and after a failure (which may have
// committed) the namespace stores nothing for DeleteHold.
func TestDeletesPurgeTheCache(t *testing.T) {
	const id = "123e4567-e89b-12d3-a456-426614174000"
	timeout := &timeoutErr{}
	tests := []struct {
		name   string
		err    error
		delete func(*Server) error
		held   bool
	}{
		{"erase committed", nil, eraseNS, false},
		{"erase timed out", timeout, eraseNS, true},
		{"erase answered with an error", errors.New("boom"), eraseNS, true},
		{"episode deleted", nil, deleteEp(id), false},
		{"episode delete timed out", timeout, deleteEp(id), true},
		{"episode deleted, id in upper case", nil, deleteEp("123E4567-E89B-12D3-A456-426614174000"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			cache := fallback.NewCache(10, 1<<20, time.Hour, clock)
			held := []recall.Result{{Episode: episode.Episode{ID: id, Namespace: "ns"}}}
			cache.Put(cache.Ticket("ns"), "k", held)
			s := New(Deps{Store: deleteStore{err: tt.err, erasing: new(int(1))}, Guard: fallback.NewGuard(fallback.NewBreaker(100, 0, clock, nil)),
				Cache: cache, Log: zap.NewNop(), Now: clock, DeleteHold: 5 * time.Second})
			err := tt.delete(s)
			if (err == nil) != (tt.err == nil) {
				t.Fatalf("delete: %v, store said %v", err, tt.err)
			}
			if _, _, ok := cache.Get("k"); ok {
				t.Fatal("the cached answer holding the deleted episode survived the delete")
			}
			stored := cache.Put(cache.Ticket("ns"), "k2", []recall.Result{{Episode: episode.Episode{ID: "other", Namespace: "ns"}}})
			if stored == tt.held {
				t.Fatalf("Put right after the delete stored=%v, want held=%v", stored, tt.held)
			}
		})
	}
}

func eraseNS(s *Server) error {
	_, err := s.DeleteNamespace(context.Background(), &memoryv1.DeleteNamespaceRequest{Namespace: "ns"})
	return err
}

func deleteEp(id string) func(*Server) error {
	return func(s *Server) error {
		_, err := s.DeleteEpisode(context.Background(), &memoryv1.DeleteEpisodeRequest{Namespace: "ns", Id: id})
		return err
	}
}

// timeoutErr is a call that ran out of time: the outcome is unknown.
type timeoutErr struct{}

func (*timeoutErr) Error() string { return "timeout" }
func (*timeoutErr) Unwrap() error { return context.DeadlineExceeded }
