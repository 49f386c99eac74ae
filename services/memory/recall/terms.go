package recall

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTerms caps the content terms taken from one query: enough for any
// natural question, small enough to bound the work of one recall.
const MaxTerms = 32

// MaxTermBytes drops longer tokens: PostgreSQL's parser would not index them
// usefully (it skips words over 2047 bytes) and no real word is this long.
const MaxTermBytes = 64

// stopWords is PostgreSQL's 'english' stop list (tsearch_data/english.stop).
// Dropping them here keeps them from using up the MaxTerms budget; the
// database drops them too, so the lists agreeing is a speed matter only.
var stopWords = func() map[string]bool {
	m := make(map[string]bool)
	for _, w := range strings.Fields(`i me my myself we our ours ourselves you your yours yourself
	yourselves he him his himself she her hers herself it its itself they them their theirs
	themselves what which who whom this that these those am is are was were be been being have has
	had having do does did doing a an the and but if or because as until while of at by for with
	about against between into through during before after above below to from up down in out on
	off over under again further then once here there when where why how all any both each few
	more most other some such no nor not only own same so than too very s t can will just don
	should now`) {
		m[w] = true
	}
	return m
}()

// IsStopWord reports whether w (lower case) is an English stop word.
func IsStopWord(w string) bool { return stopWords[w] }

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// Terms returns the content terms of a query: maximal runs of letters,
// digits and combining marks, lower-cased, without stop words, duplicates
// or overlong tokens, in order of first appearance, at most MaxTerms.
// Every term consists of word characters only, so it can never carry
// tsquery or SQL syntax. Invalid UTF-8 bytes separate words.
func Terms(text string) []string {
	var terms []string
	seen := make(map[string]bool)
	start := -1
	flush := func(end int) {
		if start < 0 {
			return
		}
		w := strings.ToLower(text[start:end])
		start = -1
		if len(w) > MaxTermBytes || stopWords[w] || seen[w] || !onlyWordRunes(w) {
			return
		}
		seen[w] = true
		terms = append(terms, w)
	}
	for i := 0; i < len(text) && len(terms) < MaxTerms; {
		r, size := utf8.DecodeRuneInString(text[i:])
		word := isWordRune(r) && !(r == utf8.RuneError && size == 1)
		switch {
		case word && start < 0:
			start = i
		case !word:
			flush(i)
		}
		i += size
	}
	if len(terms) < MaxTerms {
		flush(len(text))
	}
	return terms
}

// onlyWordRunes guards against case mappings that produce non-word runes.
func onlyWordRunes(w string) bool {
	for _, r := range w {
		if !isWordRune(r) || r == utf8.RuneError {
			return false
		}
	}
	return w != ""
}

// TSQuery builds the OR tsquery text of terms for to_tsquery('english', $n):
// each term a quoted lexeme (” and \ escaped, although Terms never yields
// either), joined by " | ". The config then stems each term and drops stop
// words. Empty for no terms. The result is passed as a bind parameter,
// never spliced into SQL.
func TSQuery(terms []string) string {
	var b strings.Builder
	for i, t := range terms {
		if i > 0 {
			b.WriteString(" | ")
		}
		b.WriteByte('\'')
		for _, r := range t {
			switch r {
			case '\'':
				b.WriteString("''")
			case '\\':
				b.WriteString(`\\`)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('\'')
	}
	return b.String()
}

// EscapeLike escapes s for a LIKE/ILIKE pattern with ESCAPE '\': the
// pattern then matches s literally.
func EscapeLike(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '%', '_':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ContainsPattern is the ILIKE pattern (ESCAPE '\') matching any text that
// contains s literally.
func ContainsPattern(s string) string { return "%" + EscapeLike(s) + "%" }
