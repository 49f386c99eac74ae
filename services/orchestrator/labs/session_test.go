package labs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func recalledItem(id string, total float64) BufferItem {
	return BufferItem{EpisodeID: id, Content: "content " + id, Scores: Scores{Total: total}}
}

// brief is an item as the tables compare it.
type brief struct {
	ID         string
	Origin     Origin
	Attention  float64
	Turns      int
	Rehearsals int
	Last       time.Time
}

func briefs(items []SessionItem) []brief {
	out := make([]brief, len(items))
	for i, it := range items {
		out[i] = brief{it.EpisodeID, it.Origin, it.Attention, it.TurnsSinceAttended, it.Rehearsals, it.LastAttendedAt}
	}
	return out
}

func reasons(ev []Eviction) []string {
	out := []string{}
	for _, e := range ev {
		out = append(out, e.Item.EpisodeID+":"+e.Reason.String())
	}
	return out
}

func sameBriefs(t *testing.T, got, want []brief) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("buffer %+v, want %+v", got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Origin != w.Origin || g.Turns != w.Turns || g.Rehearsals != w.Rehearsals ||
			!g.Last.Equal(w.Last) || abs(g.Attention-w.Attention) > eps {
			t.Fatalf("item %d = %+v, want %+v (buffer %+v)", i, g, w, got)
		}
	}
}

func abs(x float64) float64 { return max(x, -x) }

func TestPriority(t *testing.T) {
	for _, tt := range []struct {
		it   SessionItem
		want float64
	}{
		{SessionItem{Attention: 1, TurnsSinceAttended: 0}, 1},
		{SessionItem{Attention: 0.8, TurnsSinceAttended: 1}, 0.4 + 0.25},
		{SessionItem{Attention: 0.2, TurnsSinceAttended: 3}, 0.1 + 0.125},
		{SessionItem{Attention: 2, TurnsSinceAttended: -1}, 1}, // clamped
	} {
		near(t, fmt.Sprintf("Priority(%+v)", tt.it), Priority(tt.it), tt.want)
	}
}

