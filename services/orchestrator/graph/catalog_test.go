package graph

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/brainhq/brain/services/orchestrator/labs"
)

var asOf = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// sessionMemory is a small in-memory episode store answering Recall with a
// fixed ranking and ListEpisodes by session and time.
type sessionMemory struct {
	episodes []labs.Episode
}

func newSessionMemory() *sessionMemory {
	contents := []string{
		"the deploy failed on friday because the database migration timed out",
		"we fixed the deploy pipeline and it worked, great success",
		"coffee with alice about the roadmap",
		"the deploy failed on friday because the database migration timed out!",
		"anxious about the outage and the angry customer",
		"planning the next release, excited about the new cache",
		"notes from the retro: the deploy checklist helped",
		"bob was frustrated by flaky tests",
		"rollback procedure documented",
		"calm week, nothing urgent",
	}
	m := &sessionMemory{}
	for i, c := range contents {
		e := labs.Episode{
			ID:         fmt.Sprintf("00000000-0000-0000-0000-%012d", i),
			Namespace:  "ns",
			SessionID:  fmt.Sprintf("s%d", i%3),
			Content:    c,
			Importance: 0.5,
			CreatedAt:  asOf.Add(-time.Duration(i*20) * time.Minute),
			Metadata:   map[string]string{"topic": []string{"deploy", "team"}[i%2]},
		}
		if i%4 == 1 {
			e.Affect = &labs.Affect{Valence: 0.6, Arousal: 0.4, Intensity: 0.5}
		}
		m.episodes = append(m.episodes, e)
	}
	return m
}

func (m *sessionMemory) Recall(_ context.Context, q labs.RecallQuery) (labs.RecallAnswer, error) {
	ans := labs.RecallAnswer{Source: labs.SourcePostgres}
	for i, e := range m.episodes {
		if i >= q.Limit {
			break
		}
		rel := 1 - float64(i)/float64(len(m.episodes))
		ans.Episodes = append(ans.Episodes, labs.RecalledEpisode{Episode: e,
			Scores: labs.Scores{Relevance: rel, Importance: 0.5, Recency: 0.5, Total: 0.6*rel + 0.2}})
	}
	return ans, nil
}

func (m *sessionMemory) ListEpisodes(_ context.Context, q labs.ListQuery) ([]labs.Episode, error) {
	var out []labs.Episode
	for _, e := range m.episodes {
		if e.SessionID == q.SessionID && e.CreatedAt.After(q.CreatedAfter) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

type countingRecorder struct {
	mu  sync.Mutex
	ids int
}

func (c *countingRecorder) Submit(_ string, ids []string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids += len(ids)
	return true
}

// Same inputs and as_of give identical outputs, whatever the completion
// order of the concurrent LABs.
func TestRunIsDeterministic(t *testing.T) {
	s, err := New(labs.Catalog(newSessionMemory(), &countingRecorder{}))
	if err != nil {
		t.Fatal(err)
	}
	min := 0.0
	opts := labs.Options{PreloadMinConfidence: &min, PreloadK: 20}.WithDefaults()
	req := labs.Request{Namespace: "ns", Query: "why did the deploy fail on friday", Goal: "ship the deploy",
		SessionID: "s0", AsOf: asOf, Options: opts,
		CurrentEmotion: &labs.Emotion{Valence: -0.3, Arousal: 0.7, Intensity: 0.5}}
	outputs := func() map[string]Result {
		var rs []Result
		err := s.Run(context.Background(), req, time.Second, func(e Event) error {
			if e.Result != nil {
				rs = append(rs, *e.Result)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return byID(rs)
	}
	first, second := outputs(), outputs()
	if len(first) != 9 {
		t.Fatalf("%d results, want 9", len(first))
	}
	for id, r := range first {
		if r.Status != labs.StatusOK {
			t.Errorf("%s = %s (%s)", id, r.Status, r.Detail)
		}
		o := second[id]
		if !reflect.DeepEqual(r.Value, o.Value) || r.Detail != o.Detail || r.Status != o.Status ||
			!reflect.DeepEqual(r.UsedSignals, o.UsedSignals) {
			t.Errorf("%s differs between runs:\n%+v\n%+v", id, r.Value, o.Value)
		}
	}
	// The run did real work: duplicates suppressed, preloads found, a reasoning trace.
	wm := first[labs.IDWorkingMemory].Value.(labs.WorkingMemory)
	if wm.SuppressedDuplicates != 1 || len(wm.Items) != 7 {
		t.Errorf("working memory kept %d, suppressed %d", len(wm.Items), wm.SuppressedDuplicates)
	}
	if p := first[labs.IDPreload].Value.(labs.Preload); len(p.Predictions) == 0 {
		t.Error("no predictions with min confidence 0")
	}
	if m := first[labs.IDMetacognition].Value.(labs.Metacognition); m.Reasoning == "" || m.Confidence <= 0 {
		t.Errorf("metacognition = %+v", m)
	}
}
