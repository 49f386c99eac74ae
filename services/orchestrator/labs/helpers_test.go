package labs

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// asOf is the "now" of every test run.
var asOf = time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)

const eps = 1e-6

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > eps {
		t.Errorf("%s = %.6f, want %.6f", what, got, want)
	}
}

func request(query string) Request {
	return Request{Namespace: "ns", Query: query, AsOf: asOf, Options: DefaultOptions()}
}

func ok(v Value) Outcome { return Outcome{Status: StatusOK, Value: v} }

// fakeMemory answers Recall with a fixed answer and ListEpisodes from a
// fixed list of episodes, filtered and ordered as memory does.
type fakeMemory struct {
	answer    RecallAnswer
	recallErr error
	episodes  []Episode
	listErr   error

	mu        sync.Mutex
	recalls   []RecallQuery
	listCalls []ListQuery
}

func (f *fakeMemory) Recall(_ context.Context, q RecallQuery) (RecallAnswer, error) {
	f.mu.Lock()
	f.recalls = append(f.recalls, q)
	f.mu.Unlock()
	return f.answer, f.recallErr
}

func (f *fakeMemory) ListEpisodes(_ context.Context, q ListQuery) ([]Episode, error) {
	f.mu.Lock()
	f.listCalls = append(f.listCalls, q)
	f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	var out []Episode
	for _, e := range f.episodes {
		if (q.SessionID == "" || e.SessionID == q.SessionID) && e.CreatedAt.After(q.CreatedAfter) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Episode) int { return a.CreatedAt.Compare(b.CreatedAt) })
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

var errUnreachable = errors.New("connection refused")

// fakeRecorder takes or refuses submissions.
type fakeRecorder struct {
	refuse bool
	calls  [][]string
}

func (f *fakeRecorder) Submit(_ string, ids []string) bool {
	if f.refuse {
		return false
	}
	f.calls = append(f.calls, ids)
	return true
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
