package store

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/recall"
)

// turn is one episode of a session at a minute offset from t0.
func turn(ns, session, speaker, content string, at time.Time) episode.Episode {
	return episode.Episode{Namespace: ns, SessionID: session, Speaker: speaker, Content: content, Importance: 0.5, CreatedAt: at}
}

func find(rs []recall.Result, content string) (int, recall.Scores) {
	for i, r := range rs {
		if r.Episode.Content == content {
			return i, r.Scores
		}
	}
	return -1, recall.Scores{}
}

// An answer rarely repeats its question's words: it is found through the
// question just before it in its session.
func TestRecallAnswerThroughItsQuestion(t *testing.T) {
	s, _ := newStore(t)
	at := t0.Add(-48 * time.Hour)
	mustWrite(t, s,
		turn("ctx", "s1", "Jon", "What's your favourite dish from the show?", at),
		turn("ctx", "s1", "Maria", "Coconut milk ice cream, no contest.", at.Add(time.Minute)),
		turn("ctx", "s2", "Maria", "I broke a dish in the kitchen today", at.Add(time.Hour)),
		turn("ctx", "s3", "Jon", "The dish soap ran out again", at.Add(2*time.Hour)),
		turn("ctx", "s3", "Maria", "Buy some on the way home.", at.Add(2*time.Hour+time.Minute)),
	)
	rs, err := s.Recall(testCtx(t), recall.Query{Namespace: "ctx", Text: "What is Maria's favourite dish from the show?", AsOf: t0})
	if err != nil {
		t.Fatal(err)
	}
	i, sc := find(rs, "Coconut milk ice cream, no contest.")
	if i < 0 || i > 1 || sc.OwnWords != 0 || sc.Context <= 0 {
		t.Fatalf("answer at %d with %+v in %q; want in the top 2, found by context alone", i, sc, contents(rs))
	}
	// A reply to a statement is not lifted by it.
	if j, _ := find(rs, "Buy some on the way home."); j >= 0 {
		t.Fatalf("the reply to a statement was recalled (at %d): %q", j, contents(rs))
	}
}

// Context is read at query time, so it follows writes in any order and
// deletes: an episode inserted between a question and its answer becomes
// the question's neighbour; deleting it makes the answer the neighbour
// again.
func TestRecallContextFollowsWrites(t *testing.T) {
	s, _ := newStore(t)
	at := t0.Add(-24 * time.Hour)
	const answer, between = "Lisbon, for a whole week.", "Sorry, my train was late."
	mustWrite(t, s,
		turn("ooo", "s", "Ann", "Where did you go on holiday?", at),
		turn("ooo", "s", "Bo", answer, at.Add(10*time.Minute)),
	)
	q := recall.Query{Namespace: "ooo", Text: "holiday destination", AsOf: t0}
	recallNow := func() []recall.Result {
		t.Helper()
		rs, err := s.Recall(testCtx(t), q)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	if i, sc := find(recallNow(), answer); i < 0 || sc.Context <= 0 {
		t.Fatalf("before: answer at %d %+v", i, sc)
	}
	late := mustWrite(t, s, turn("ooo", "s", "Bo", between, at.Add(5*time.Minute)))
	rs := recallNow()
	if i, sc := find(rs, between); i < 0 || sc.Context <= 0 {
		t.Fatalf("after the out-of-order insert, the new neighbour at %d %+v in %q", i, sc, contents(rs))
	}
	if i, _ := find(rs, answer); i >= 0 {
		t.Fatalf("after the out-of-order insert the answer still has the question's context: %q", contents(rs))
	}
	if ok, err := s.Delete(testCtx(t), "ooo", late[0].ID); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	rs = recallNow()
	if i, sc := find(rs, answer); i < 0 || sc.Context <= 0 {
		t.Fatalf("after the delete: answer at %d %+v in %q", i, sc, contents(rs))
	}
	if i, _ := find(rs, between); i >= 0 {
		t.Fatalf("a deleted episode was recalled: %q", contents(rs))
	}
}

// A query that names a speaker of the namespace prefers that speaker's
// episodes; the name still counts where content mentions it. The speaker
// filter is exact, on Recall and on List.
func TestRecallPrefersNamedSpeaker(t *testing.T) {
	s, _ := newStore(t)
	at := t0.Add(-72 * time.Hour)
	mustWrite(t, s,
		turn("sp", "a", "Olivia", "I cooked a lasagne for the party", at),
		turn("sp", "a", "Nate", "I cooked paella for the party", at.Add(time.Minute)),
		turn("sp", "b", "Olivia", "Nate told me the party was fun", at.Add(time.Hour)),
	)
	rs, err := s.Recall(testCtx(t), recall.Query{Namespace: "sp", Text: "What did Nate cook for the party?", AsOf: t0})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) == 0 || rs[0].Episode.Content != "I cooked paella for the party" || rs[0].Scores.Speaker != 1 || !rs[0].Scores.SpeakerNamed {
		t.Fatalf("got %q (first scores %+v); want Nate's own turn first, with the speaker part", contents(rs), rs[0].Scores)
	}
	if i, sc := find(rs, "Nate told me the party was fun"); i < 0 || sc.Speaker != 0 {
		t.Fatalf("a turn mentioning Nate at %d %+v; want it recalled without the speaker part", i, sc)
	}
	for _, r := range rs {
		c := recall.Contributions([]recall.Result{r}, recall.Query{Text: "What did Nate cook for the party?"}, t0)[0]
		if sum := c.OwnWords + c.Context + c.Speaker + c.Time + c.Importance + c.Recency; math.Abs(sum-r.Scores.Total) > 1e-9 {
			t.Fatalf("contributions %+v sum to %v, total %v", c, sum, r.Scores.Total)
		}
	}

	rs, err = s.Recall(testCtx(t), recall.Query{Namespace: "sp", Text: "party", Speaker: "Olivia", AsOf: t0})
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(rs); !slices.Equal(got, []string{"Nate told me the party was fun", "I cooked a lasagne for the party"}) &&
		!slices.Equal(got, []string{"I cooked a lasagne for the party", "Nate told me the party was fun"}) {
		t.Fatalf("speaker filter: %q", got)
	}
	list, _, err := s.List(testCtx(t), ListQuery{Namespace: "sp", Speaker: "Nate"})
	if err != nil || len(list) != 1 || list[0].Speaker != "Nate" {
		t.Fatalf("list by speaker: %+v %v", list, err)
	}
	// A speaker nobody is named after, and a namespace's speakers, stay
	// its own: another namespace's Nate is not named here.
	mustWrite(t, s, turn("other", "x", "Zed", "I cooked for the party", at))
	rs, _ = s.Recall(testCtx(t), recall.Query{Namespace: "other", Text: "What did Nate cook for the party?", AsOf: t0})
	if len(rs) != 1 || rs[0].Scores.SpeakerNamed {
		t.Fatalf("other namespace: %+v", rs)
	}
}

