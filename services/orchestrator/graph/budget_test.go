package graph

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/brainhq/brain/services/orchestrator/labs"
)

// slowMemory answers a recall after delay (or when the caller gives up) and
// records how long the recall's deadline gave it.
type slowMemory struct {
	delay time.Duration

	mu      sync.Mutex
	granted time.Duration
}

func (m *slowMemory) Recall(ctx context.Context, q labs.RecallQuery) (labs.RecallAnswer, error) {
	dl, _ := ctx.Deadline()
	m.mu.Lock()
	m.granted = time.Until(dl)
	m.mu.Unlock()
	select {
	case <-time.After(m.delay):
	case <-ctx.Done():
		return labs.RecallAnswer{}, ctx.Err()
	}
	return labs.RecallAnswer{Source: labs.SourcePostgres, Episodes: []labs.RecalledEpisode{{
		Episode: labs.Episode{ID: "e1", Namespace: q.Namespace, Content: "a slow but healthy answer", Importance: 0.5},
		Scores:  labs.Scores{Relevance: 1, Total: 1}}}}, nil
}

func (m *slowMemory) ListEpisodes(context.Context, labs.ListQuery) ([]labs.Episode, error) {
	return nil, nil
}

// TestRunBudgetScalesEveryLabBudget: the run's budget scales every LAB's
// budget, up as well as down. A budget above the 300 ms default used to
// change nothing: LAB_011 kept its 180 ms and failed on a memory taking
// 400 ms however long the caller was willing to wait.
func TestRunBudgetScalesEveryLabBudget(t *testing.T) {
	for _, tc := range []struct {
		run         time.Duration
		lab011      time.Duration // LAB_011's budget in the run
		lab011State labs.Status   // degraded: the recall ran out of time
	}{
		{100 * time.Millisecond, 60 * time.Millisecond, labs.StatusDegraded},
		{300 * time.Millisecond, 180 * time.Millisecond, labs.StatusDegraded},
		{time.Second, 600 * time.Millisecond, labs.StatusOK},
		{3 * time.Second, 1800 * time.Millisecond, labs.StatusOK},
	} {
		t.Run(tc.run.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := &slowMemory{delay: 400 * time.Millisecond}
				s, err := New(labs.Catalog(mem, nil))
				if err != nil {
					t.Fatal(err)
				}
				req := labs.Request{Namespace: "ns", Query: "how did the deploy go", AsOf: time.Now()}
				req.Options = req.Options.WithDefaults()
				var sum Summary
				if err := s.Run(context.Background(), req, tc.run, func(e Event) error {
					if e.Summary != nil {
						sum = *e.Summary
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				r, ok := sum.Result(labs.IDWorkingMemory)
				if !ok {
					t.Fatal("no LAB_011 result")
				}
				// LAB_011 keeps a tenth of its time (at most a few ms) back
				// from the recall; the recall's deadline is measured on the
				// bubble's clock, so nothing else moves it.
				mem.mu.Lock()
				granted := mem.granted
				mem.mu.Unlock()
				if granted > tc.lab011 || granted < tc.lab011*8/10 {
					t.Errorf("recall deadline %s away in a %s run, want just under LAB_011's %s", granted, tc.run, tc.lab011)
				}
				if r.Status != tc.lab011State {
					t.Errorf("LAB_011 %s in a %s run (%s), want %s", r.Status, tc.run, r.Detail, tc.lab011State)
				}
			})
		})
	}
}