// TestMergeTurn: hand-worked cases of LAB_011's half of a turn (rules:
// capacity 3, decay after 2 turns or 30 minutes).
func TestMergeTurn(t *testing.T) {
	now := asOf
	r := SessionRules{Capacity: 3, DecayTurns: 2, DecayAfter: 30 * time.Minute}
	held := func(id string, origin Origin, att float64, turns int, idle time.Duration) SessionItem {
		return SessionItem{EpisodeID: id, Content: "old " + id, Origin: origin, Attention: att, TurnsSinceAttended: turns,
			AddedAt: now.Add(-time.Hour), LastAttendedAt: now.Add(-idle)}
	}
	tests := []struct {
		name     string
		held     []SessionItem
		recalled []BufferItem
		rules    SessionRules
		want     []brief
		evicted  []string
	}{
		{"new session: the recall, best first", nil,
			[]BufferItem{recalledItem("b", 0.5), recalledItem("a", 0.9)}, r,
			[]brief{{"a", OriginRecalled, 0.9, 0, 0, now}, {"b", OriginRecalled, 0.5, 0, 0, now}}, nil},
		{"a held item recalled again is rehearsed, keeping the higher attention",
			[]SessionItem{held("a", OriginHeld, 0.7, 1, 10*time.Minute)}, []BufferItem{recalledItem("a", 0.6)}, r,
			[]brief{{"a", OriginRecalled, 0.7, 0, 1, now}}, nil},
		{"a held item not recalled stays, ranked by the hybrid: b 0.25+0.5=0.75 over h 0.4+0.25=0.65",
			[]SessionItem{held("h", OriginRecalled, 0.8, 1, 5*time.Minute)}, []BufferItem{recalledItem("b", 0.5)}, r,
			[]brief{{"b", OriginRecalled, 0.5, 0, 0, now}, {"h", OriginHeld, 0.8, 1, 0, now.Add(-5 * time.Minute)}}, nil},
		{"two finished turns unattended: decayed",
			[]SessionItem{held("h", OriginHeld, 0.9, 2, time.Minute), held("k", OriginHeld, 0.9, 1, time.Minute)}, nil, r,
			[]brief{{"k", OriginHeld, 0.9, 1, 0, now.Add(-time.Minute)}}, []string{"h:decay_turns"}},
		{"31 minutes unattended: decayed",
			[]SessionItem{held("h", OriginHeld, 0.9, 0, 31*time.Minute), held("k", OriginHeld, 0.9, 0, 30*time.Minute)}, nil, r,
			[]brief{{"k", OriginHeld, 0.9, 0, 0, now.Add(-30 * time.Minute)}}, []string{"h:decay_time"}},
		{"over capacity the lowest priority goes: h 0.1+0.25 below a, b, c",
			[]SessionItem{held("h", OriginHeld, 0.2, 1, time.Minute)},
			[]BufferItem{recalledItem("a", 0.9), recalledItem("b", 0.8), recalledItem("c", 0.7)}, r,
			[]brief{{"a", OriginRecalled, 0.9, 0, 0, now}, {"b", OriginRecalled, 0.8, 0, 0, now}, {"c", OriginRecalled, 0.7, 0, 0, now}},
			[]string{"h:capacity"}},
		{"an unconfirmed prediction goes first, whatever its score",
			[]SessionItem{held("p", OriginPredicted, 0.9, 0, 0)},
			[]BufferItem{recalledItem("a", 0.1), recalledItem("b", 0.1)}, SessionRules{Capacity: 2, DecayTurns: 2, DecayAfter: time.Hour},
			[]brief{{"a", OriginRecalled, 0.1, 0, 0, now}, {"b", OriginRecalled, 0.1, 0, 0, now}}, []string{"p:capacity"}},
		{"an unconfirmed prediction within capacity stays predicted",
			[]SessionItem{held("p", OriginPredicted, 0.4, 0, 0)}, []BufferItem{recalledItem("a", 0.1)}, r,
			[]brief{{"a", OriginRecalled, 0.1, 0, 0, now}, {"p", OriginPredicted, 0.4, 0, 0, now}}, nil},
		{"a prediction recalled is confirmed",
			[]SessionItem{held("p", OriginPredicted, 0.4, 0, 0)}, []BufferItem{recalledItem("p", 0.5)}, r,
			[]brief{{"p", OriginRecalled, 0.5, 0, 1, now}}, nil},
		{"equal priority: recalled beats held",
			[]SessionItem{held("h", OriginHeld, 1, 0, 0)}, []BufferItem{recalledItem("a", 1)}, SessionRules{Capacity: 1, DecayTurns: 2, DecayAfter: time.Hour},
			[]brief{{"a", OriginRecalled, 1, 0, 0, now}}, []string{"h:capacity"}},
		{"the synthetic item never enters", nil, []BufferItem{{Content: "q", Synthetic: true}}, r, []brief{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ev := MergeTurn(tt.held, tt.recalled, now, tt.rules)
			sameBriefs(t, briefs(got), tt.want)
			if want := append([]string{}, tt.evicted...); !slices.Equal(reasons(ev), want) {
				t.Fatalf("evictions %v, want %v", reasons(ev), want)
			}
			for _, e := range ev {
				if e.Detail == "" {
					t.Errorf("eviction of %s has no detail", e.Item.EpisodeID)
				}
			}
			if len(got) > tt.rules.Capacity {
				t.Fatalf("%d items over capacity %d", len(got), tt.rules.Capacity)
			}
		})
	}
}