// "last week" is taken relative to as_of and prefers that week; a query
// that is only a time is answered by time, then recency.
func TestRecallLastWeekRelativeToAsOf(t *testing.T) {
	s, _ := newStore(t)
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 15, 0, 0, 0, time.UTC) }
	mustWrite(t, s,
		turn("tw", "1", "Ann", "we went hiking in the hills", day(2025, 2, 19)),
		turn("tw", "2", "Ann", "we went hiking by the lake", day(2025, 1, 10)),
		turn("tw", "3", "Ann", "we went hiking again, short one", day(2025, 2, 28)),
	)
	first := func(asOf time.Time, text string) recall.Result {
		t.Helper()
		rs, err := s.Recall(testCtx(t), recall.Query{Namespace: "tw", Text: text, AsOf: asOf})
		if err != nil || len(rs) == 0 {
			t.Fatalf("%q at %s: %v %v", text, asOf, rs, err)
		}
		return rs[0]
	}
	// t0 is Saturday 1 March 2025: last week is 17–23 February.
	if r := first(t0, "Where did we go hiking last week?"); r.Episode.Content != "we went hiking in the hills" || r.Scores.Time != 1 {
		t.Fatalf("last week of %s: %q %+v", t0, r.Episode.Content, r.Scores)
	}
	// As of Wednesday 15 January, last week is 6–12 January.
	if r := first(day(2025, 1, 15), "Where did we go hiking last week?"); r.Episode.Content != "we went hiking by the lake" {
		t.Fatalf("last week of 15 January: %q %+v", r.Episode.Content, r.Scores)
	}
	if r := first(t0, "on 19 February 2025"); r.Episode.Content != "we went hiking in the hills" || r.Scores.Time != 1 {
		t.Fatalf("date only: %q %+v", r.Episode.Content, r.Scores)
	}
}

