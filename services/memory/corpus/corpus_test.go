package corpus

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/brainhq/brain/services/memory/recall"
)

func TestDeterministic(t *testing.T) {
	a, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(DefaultConfig())
	for i := range 50 {
		if ea, eb := a.Episode(i), b.Episode(i); ea.Content != eb.Content || ea.ID != eb.ID || !ea.CreatedAt.Equal(eb.CreatedAt) {
			t.Fatalf("episode %d differs between runs", i)
		}
		nsa, qa := a.Query(i)
		nsb, qb := b.Query(i)
		if nsa != nsb || qa != qb {
			t.Fatalf("query %d differs", i)
		}
	}
	other := DefaultConfig()
	other.Seed = 2
	c, _ := New(other)
	if c.Episode(0).Content == a.Episode(0).Content {
		t.Fatal("different seeds, same text")
	}
}

func TestShape(t *testing.T) {
	cfg := DefaultConfig()
	c, _ := New(cfg)
	counts := map[string]int{}
	ids := map[string]bool{}
	total := 0
	for i := range 4000 {
		e := c.Episode(i)
		if _, err := uuid.Parse(e.ID); err != nil || ids[e.ID] {
			t.Fatalf("episode %d id %q invalid or repeated", i, e.ID)
		}
		ids[e.ID] = true
		if e.Namespace != Namespace(i%cfg.Namespaces) || e.Importance < 0 || e.Importance > 1 ||
			e.CreatedAt.After(cfg.Epoch) || e.CreatedAt.Before(cfg.Epoch.Add(-cfg.Span)) || !strings.HasSuffix(e.Content, ".") {
			t.Fatalf("episode %d out of shape: %+v", i, e)
		}
		for _, w := range strings.Fields(strings.ToLower(strings.NewReplacer(".", "", ",", "").Replace(e.Content))) {
			counts[w]++
			total++
		}
	}
	// Zipf: the top word is "the" with about 1/H(20000) ≈ 9.4% of tokens,
	// and rank 10 has about a tenth of rank 1's count.
	if share := float64(counts["the"]) / float64(total); share < 0.07 || share > 0.12 {
		t.Fatalf(`"the" is %.3f of tokens, want ≈ 0.094`, share)
	}
	if r := float64(counts[c.Word(9)]) / float64(counts[c.Word(0)]); r < 0.06 || r > 0.15 {
		t.Fatalf("rank 10 / rank 1 = %.3f, want ≈ 0.1", r)
	}
	if len(counts) < 3000 {
		t.Fatalf("only %d distinct words in 4000 episodes", len(counts))
	}
}

func TestQueriesHaveContentWords(t *testing.T) {
	c, _ := New(DefaultConfig())
	empty := 0
	for i := range 1000 {
		ns, q := c.Query(i)
		if !strings.HasPrefix(ns, "ns-") || !strings.HasSuffix(q, "?") {
			t.Fatalf("query %d: %q in %q", i, q, ns)
		}
		if len(recall.Terms(q)) == 0 {
			empty++
		}
	}
	if empty > 50 {
		t.Fatalf("%d of 1000 queries have no content words", empty)
	}
}
