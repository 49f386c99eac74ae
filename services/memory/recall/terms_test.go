package recall

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTerms(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"question", "What did I name my new puppy?", []string{"name", "new", "puppy"}},
		{"case and dedupe", "Cats, cats and CATS!", []string{"cats"}},
		{"only stop words", "what is it?", nil},
		{"punctuation only", "?!... -- ''", nil},
		{"tsquery syntax is split away", "a & !b | c:* <-> (d)", []string{"b", "c", "d"}},
		{"sql injection text", "'); DROP TABLE episodes; --", []string{"drop", "table", "episodes"}},
		{"digits kept", "flight BA 2490 at 7pm", []string{"flight", "ba", "2490", "7pm"}},
		{"unicode letters", "Crème brûlée in Zürich", []string{"crème", "brûlée", "zürich"}},
		{"invalid utf8 separates", "foo\xffbar", []string{"foo", "bar"}},
		{"overlong token dropped", strings.Repeat("x", MaxTermBytes+1) + " ok", []string{"ok"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Terms(tt.text); !slices.Equal(got, tt.want) {
				t.Fatalf("Terms(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestTermsCapped(t *testing.T) {
	var words []string
	for i := range 100 {
		words = append(words, "w"+strings.Repeat("x", i%50)+string(rune('a'+i%26)))
	}
	got := Terms(strings.Join(words, " "))
	if len(got) != MaxTerms {
		t.Fatalf("got %d terms, want %d", len(got), MaxTerms)
	}
	if got[0] != "wa" {
		t.Fatalf("first term %q, want the first word", got[0])
	}
}

func TestTSQuery(t *testing.T) {
	tests := []struct {
		terms []string
		want  string
	}{
		{nil, ""},
		{[]string{"cat"}, "'cat'"},
		{[]string{"cat", "dog"}, "'cat' | 'dog'"},
		{[]string{"o'brien", `back\slash`}, `'o''brien' | 'back\\slash'`},
	}
	for _, tt := range tests {
		if got := TSQuery(tt.terms); got != tt.want {
			t.Errorf("TSQuery(%q) = %q, want %q", tt.terms, got, tt.want)
		}
	}
}

func TestEscapeLike(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"100%", `100\%`},
		{"a_b", `a\_b`},
		{`c:\dir`, `c:\\dir`},
		{`%_\`, `\%\_\\`},
	}
	for _, tt := range tests {
		if got := EscapeLike(tt.in); got != tt.want {
			t.Errorf("EscapeLike(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !likeMatch(EscapeLike(tt.in), tt.in) {
			t.Errorf("escaped %q does not match itself", tt.in)
		}
	}
	if likeMatch(EscapeLike("a_c"), "abc") {
		t.Error(`escaped "a_c" matches "abc": _ not literal`)
	}
	if !likeMatch(ContainsPattern("50%"), "about 50% off") {
		t.Error("contains pattern misses its literal inside text")
	}
}

// likeMatch implements SQL LIKE with ESCAPE '\' (case-sensitive), to check
// the escaping without a database.
func likeMatch(pattern, s string) bool {
	type tok struct {
		kind byte // 'l' literal, '_' any one, '%' any run
		r    rune
	}
	var toks []tok
	pr := []rune(pattern)
	for i := 0; i < len(pr); i++ {
		switch pr[i] {
		case '\\':
			if i+1 < len(pr) {
				i++
			}
			toks = append(toks, tok{'l', pr[i]})
		case '%':
			toks = append(toks, tok{'%', 0})
		case '_':
			toks = append(toks, tok{'_', 0})
		default:
			toks = append(toks, tok{'l', pr[i]})
		}
	}
	sr := []rune(s)
	// dp[j]: toks[i:] matches sr[j:], computed for i from the end.
	dp := make([]bool, len(sr)+1)
	dp[len(sr)] = true
	for i := len(toks) - 1; i >= 0; i-- {
		next := make([]bool, len(sr)+1)
		for j := len(sr); j >= 0; j-- {
			switch toks[i].kind {
			case '%':
				next[j] = dp[j] || (j < len(sr) && next[j+1])
			case '_':
				next[j] = j < len(sr) && dp[j+1]
			default:
				next[j] = j < len(sr) && sr[j] == toks[i].r && dp[j+1]
			}
		}
		dp = next
	}
	return dp[0]
}

// tsqueryOR is the only shape TSQuery may produce: quoted lexemes (with ”
// and \\ escapes) joined by " | ".
var tsqueryOR = regexp.MustCompile(`^('([^'\\]|''|\\\\)+')( \| '([^'\\]|''|\\\\)+')*$`)

// FuzzTranslate checks the query → tsquery / LIKE translation on any input:
// it never panics, terms are clean word tokens, the tsquery has the one safe
// shape, and the escaped LIKE pattern matches exactly its literal.
func FuzzTranslate(f *testing.F) {
	for _, s := range []string{
		"What did I name my new puppy?", "'); DROP TABLE episodes; --", "100% of a_b in c:\\dir",
		"a & !b | c:* <-> (d)", "Crème brûlée", "foo\xffbar", "", "%", "_", "\\", "''", "\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		terms := Terms(text)
		if len(terms) > MaxTerms {
			t.Fatalf("%d terms > %d", len(terms), MaxTerms)
		}
		seen := map[string]bool{}
		for _, term := range terms {
			if term == "" || len(term) > MaxTermBytes || seen[term] || IsStopWord(term) || !utf8.ValidString(term) || !onlyWordRunes(term) {
				t.Fatalf("bad term %q in %q", term, terms)
			}
			seen[term] = true
		}
		q := TSQuery(terms)
		if (q == "") != (len(terms) == 0) {
			t.Fatalf("tsquery %q for %d terms", q, len(terms))
		}
		if q != "" && !tsqueryOR.MatchString(q) {
			t.Fatalf("tsquery %q not of the safe OR shape", q)
		}
		if !utf8.ValidString(text) || len(text) > 512 {
			return // LIKE runs on valid UTF-8; the quadratic check stays fast
		}
		p := EscapeLike(text)
		if !likeMatch(p, text) {
			t.Fatalf("pattern %q does not match its literal %q", p, text)
		}
		if likeMatch(p, text+"x") || (text != "" && likeMatch(p, text[:len(text)-1])) {
			t.Fatalf("pattern %q matches more than its literal %q", p, text)
		}
		if !likeMatch(ContainsPattern(text), "<"+text+">") {
			t.Fatalf("contains pattern of %q misses it inside text", text)
		}
	})
}