// Turns written together without times keep their order, so context
// (which reads a session by created_at) finds an answer after its question;
// a retry keeps the times first given.
func TestBatchWithoutTimesKeepsItsOrder(t *testing.T) {
	s, _ := newStore(t)
	var batch []episode.Episode
	for i := range 20 {
		batch = append(batch, episode.Episode{Namespace: "ord", SessionID: "s", Content: fmt.Sprintf("turn %02d", i), Importance: 0.5})
	}
	first := mustWrite(t, s, batch...)
	list, _, err := s.List(testCtx(t), ListQuery{Namespace: "ord", SessionID: "s"})
	if err != nil || len(list) != len(batch) {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	for i, e := range list {
		if e.Content != batch[i].Content {
			t.Fatalf("position %d holds %q, want %q", i, e.Content, batch[i].Content)
		}
		if i > 0 && !e.CreatedAt.After(list[i-1].CreatedAt) {
			t.Fatalf("created_at not increasing at %d: %s then %s", i, list[i-1].CreatedAt, e.CreatedAt)
		}
	}
	for i := range batch {
		batch[i].ID = first[i].ID
		batch[i].Content += " (rewritten)"
	}
	again := mustWrite(t, s, batch...)
	for i := range again {
		if !again[i].CreatedAt.Equal(first[i].CreatedAt) {
			t.Fatalf("retry moved created_at of %d: %s -> %s", i, first[i].CreatedAt, again[i].CreatedAt)
		}
	}
	// A question and its answer written in one batch: the answer is found
	// through the question.
	mustWrite(t, s,
		episode.Episode{Namespace: "ord2", SessionID: "c", Speaker: "Jon", Content: "What did you think of the concert?", Importance: 0.5},
		episode.Episode{Namespace: "ord2", SessionID: "c", Speaker: "Maria", Content: "Loved it, they played for three hours.", Importance: 0.5})
	rs, err := s.Recall(testCtx(t), recall.Query{Namespace: "ord2", Text: "What did Maria think of the concert?"})
	if err != nil {
		t.Fatal(err)
	}
	if i, sc := find(rs, "Loved it, they played for three hours."); i != 0 || sc.Context <= 0 {
		t.Fatalf("answer at %d %+v in %q", i, sc, contents(rs))
	}
}

// Metadata filters keep only episodes holding every pair, on Recall (ranked,
// context neighbours included, and substring) and on List.
func TestMetadataFilters(t *testing.T) {
	s, _ := newStore(t)
	at := t0.Add(-time.Hour)
	meta := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	eps := []episode.Episode{
		{Namespace: "mf", SessionID: "a", Content: "Where did you park the car?", Importance: 0.5, CreatedAt: at, Metadata: meta("channel", "web", "user", "ann")},
		{Namespace: "mf", SessionID: "a", Content: "Level three, near the lifts.", Importance: 0.5, CreatedAt: at.Add(time.Minute), Metadata: meta("channel", "mobile", "user", "ann")},
		{Namespace: "mf", SessionID: "b", Content: "The car is in the garage", Importance: 0.5, CreatedAt: at.Add(time.Hour), Metadata: meta("channel", "web", "user", "bo")},
	}
	mustWrite(t, s, eps...)
	recallWith := func(text string, mode recall.MatchMode, m map[string]string) []string {
		t.Helper()
		rs, err := s.Recall(testCtx(t), recall.Query{Namespace: "mf", Text: text, Mode: mode, Metadata: m, AsOf: t0})
		if err != nil {
			t.Fatal(err)
		}
		got := contents(rs)
		slices.Sort(got)
		return got
	}
	tests := []struct {
		name   string
		text   string
		mode   recall.MatchMode
		filter map[string]string
		want   []string
	}{
		{"no filter", "where is the car parked", recall.Ranked, nil, []string{"Level three, near the lifts.", "The car is in the garage", "Where did you park the car?"}},
		{"one pair", "where is the car parked", recall.Ranked, meta("channel", "web"), []string{"The car is in the garage", "Where did you park the car?"}},
		{"every pair must match", "where is the car parked", recall.Ranked, meta("channel", "web", "user", "ann"), []string{"Where did you park the car?"}},
		{"a neighbour must match too", "where is the car parked", recall.Ranked, meta("channel", "mobile"), nil},
		{"no episode holds it", "car", recall.Ranked, meta("channel", "fax"), nil},
		{"substring", "car", recall.Substring, meta("user", "bo"), []string{"The car is in the garage"}},
	}
	for _, tt := range tests {
		if got := recallWith(tt.text, tt.mode, tt.filter); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	list, _, err := s.List(testCtx(t), ListQuery{Namespace: "mf", Metadata: meta("user", "ann")})
	if err != nil || len(list) != 2 {
		t.Fatalf("list by metadata: %d %v", len(list), err)
	}
	// A page token is bound to its filter.
	first, next, err := s.List(testCtx(t), ListQuery{Namespace: "mf", Metadata: meta("user", "ann"), PageSize: 1})
	if err != nil || len(first) != 1 || next == "" {
		t.Fatalf("page 1: %v %q %v", first, next, err)
	}
	if _, _, err := s.List(testCtx(t), ListQuery{Namespace: "mf", Metadata: meta("user", "bo"), PageToken: next}); !errors.Is(err, ErrBadPageToken) {
		t.Fatalf("token with another filter: %v, want ErrBadPageToken", err)
	}
}