// TestSettleTurn: hand-worked cases of the run's end (capacity 3).
func TestSettleTurn(t *testing.T) {
	now := asOf
	before := now.Add(-10 * time.Minute)
	r := SessionRules{Capacity: 3, DecayTurns: 2, DecayAfter: time.Hour}
	item := func(id string, origin Origin, att float64, turns int) SessionItem {
		last := now
		if origin != OriginRecalled {
			last = before
		}
		return SessionItem{EpisodeID: id, Origin: origin, Attention: att, TurnsSinceAttended: turns, AddedAt: before, LastAttendedAt: last}
	}
	tests := []struct {
		name      string
		items     []SessionItem
		attention map[string]AttentionOf
		preds     []Prediction
		rules     SessionRules
		want      []brief
		evicted   []string
	}{
		{"a held item with at least the uniform share is rehearsed; one below it ages",
			[]SessionItem{item("a", OriginRecalled, 0.9, 0), item("h", OriginHeld, 0.2, 1), item("k", OriginHeld, 0.2, 1)},
			map[string]AttentionOf{"a": {0.7, 0.2}, "h": {0.6, 0.5}, "k": {0.3, 0.3}}, nil, r,
			// a: 0.35+0.5; h rehearsed: 0.3+0.5; k: 0.1+0.5/3
			[]brief{{"a", OriginRecalled, 0.9, 0, 0, now}, {"h", OriginHeld, 0.6, 0, 1, now}, {"k", OriginHeld, 0.2, 2, 0, before}}, nil},
		{"a recalled item attended takes LAB_010's score",
			[]SessionItem{item("a", OriginRecalled, 0.9, 0)}, map[string]AttentionOf{"a": {0.4, 1}}, nil, r,
			[]brief{{"a", OriginRecalled, 0.4, 0, 0, now}}, nil},
		{"last turn's prediction, not attended: evicted; attended: held",
			[]SessionItem{item("a", OriginRecalled, 0.9, 0), item("p", OriginPredicted, 0.5, 0), item("q", OriginPredicted, 0.5, 0)},
			map[string]AttentionOf{"a": {0.8, 0.5}, "p": {0.1, 0.1}, "q": {0.6, 0.4}}, nil, r,
			[]brief{{"a", OriginRecalled, 0.8, 0, 0, now}, {"q", OriginHeld, 0.6, 0, 1, now}}, []string{"p:prediction_unused"}},
		{"predictions enter (not twice), without attention nobody is attended",
			[]SessionItem{item("a", OriginRecalled, 0.9, 0), item("h", OriginHeld, 0.5, 0)}, nil,
			[]Prediction{{EpisodeID: "x", Confidence: 0.6}, {EpisodeID: "a", Confidence: 0.9}}, r,
			// a 0.95, x 0.3+0.5, h 0.25+0.5/2
			[]brief{{"a", OriginRecalled, 0.9, 0, 0, now}, {"x", OriginPredicted, 0.6, 0, 0, now}, {"h", OriginHeld, 0.5, 1, 0, before}}, nil},
		{"over capacity a prediction may displace a weaker item",
			[]SessionItem{item("a", OriginRecalled, 0.9, 0), item("h", OriginHeld, 0.5, 0)}, nil,
			[]Prediction{{EpisodeID: "x", Confidence: 0.6}}, SessionRules{Capacity: 2, DecayTurns: 2, DecayAfter: time.Hour},
			[]brief{{"a", OriginRecalled, 0.9, 0, 0, now}, {"x", OriginPredicted, 0.6, 0, 0, now}}, []string{"h:capacity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ev := SettleTurn(tt.items, tt.attention, tt.preds, now, tt.rules)
			sameBriefs(t, briefs(got), tt.want)
			if want := append([]string{}, tt.evicted...); !slices.Equal(reasons(ev), want) {
				t.Fatalf("evictions %v, want %v", reasons(ev), want)
			}
		})
	}
}

