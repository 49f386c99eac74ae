package labs

import (
	"context"
	"strings"
	"testing"
	"time"
)

func recalled(id, content string, total float64) RecalledEpisode {
	return RecalledEpisode{
		Episode: Episode{ID: id, SessionID: "s1", Content: content, CreatedAt: asOf.Add(-time.Hour)},
		Scores:  Scores{Relevance: total, Total: total},
	}
}

func TestWorkingMemory(t *testing.T) {
	// Token sets used below:
	//   A "the deploy failed on friday"         {deploy failed friday on the}
	//   D "the deploy failed on friday night"   jaccard(A) = 5/6 = 0.833 ≥ 0.8
	//   E "deploy pipeline fixed"               jaccard(A) = 1/7 = 0.142857
	//   F "the deploy failed again on monday"   jaccard(A) = 4/7 = 0.571429
	//   C "coffee with alice", G "lunch with bob": jaccard(A) = 0
	tests := []struct {
		name           string
		answer         RecallAnswer
		err            error
		limit          int
		wantIDs        []string
		wantSuppressed int
		wantDegraded   bool
		wantSource     Source
		wantSynthetic  bool
	}{
		{
			// Pick A (0.7·0.9 = 0.63); B (identical, 1.0) and D (0.833) are
			// suppressed. Then E: 0.7·0.6 − 0.3·(1/7) = 0.377143 beats
			// C: 0.7·0.5 − 0 = 0.35; then C.
			name: "near-duplicates suppressed",
			answer: RecallAnswer{Source: SourcePostgres, Episodes: []RecalledEpisode{
				recalled("A", "the deploy failed on friday", 0.9),
				recalled("B", "The deploy failed on Friday!", 0.85),
				recalled("D", "the deploy failed on friday night", 0.8),
				recalled("E", "deploy pipeline fixed", 0.6),
				recalled("C", "coffee with alice", 0.5),
			}},
			limit: 3, wantIDs: []string{"A", "E", "C"}, wantSuppressed: 2, wantSource: SourcePostgres,
		},
		{
			// After A, F scores 0.7·0.75 − 0.3·0.571429 = 0.353571 and G
			// 0.7·0.55 = 0.385: the novel G wins despite a lower total.
			name: "novelty beats a similar better-ranked candidate",
			answer: RecallAnswer{Source: SourcePostgres, Episodes: []RecalledEpisode{
				recalled("A", "the deploy failed on friday", 0.9),
				recalled("F", "the deploy failed again on monday", 0.75),
				recalled("G", "lunch with bob", 0.55),
			}},
			limit: 2, wantIDs: []string{"A", "G"}, wantSource: SourcePostgres,
		},
		{
			name: "equal scores keep memory's order",
			answer: RecallAnswer{Source: SourcePostgres, Episodes: []RecalledEpisode{
				recalled("X", "alpha", 0.5), recalled("Y", "beta", 0.5), recalled("Z", "gamma", 0.5),
			}},
			limit: 7, wantIDs: []string{"X", "Y", "Z"}, wantSource: SourcePostgres,
		},
		{
			name: "degraded but not empty keeps the cached items",
			answer: RecallAnswer{Source: SourceCache, Degraded: true, DegradedReason: "breaker open",
				Episodes: []RecalledEpisode{recalled("A", "the deploy failed on friday", 0.9)}},
			limit: 7, wantIDs: []string{"A"}, wantDegraded: true, wantSource: SourceCache,
		},
		{
			name:   "not degraded and empty is an honest empty buffer",
			answer: RecallAnswer{Source: SourcePostgres},
			limit:  7, wantIDs: nil, wantSource: SourcePostgres,
		},
		{
			name:   "degraded and empty gives the synthetic item",
			answer: RecallAnswer{Source: SourceNone, Degraded: true, DegradedReason: "breaker open"},
			limit:  7, wantIDs: []string{""}, wantDegraded: true, wantSource: SourceNone, wantSynthetic: true,
		},
		{
			name: "memory unreachable gives the synthetic item",
			err:  errUnreachable, limit: 7, wantIDs: []string{""}, wantDegraded: true, wantSource: SourceNone,
			wantSynthetic: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := &fakeMemory{answer: tc.answer, recallErr: tc.err}
			req := request("why did the deploy fail")
			req.SessionID = "me"
			req.Options.RecallLimit = tc.limit
			out, err := NewWorkingMemory(mem).Run(context.Background(), Inputs{Request: req})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			wm := out.Value.(WorkingMemory)
			var ids []string
			for _, it := range wm.Items {
				ids = append(ids, it.EpisodeID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.wantIDs, ",") || len(ids) != len(tc.wantIDs) {
				t.Errorf("items = %q, want %q", ids, tc.wantIDs)
			}
			if wm.SuppressedDuplicates != tc.wantSuppressed {
				t.Errorf("suppressed = %d, want %d", wm.SuppressedDuplicates, tc.wantSuppressed)
			}
			if out.Degraded != tc.wantDegraded || wm.Degraded != tc.wantDegraded {
				t.Errorf("degraded = %v/%v, want %v", out.Degraded, wm.Degraded, tc.wantDegraded)
			}
			if wm.Source != tc.wantSource {
				t.Errorf("source = %v, want %v", wm.Source, tc.wantSource)
			}
			if wm.Candidates != len(tc.answer.Episodes) {
				t.Errorf("candidates = %d, want %d", wm.Candidates, len(tc.answer.Episodes))
			}
			if tc.wantSynthetic {
				it := wm.Items[0]
				if !it.Synthetic || it.Content != req.Query || !it.CreatedAt.Equal(asOf) || it.SessionID != "me" {
					t.Errorf("synthetic item = %+v", it)
				}
				if wm.DegradedReason == "" || !strings.Contains(out.Detail, wm.DegradedReason) {
					t.Errorf("reason %q not in detail %q", wm.DegradedReason, out.Detail)
				}
			}
			if tc.err != nil && !strings.Contains(wm.DegradedReason, errUnreachable.Error()) {
				t.Errorf("reason %q does not carry the error", wm.DegradedReason)
			}
			// The recall asked for the candidate pool with the run's as_of.
			q := mem.recalls[0]
			if q.Limit != DefaultCandidatePool || !q.AsOf.Equal(asOf) || q.Namespace != "ns" ||
				q.RecencyHalfLife != DefaultRecencyHalfLife || q.Query != req.Query {
				t.Errorf("recall query = %+v", q)
			}
		})
	}
}

