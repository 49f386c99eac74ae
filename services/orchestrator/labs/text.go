package labs

import (
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// words splits s into lower-case words: maximal runs of letters, digits and
// apostrophes, with apostrophes trimmed from both ends. A typographic
// apostrophe counts as one, so "don’t" and "don't" are the same word.
func words(s string) []string {
	lower := strings.ToLower(s)
	if strings.ContainsRune(lower, '’') {
		lower = strings.ReplaceAll(lower, "’", "'")
	}
	fields := strings.FieldsFunc(lower, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'')
	})
	out := fields[:0]
	for _, f := range fields {
		if f = strings.Trim(f, "'"); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// keyword reduces a word to a content keyword, or "" for a stopword or a
// single letter. A possessive "'s" is dropped so "alice's" matches "alice".
func keyword(w string) string {
	w = strings.TrimSuffix(w, "'s")
	if isStopword(w) {
		return ""
	}
	if utf8.RuneCountInString(w) < 2 {
		if r, _ := utf8.DecodeRuneInString(w); !unicode.IsDigit(r) {
			return ""
		}
	}
	return w
}

// keywords returns the distinct content keywords of s in order of first
// appearance.
func keywords(s string) []string {
	var out []string
	for _, w := range words(s) {
		if k := keyword(w); k != "" && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// wordSet is a sorted set of distinct words.
type wordSet []string

// newWordSet builds the set of the given words.
func newWordSet(ws []string) wordSet {
	s := slices.Clone(ws)
	slices.Sort(s)
	return wordSet(slices.Compact(s))
}

// has reports whether w is in the set.
func (s wordSet) has(w string) bool {
	i := sort.SearchStrings(s, w)
	return i < len(s) && s[i] == w
}

// jaccard is |a ∩ b| / |a ∪ b|, 0 when both are empty.
func jaccard(a, b wordSet) float64 {
	inter, i, j := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			inter++
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	union := len(a) + len(b) - inter
	if union == 0 {
		return 0
	}
	return float64(inter) / float64(union)
}

// itemKeywords is the set of keywords of an item's content and of its
// metadata keys and values, against which query and goal keywords are
// matched.
func itemKeywords(content string, metadata map[string]string) wordSet {
	var ws []string
	add := func(s string) {
		for _, w := range words(s) {
			if k := keyword(w); k != "" {
				ws = append(ws, k)
			}
		}
	}
	add(content)
	for k, v := range metadata { // order does not matter: the set is sorted
		add(k)
		add(v)
	}
	return newWordSet(ws)
}

// overlap is the share of keys found in set, 0 when keys is empty.
func overlap(keys []string, set wordSet) float64 {
	if len(keys) == 0 {
		return 0
	}
	n := 0
	for _, k := range keys {
		if set.has(k) {
			n++
		}
	}
	return float64(n) / float64(len(keys))
}

// cutRunes returns the first n characters of s, cut on a rune boundary.
func cutRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n { // n bytes hold at most n runes
		return s
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i]
		}
		count++
	}
	return s
}

// isStopword reports whether w is a common English function word, which
// carries no topic and must not count as a keyword.
func isStopword(w string) bool {
	switch w {
	case "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at",
		"be", "because", "been", "before", "being", "below", "between", "both", "but", "by",
		"can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further",
		"had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how",
		"i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself",
		"now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own",
		"same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
		"themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until",
		"up", "us", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why",
		"will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "i'm", "it's", "i've", "let's",
		"not", "no", "nor", "don't", "doesn't", "didn't", "isn't", "wasn't", "aren't", "won't", "can't", "cannot":
		return true
	}
	return false
}