// TestSessionHoldsUntilDecay: the two-turn scenario and after. An item
// attended in turn 1 is HELD in turn 2, whose query recalls something
// else, and in every turn after until it has spent DecayTurns (5) turns
// unattended; turn 7 evicts it, saying why. Capacity is never exceeded.
func TestSessionHoldsUntilDecay(t *testing.T) {
	r := DefaultOptions().rules()
	now := asOf
	// Turn 1: a and b recalled, a attended.
	state, ev := MergeTurn(nil, []BufferItem{recalledItem("a", 0.8), recalledItem("b", 0.6)}, now, r)
	state, ev2 := SettleTurn(state, map[string]AttentionOf{"a": {0.7, 0.8}, "b": {0.4, 0.2}}, nil, now, r)
	if len(ev)+len(ev2) != 0 {
		t.Fatalf("turn 1 evicted %v %v", reasons(ev), reasons(ev2))
	}
	for turn := 2; turn <= 7; turn++ {
		now = now.Add(time.Minute)
		other := recalledItem(fmt.Sprintf("t%d", turn), 0.9)
		merged, ev := MergeTurn(state, []BufferItem{other}, now, r)
		var a *SessionItem
		for i := range merged {
			if merged[i].EpisodeID == "a" {
				a = &merged[i]
			}
		}
		if turn <= 6 {
			if a == nil || a.Origin != OriginHeld {
				t.Fatalf("turn %d: a = %+v, want held (buffer %+v)", turn, a, briefs(merged))
			}
		} else {
			if a != nil {
				t.Fatalf("turn 7: a still buffered: %+v", a)
			}
			if !slices.Contains(reasons(ev), "a:decay_turns") {
				t.Fatalf("turn 7 evictions %v, want a:decay_turns", reasons(ev))
			}
		}
		att := map[string]AttentionOf{other.EpisodeID: {0.9, 0.9}}
		for _, it := range merged {
			if it.EpisodeID != other.EpisodeID {
				att[it.EpisodeID] = AttentionOf{0.1, 0.1 / float64(len(merged))}
			}
		}
		state, _ = SettleTurn(merged, att, nil, now, r)
		if len(merged) > r.Capacity || len(state) > r.Capacity {
			t.Fatalf("turn %d: %d / %d items over capacity %d", turn, len(merged), len(state), r.Capacity)
		}
	}
}

// casMemory is a session store with compare-and-set, in memory.
type casMemory struct {
	mu      sync.Mutex
	version int64
	items   []SessionItem
	puts    int
	getErr  error
	always  bool // every put conflicts
}

func (c *casMemory) GetWorkingMemory(context.Context, string, string) (SessionBuffer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.getErr != nil {
		return SessionBuffer{}, c.getErr
	}
	return SessionBuffer{Version: c.version, Items: slices.Clone(c.items)}, nil
}

func (c *casMemory) PutWorkingMemory(_ context.Context, _, _ string, expected int64, items []SessionItem) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts++
	if c.always || expected != c.version {
		return 0, ErrSessionConflict
	}
	c.version++
	c.items = slices.Clone(items)
	return c.version, nil
}

// TestSaveSessionConcurrentTurns: eight turns that all read version 0 and
// recalled different episodes all land: the version advances by eight and
// the buffer holds every turn's episode. (Each turn ages the others' items
// by one unattended turn, so decay_turns is set above eight.)
func TestSaveSessionConcurrentTurns(t *testing.T) {
	mem := &casMemory{}
	opts := DefaultOptions()
	opts.Capacity, opts.DecayTurns = 20, 20
	const turns = 8
	var wg sync.WaitGroup
	outs := make([]SessionOutcome, turns)
	for i := range turns {
		wg.Go(func() {
			req := Request{Namespace: "ns", SessionID: "s", AsOf: asOf, Options: opts}
			recalled := []BufferItem{recalledItem(fmt.Sprintf("e%d", i), 0.5)}
			state, ev := MergeTurn(nil, recalled, asOf, opts.rules())
			turn := &SessionTurn{SessionID: "s", State: state, Evictions: ev, Recalled: recalled, Rules: opts.rules()}
			outs[i] = SaveSession(context.Background(), mem, req, turn, nil, nil)
		})
	}
	wg.Wait()
	for i, o := range outs {
		if !o.Saved || o.Attempts > turns {
			t.Errorf("turn %d: saved %v after %d attempts (%s)", i, o.Saved, o.Attempts, o.Reason)
		}
	}
	if mem.version != turns || len(mem.items) != turns {
		t.Fatalf("version %d with %d items, want %d and %d", mem.version, len(mem.items), turns, turns)
	}
}

