package api

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/orchestrator/labs"
)

// sessionMemory is fixedMemory with a compare-and-set session store.
type sessionMemory struct {
	*fixedMemory
	mu      sync.Mutex
	version int64
	items   []labs.SessionItem
}

func (s *sessionMemory) GetWorkingMemory(context.Context, string, string) (labs.SessionBuffer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return labs.SessionBuffer{Version: s.version, Items: slices.Clone(s.items)}, nil
}

func (s *sessionMemory) PutWorkingMemory(_ context.Context, _, _ string, expected int64, items []labs.SessionItem) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if expected != s.version {
		return 0, labs.ErrSessionConflict
	}
	s.version++
	s.items = slices.Clone(items)
	return s.version, nil
}

// TestOrchestrateWithSession: a run with a session id ends by writing the
// buffer, and the summary lists it with origins, LAB_007's predictions
// among them as predicted, within capacity; the next turn loads it. A run
// without a session id has no session in its summary and no origins.
func TestOrchestrateWithSession(t *testing.T) {
	mem := &sessionMemory{fixedMemory: newFixedMemory(12)}
	c := serve(t, Deps{Memory: mem, Access: &recorder{}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := baseRequest()
	req.Options.WorkingMemoryCapacity = 9
	results, sum, err := orchestrate(ctx, c, req)
	if err != nil || sum == nil {
		t.Fatal(err)
	}
	s := sum.GetSession()
	if !s.GetSaved() || s.GetVersion() != 1 || s.GetAttempts() != 1 || len(s.GetItems()) == 0 || len(s.GetItems()) > 9 {
		t.Fatalf("session %v, want saved at version 1 with 1..9 items", s)
	}
	preds := byID(results)["LAB_007"].GetPreload().GetPredictions()
	if len(preds) == 0 {
		t.Fatal("LAB_007 predicted nothing; the test needs predictions")
	}
	predicted := 0
	for _, it := range s.GetItems() {
		if it.GetOrigin() == memoryv1.Origin_ORIGIN_PREDICTED {
			predicted++
		}
		if it.GetOrigin() == memoryv1.Origin_ORIGIN_UNSPECIFIED {
			t.Errorf("item %s without an origin", it.GetEpisodeId())
		}
	}
	if predicted == 0 {
		t.Errorf("no prediction entered the buffer %v (LAB_007 predicted %d)", s.GetItems(), len(preds))
	}
	if len(mem.items) != len(s.GetItems()) {
		t.Errorf("stored %d items, summary lists %d", len(mem.items), len(s.GetItems()))
	}
	for _, it := range byID(results)["LAB_011"].GetWorkingMemory().GetItems() {
		if it.GetOrigin() != memoryv1.Origin_ORIGIN_RECALLED {
			t.Errorf("turn 1 item %s origin %s, want recalled", it.GetEpisodeId(), it.GetOrigin())
		}
	}

	// Turn 2 loads version 1: last turn's predictions are there, as predicted.
	results, sum, err = orchestrate(ctx, c, req)
	if err != nil {
		t.Fatal(err)
	}
	wm := byID(results)["LAB_011"].GetWorkingMemory()
	if wm.GetSessionVersion() != 1 || sum.GetSession().GetVersion() != 2 {
		t.Fatalf("turn 2 loaded version %d, wrote %d; want 1 and 2", wm.GetSessionVersion(), sum.GetSession().GetVersion())
	}
	if !slices.ContainsFunc(wm.GetItems(), func(it *orchestratorv1.BufferItem) bool {
		return it.GetOrigin() == memoryv1.Origin_ORIGIN_PREDICTED
	}) {
		t.Errorf("turn 2 buffer %v holds none of turn 1's predictions", wm.GetItems())
	}

	req.SessionId = ""
	results, sum, err = orchestrate(ctx, c, req)
	if err != nil || sum.GetSession() != nil || mem.version != 2 {
		t.Fatalf("without a session: %v, session %v, version %d", err, sum.GetSession(), mem.version)
	}
	for _, it := range byID(results)["LAB_011"].GetWorkingMemory().GetItems() {
		if it.GetOrigin() != memoryv1.Origin_ORIGIN_UNSPECIFIED {
			t.Errorf("without a session, item %s has origin %s", it.GetEpisodeId(), it.GetOrigin())
		}
	}
}