func TestWorkingMemoryCutsContentOnRunes(t *testing.T) {
	content := strings.Repeat("é", 20) // 2 bytes each
	mem := &fakeMemory{answer: RecallAnswer{Source: SourcePostgres,
		Episodes: []RecalledEpisode{recalled("A", content, 0.5)}}}
	req := request("é")
	req.Options.ContentMaxChars = 16
	out, err := NewWorkingMemory(mem).Run(context.Background(), Inputs{Request: req})
	if err != nil {
		t.Fatal(err)
	}
	got := out.Value.(WorkingMemory).Items[0].Content
	if got != strings.Repeat("é", 16) {
		t.Errorf("content = %q (%d bytes), want 16 runes", got, len(got))
	}
}

func TestCutRunes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 3, "hel"},
		{"hello", 5, "hello"},
		{"hello", 9, "hello"},
		{"日本語テキスト", 3, "日本語"},
		{"a日b", 2, "a日"},
		{"abc", 0, ""},
	} {
		if got := cutRunes(tc.in, tc.n); got != tc.want {
			t.Errorf("cutRunes(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// A memory that never answers must still leave LAB_011 time to build the
// synthetic item within its own deadline.
func TestWorkingMemoryReservesTimeWhenMemoryHangs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	out, err := NewWorkingMemory(hangingMemory{}).Run(ctx, Inputs{Request: request("q")})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Errorf("returned after its own deadline")
	}
	if wm := out.Value.(WorkingMemory); len(wm.Items) != 1 || !wm.Items[0].Synthetic {
		t.Errorf("want the synthetic item, got %+v", wm)
	}
}

type hangingMemory struct{}

func (hangingMemory) Recall(ctx context.Context, _ RecallQuery) (RecallAnswer, error) {
	<-ctx.Done()
	return RecallAnswer{}, ctx.Err()
}

func (hangingMemory) ListEpisodes(ctx context.Context, _ ListQuery) ([]Episode, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