func TestSaveSessionGivesUp(t *testing.T) {
	turn := &SessionTurn{SessionID: "s", Rules: DefaultOptions().rules()}
	req := request("q")
	mem := &casMemory{always: true}
	o := SaveSession(context.Background(), mem, req, turn, nil, nil)
	if o.Saved || o.Attempts != MaxSaveAttempts || mem.puts != MaxSaveAttempts || o.Reason == "" {
		t.Fatalf("always conflicting: %+v after %d puts, want not saved after %d", o, mem.puts, MaxSaveAttempts)
	}
	mem = &casMemory{always: true, getErr: errors.New("memory down")}
	o = SaveSession(context.Background(), mem, req, turn, nil, nil)
	if o.Saved || o.Attempts != 1 || o.Reason == "" {
		t.Fatalf("reload failing: %+v, want one attempt, not saved, with a reason", o)
	}
}

// sessionFake is fakeMemory with a session side.
type sessionFake struct {
	*fakeMemory
	*casMemory
}

// TestWorkingMemoryLabWithSession: LAB_011 loads the session's buffer and
// merges it (held items marked held); when the buffer cannot be read the
// turn is stateless, DEGRADED, with nothing to write.
func TestWorkingMemoryLabWithSession(t *testing.T) {
	answer := RecallAnswer{Source: SourcePostgres, Episodes: []RecalledEpisode{
		{Episode: Episode{ID: "new", Content: "fresh news"}, Scores: Scores{Total: 0.9, Relevance: 1}}}}
	store := &casMemory{version: 3, items: []SessionItem{{EpisodeID: "old", Content: "kept", Origin: OriginRecalled,
		Attention: 0.5, AddedAt: asOf, LastAttendedAt: asOf}}}
	req := request("news")
	req.SessionID = "s"
	out, err := NewWorkingMemory(sessionFake{&fakeMemory{answer: answer}, store}).Run(context.Background(), Inputs{Request: req})
	if err != nil || out.Degraded {
		t.Fatalf("run: %+v %v", out, err)
	}
	wm := out.Value.(WorkingMemory)
	if wm.Session == nil || wm.Session.Version != 3 || len(wm.Items) != 2 {
		t.Fatalf("session turn %+v, items %+v", wm.Session, wm.Items)
	}
	if wm.Items[0].EpisodeID != "new" || wm.Items[0].Origin != OriginRecalled || wm.Items[1].EpisodeID != "old" || wm.Items[1].Origin != OriginHeld {
		t.Fatalf("items %+v, want new (recalled) then old (held)", wm.Items)
	}

	store.getErr = errors.New("connection refused")
	out, err = NewWorkingMemory(sessionFake{&fakeMemory{answer: answer}, store}).Run(context.Background(), Inputs{Request: req})
	if err != nil || !out.Degraded {
		t.Fatalf("buffer unreadable: %+v %v, want DEGRADED", out, err)
	}
	wm = out.Value.(WorkingMemory)
	if wm.Session != nil || wm.SessionReason == "" || len(wm.Items) != 1 || wm.Items[0].EpisodeID != "new" {
		t.Fatalf("buffer unreadable: %+v, want this turn's recall only, no session, a reason", wm)
	}

	// Without a session id: exactly as without a session store.
	req.SessionID = ""
	out, _ = NewWorkingMemory(sessionFake{&fakeMemory{answer: answer}, store}).Run(context.Background(), Inputs{Request: req})
	if wm := out.Value.(WorkingMemory); wm.Session != nil || wm.Items[0].Origin != OriginNone || out.Degraded {
		t.Fatalf("no session: %+v", wm)
	}
}
