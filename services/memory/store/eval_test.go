package store

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"unicode"

	"github.com/brainhq/brain/services/memory/corpus"
	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/recall"
)

const (
	evalFloorRecall = 0.58
	evalFloorMRR    = 0.49
	evalFile        = "testdata/eval/conversations.json"
	evalSeed        = 20250301
	evalK           = 7
)

var (
	updateEval = flag.Bool("update-eval", false, "regenerate "+evalFile+" with corpus.GenerateEvalSet")
	evalDetail = flag.Bool("eval-detail", false, "TestRecallQuality logs the evidence rank of every question and method")
)

func loadEvalSet(t *testing.T) corpus.EvalSet {
	t.Helper()
	b, err := os.ReadFile(evalFile)
	if err != nil {
		t.Fatalf("%v (generate it with: go test ./store -run TestEvalSetUpToDate -update-eval)", err)
	}
	var set corpus.EvalSet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	return set
}

// The committed evaluation set is exactly what the committed generator
// makes, so neither can drift from the other unnoticed.
func TestEvalSetUpToDate(t *testing.T) {
	want, err := json.MarshalIndent(corpus.GenerateEvalSet(evalSeed), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *updateEval {
		if err := os.WriteFile(evalFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(evalFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from corpus.GenerateEvalSet(%d): run go test ./store -run TestEvalSetUpToDate -update-eval", evalFile, evalSeed)
	}
}

// metrics accumulates recall@k (share of evidence turns in the top k) and
// MRR (reciprocal rank of the first evidence turn among the answers).
type metrics struct {
	name        string
	recall, mrr float64
	n           int
}

func (m *metrics) add(ranked []string, evidence []string) {
	m.n++
	found := 0
	first := 0
	for i, id := range ranked {
		for _, e := range evidence {
			if id == e {
				if i < evalK {
					found++
				}
				if first == 0 {
					first = i + 1
				}
			}
		}
	}
	m.recall += float64(found) / float64(len(evidence))
	if first > 0 {
		m.mrr += 1 / float64(first)
	}
}

func (m metrics) recallAtK() float64 { return m.recall / float64(max(m.n, 1)) }
func (m metrics) meanRR() float64    { return m.mrr / float64(max(m.n, 1)) }

// bm25 is textbook Okapi BM25 (k1 = 1.2, b = 0.75, idf = ln(1 + (N − df +
// 0.5)/(df + 0.5))) over lower-cased letter/digit runs: no stemming, no
// stop words. It is the baseline ranked recall has to beat.
type bm25 struct {
	docs  [][]string
	tf    []map[string]int
	df    map[string]int
	avgdl float64
}

func bm25Tokens(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func newBM25(texts []string) *bm25 {
	m := &bm25{df: map[string]int{}}
	total := 0
	for _, text := range texts {
		toks := bm25Tokens(text)
		tf := map[string]int{}
		for _, w := range toks {
			tf[w]++
		}
		for w := range tf {
			m.df[w]++
		}
		m.docs, m.tf = append(m.docs, toks), append(m.tf, tf)
		total += len(toks)
	}
	m.avgdl = float64(total) / float64(max(len(texts), 1))
	return m
}

func (m *bm25) score(query string, doc int) float64 {
	const k1, b = 1.2, 0.75
	n := float64(len(m.docs))
	seen := map[string]bool{}
	var s float64
	for _, w := range bm25Tokens(query) {
		if seen[w] {
			continue
		}
		seen[w] = true
		tf := float64(m.tf[doc][w])
		if tf == 0 {
			continue
		}
		df := float64(m.df[w])
		idf := math.Log(1 + (n-df+0.5)/(df+0.5))
		s += idf * tf * (k1 + 1) / (tf + k1*(1-b+b*float64(len(m.docs[doc]))/m.avgdl))
	}
	return s
}

// rank returns the indexes of the best `limit` documents with a positive score.
func (m *bm25) rank(query string, limit int) []int {
	type hit struct {
		doc   int
		score float64
	}
	var hits []hit
	for d := range m.docs {
		if s := m.score(query, d); s > 0 {
			hits = append(hits, hit{d, s})
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].score > hits[j].score })
	var out []int
	for i := 0; i < len(hits) && i < limit; i++ {
		out = append(out, hits[i].doc)
	}
	return out
}

func TestBM25Baseline(t *testing.T) {
	m := newBM25([]string{"the cat sat", "the dog", "a cat and a cat"})
	// N = 3, df(cat) = 2: idf = ln(1 + 1.5/2.5); doc 0: tf 1, dl 3, avgdl 10/3.
	idf := math.Log(1 + 1.5/2.5)
	want := idf * 2.2 / (1 + 1.2*(0.25+0.75*3/(10.0/3)))
	if got := m.score("Cat?", 0); math.Abs(got-want) > 1e-12 {
		t.Fatalf("score = %v, want %v", got, want)
	}
	if got := m.rank("cat", 10); len(got) != 2 || got[0] != 2 {
		t.Fatalf("rank = %v, want doc 2 (tf 2) first", got)
	}
}

// TestRecallQuality loads the evaluation set into one namespace and compares
// ranked recall, substring recall and textbook BM25 on recall@7 and MRR.
// Run with -v to see the table.
func TestRecallQuality(t *testing.T) {
	set := loadEvalSet(t)
	s, _ := newStore(t)
	ctx := testCtx(t)
	const ns = "eval"
	idOf := make(map[string]string, len(set.Turns)) // uuid -> turn id
	texts := make([]string, len(set.Turns))
	for from := 0; from < len(set.Turns); from += episode.MaxBatch {
		var batch []episode.Episode
		for _, tr := range set.Turns[from:min(from+episode.MaxBatch, len(set.Turns))] {
			batch = append(batch, episode.Episode{Namespace: ns, SessionID: tr.Session, Content: tr.Content,
				Importance: episode.DefaultImportance, CreatedAt: tr.CreatedAt, Metadata: map[string]string{"role": tr.Role}})
		}
		out := mustWrite(t, s, batch...)
		for i, e := range out {
			idOf[e.ID] = set.Turns[from+i].ID
		}
	}
	for i, tr := range set.Turns {
		texts[i] = tr.Content
	}
	base := newBM25(texts)

	type method struct {
		name string
		run  func(q string) []string
	}
	viaStore := func(q recall.Query) func(string) []string {
		return func(text string) []string {
			q.Namespace, q.Text, q.Limit, q.AsOf = ns, text, episode.MaxLimit, set.AsOf
			rs, err := s.Recall(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range rs {
				ids = append(ids, idOf[r.Episode.ID])
			}
			return ids
		}
	}
	methods := []method{
		{"RANKED (default weights 0.8/0.1/0.1)", viaStore(recall.Query{})},
		{"RANKED (relevance only)", viaStore(recall.Query{Weights: recall.Weights{Relevance: 1}})},
		{"SUBSTRING", viaStore(recall.Query{Mode: recall.Substring})},
		{"BM25 (textbook, in the test)", func(q string) []string {
			var ids []string
			for _, d := range base.rank(q, episode.MaxLimit) {
				ids = append(ids, set.Turns[d].ID)
			}
			return ids
		}},
	}
	results := make([]metrics, len(methods))
	for i, m := range methods {
		results[i].name = m.name
		for _, q := range set.Questions {
			got := m.run(q.Question)
			results[i].add(got, q.Evidence)
			if *evalDetail {
				rank := -1
				for j, id := range got {
					if id == q.Evidence[0] {
						rank = j + 1
					}
				}
				t.Logf("%s | %s | evidence rank %d | %s", m.name, q.ID, rank, q.Question)
			}
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%d turns in %d sessions, %d questions\n", len(set.Turns), corpus.EvalSessions, len(set.Questions))
	fmt.Fprintf(&table, "| method | recall@%d | MRR |\n|---|---:|---:|\n", evalK)
	for _, r := range results {
		fmt.Fprintf(&table, "| %s | %.3f | %.3f |\n", r.name, r.recallAtK(), r.meanRR())
	}
	t.Log(table.String())

	ranked, substring, bm := results[0], results[2], results[3]
	// This generated set once chose the ranker and misled it (its per-form
	// IDF lost on held-out chats); it stays a regression check with pinned
	// floors a little below what the ranker measures on it (0.598, 0.513),
	// and ranked recall must still find more than textbook BM25.
	if ranked.recallAtK() < evalFloorRecall || ranked.meanRR() < evalFloorMRR {
		t.Errorf("RANKED recall@%d %.3f, MRR %.3f: below the floors %.2f, %.2f", evalK,
			ranked.recallAtK(), ranked.meanRR(), evalFloorRecall, evalFloorMRR)
	}
	if !(ranked.recallAtK() > bm.recallAtK()) {
		t.Errorf("RANKED recall@%d %.3f does not beat BM25's %.3f", evalK, ranked.recallAtK(), bm.recallAtK())
	}
	if !(substring.recallAtK() < ranked.recallAtK()) {
		t.Errorf("SUBSTRING recall@%d %.3f is not below RANKED %.3f", evalK, substring.recallAtK(), ranked.recallAtK())
	}
}
