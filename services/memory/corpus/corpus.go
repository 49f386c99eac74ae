// Package corpus generates a deterministic, natural-language-like workload
// for the memory service: episodes whose words follow a Zipf distribution
// (real English function and common words at the top ranks, made-up
// pronounceable words in the long tail), spread over namespaces and
// sessions, and recall queries drawn from the same distribution. The same
// seed always yields the same episodes and queries, episode by episode, so a
// table can be loaded in parts and still hold the same corpus.
package corpus

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/brainhq/brain/services/memory/episode"
)

// Config shapes a corpus.
type Config struct {
	// Seed makes the corpus; the same seed, the same text.
	Seed uint64
	// Namespaces is how many namespaces the episodes are spread over.
	Namespaces int
	// Vocabulary is the number of distinct words.
	Vocabulary int
	// ZipfS is the Zipf exponent: P(rank k) ∝ 1/k^s.
	ZipfS float64
	// SessionSize is the mean number of episodes per session.
	SessionSize int
	// Span is how far back in time episodes reach from Epoch.
	Span time.Duration
	// Epoch is the newest possible created_at.
	Epoch time.Time
}

// DefaultConfig is the benchmark corpus of docs/design.md: 20 namespaces, a
// 20,000-word Zipf(1.0) vocabulary, sessions of ~40 episodes over 90 days.
func DefaultConfig() Config {
	return Config{
		Seed: 1, Namespaces: 20, Vocabulary: 20000, ZipfS: 1.0, SessionSize: 40,
		Span: 90 * 24 * time.Hour, Epoch: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
	}
}

// Corpus generates episodes and queries.
type Corpus struct {
	cfg   Config
	words []string
	cdf   []float64
}

// New builds the vocabulary and its Zipf distribution.
func New(cfg Config) (*Corpus, error) {
	if cfg.Namespaces < 1 || cfg.Vocabulary < 100 || cfg.ZipfS <= 0 || cfg.SessionSize < 1 || cfg.Span <= 0 {
		return nil, fmt.Errorf("corpus: bad config %+v", cfg)
	}
	c := &Corpus{cfg: cfg}
	seen := make(map[string]bool, cfg.Vocabulary)
	for _, w := range strings.Fields(headWords) {
		if len(c.words) < cfg.Vocabulary && !seen[w] {
			seen[w] = true
			c.words = append(c.words, w)
		}
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x766f636162))
	for len(c.words) < cfg.Vocabulary {
		if w := tailWord(r); !seen[w] {
			seen[w] = true
			c.words = append(c.words, w)
		}
	}
	c.cdf = make([]float64, len(c.words))
	var sum float64
	for k := range c.words {
		sum += 1 / math.Pow(float64(k+1), cfg.ZipfS)
		c.cdf[k] = sum
	}
	for k := range c.cdf {
		c.cdf[k] /= sum
	}
	return c, nil
}

// tailWord makes a pronounceable word of two or three syllables.
func tailWord(r *rand.Rand) string {
	var b strings.Builder
	n := 2 + r.IntN(2)
	for range n {
		b.WriteString(onsets[r.IntN(len(onsets))])
		b.WriteString(nuclei[r.IntN(len(nuclei))])
	}
	b.WriteString(codas[r.IntN(len(codas))])
	return b.String()
}

// Config returns the corpus' configuration.
func (c *Corpus) Config() Config { return c.cfg }

// Word returns the word of Zipf rank k (0-based).
func (c *Corpus) Word(k int) string { return c.words[k] }

func (c *Corpus) word(r *rand.Rand) string {
	return c.words[sort.SearchFloat64s(c.cdf, r.Float64())]
}

// sentence is 6..22 Zipf words, capitalised, with a full stop.
func (c *Corpus) sentence(r *rand.Rand, b *strings.Builder) {
	n := 6 + r.IntN(17)
	for i := range n {
		w := c.word(r)
		if i == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(w)
		if i < n-1 && r.IntN(12) == 0 {
			b.WriteByte(',')
		}
	}
	b.WriteByte('.')
}

// Namespace names namespace i.
func Namespace(i int) string { return fmt.Sprintf("ns-%02d", i) }

// Episode returns episode i of the corpus: namespace i mod Namespaces,
// 1..3 sentences, a session of about SessionSize consecutive episodes of its
// namespace, an importance in 0..1 and a created_at within Span of Epoch
// growing with i. Its id is derived from the seed and i.
func (c *Corpus) Episode(i int) episode.Episode {
	r := rand.New(rand.NewPCG(c.cfg.Seed, uint64(i)+1))
	var b strings.Builder
	for s := range 1 + r.IntN(3) {
		if s > 0 {
			b.WriteByte(' ')
		}
		c.sentence(r, &b)
	}
	nsIdx := i % c.cfg.Namespaces
	within := i / c.cfg.Namespaces
	return episode.Episode{
		ID:         c.id(i).String(),
		Namespace:  Namespace(nsIdx),
		SessionID:  fmt.Sprintf("s-%05d", within/c.cfg.SessionSize),
		Content:    b.String(),
		Importance: math.Round(r.Float64()*100) / 100,
		// Older episodes first, at most Span before Epoch; a fixed step so
		// any prefix of the corpus has the same times.
		CreatedAt: c.cfg.Epoch.Add(-c.cfg.Span).Add(time.Duration(i) * time.Minute % c.cfg.Span).Add(time.Duration(r.IntN(60)) * time.Second),
	}
}

func (c *Corpus) id(i int) uuid.UUID {
	h := fnv.New128a()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], c.cfg.Seed)
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	h.Write(b[:])
	var u uuid.UUID
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x40 // version 4 layout
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u
}

var questionStarts = []string{"what about", "do you remember the", "tell me about", "when did we talk about", "anything on", "how was the"}

// Query returns query i: a question of 2..6 Zipf words (stop words
// included, as people write them) and a namespace, both from i and the seed.
func (c *Corpus) Query(i int) (namespace, text string) {
	r := rand.New(rand.NewPCG(c.cfg.Seed^0x7175657279, uint64(i)+1))
	var b strings.Builder
	b.WriteString(questionStarts[r.IntN(len(questionStarts))])
	for range 2 + r.IntN(5) {
		b.WriteByte(' ')
		b.WriteString(c.word(r))
	}
	b.WriteByte('?')
	return Namespace(r.IntN(c.cfg.Namespaces)), b.String()
}
