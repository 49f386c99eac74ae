// Package timeexpr finds the time expressions of an English question and
// turns each into a window of time, relative to the "now" of the question
// (a recall's as_of): "on 24 May, 2023", "in March", "in 2022", "yesterday",
// "last week", "two months ago", "last summer", "on Monday".
//
// Recall uses the windows as a soft preference (episodes written near the
// named time rank higher) and drops the time words from the lexical terms,
// where they only add noise: a turn about an event "last weekend" rarely
// repeats the date a later question names.
//
// The parser is deliberately small and predictable rather than a general
// natural-language date library: it needs windows with a granularity (a
// day, a week, a month, a season, a year) and the byte spans to remove, not
// one point in time, and it must never guess a date from an ordinary word
// ("may", "march", "second"). Ambiguous forms are left alone.
package timeexpr

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Granularity is how precise a window is; recall widens coarse windows less
// than fine ones relative to their length.
type Granularity int

const (
	// Day: one calendar day.
	Day Granularity = iota + 1
	// Week: a calendar week, a weekend, or a window of a few days.
	Week
	// Month: a calendar month, or about a month around a point.
	Month
	// Season: three months.
	Season
	// Year: a calendar year, or about a year around a point.
	Year
)

// String names the granularity for logs and explanations.
func (g Granularity) String() string {
	switch g {
	case Day:
		return "day"
	case Week:
		return "week"
	case Month:
		return "month"
	case Season:
		return "season"
	case Year:
		return "year"
	}
	return "unknown"
}

// Range is one time expression of the text and its window [Start, End).
type Range struct {
	Start, End  time.Time
	Granularity Granularity
	// Text is the expression as written, e.g. "last week" or "24 May, 2023".
	Text string
}

// Parsed is what Parse found.
type Parsed struct {
	// Ranges are the windows in order of appearance; empty when the text
	// names no time.
	Ranges []Range
	// Rest is the text without the time expressions (and the preposition
	// that introduced each), spaces collapsed: what is left to match by
	// words. Equal to the text when Ranges is empty.
	Rest string
}

// MaxRanges bounds the windows taken from one text; a question names one or
// two times, and the bound keeps the work of a pathological input small.
const MaxRanges = 4

type token struct {
	start, end int    // byte offsets in the original text
	lower      string // lower case
	upper      bool   // first letter written in upper case
}

func tokenize(text string) []token {
	var toks []token
	start := -1
	for i := 0; i <= len(text); {
		r, size := rune(0), 1
		if i < len(text) {
			r, size = utf8.DecodeRuneInString(text[i:])
		}
		word := i < len(text) && (unicode.IsLetter(r) || unicode.IsDigit(r)) && !(r == utf8.RuneError && size == 1)
		switch {
		case word && start < 0:
			start = i
		case !word && start >= 0:
			w := text[start:i]
			first, _ := utf8.DecodeRuneInString(w)
			toks = append(toks, token{start: start, end: i, lower: strings.ToLower(w), upper: unicode.IsUpper(first)})
			start = -1
		}
		if i == len(text) {
			break
		}
		i += size
	}
	return toks
}

var months = map[string]time.Month{
	"january": time.January, "february": time.February, "march": time.March, "april": time.April,
	"may": time.May, "june": time.June, "july": time.July, "august": time.August,
	"september": time.September, "october": time.October, "november": time.November, "december": time.December,
	"jan": time.January, "feb": time.February, "mar": time.March, "apr": time.April, "jun": time.June,
	"jul": time.July, "aug": time.August, "sep": time.September, "sept": time.September, "oct": time.October,
	"nov": time.November, "dec": time.December,
}

// abbreviated months count only beside a day or a year ("Mar 3", "Sep
// 2023"): alone, several are English words. Of the full names, "may" and
// "march" are words too, so alone they need a preposition ("in May").
var (
	abbreviated = map[string]bool{"jan": true, "feb": true, "mar": true, "apr": true, "jun": true, "jul": true,
		"aug": true, "sep": true, "sept": true, "oct": true, "nov": true, "dec": true}
	wordlike = map[string]bool{"may": true, "march": true}
)

var weekdays = map[string]time.Weekday{
	"monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday, "thursday": time.Thursday,
	"friday": time.Friday, "saturday": time.Saturday, "sunday": time.Sunday,
}

var numberWords = map[string]int{
	"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
	"eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "couple": 2, "few": 3, "several": 3,
}

// seasons are meteorological, northern hemisphere: the month each starts.
var seasons = map[string]time.Month{
	"spring": time.March, "summer": time.June, "autumn": time.September, "fall": time.September, "winter": time.December,
}

// introducers are removed with the expression they precede.
var introducers = map[string]bool{
	"on": true, "in": true, "during": true, "since": true, "around": true, "at": true, "from": true,
	"over": true, "of": true, "the": true, "by": true, "until": true, "before": true, "after": true,
}

// isoDate and slashDate are found on the raw text: the tokenizer splits them.
var (
	isoDate   = regexp.MustCompile(`\b(\d{4})-(\d{1,2})-(\d{1,2})\b`)
	slashDate = regexp.MustCompile(`\b(\d{1,2})/(\d{1,2})/(\d{4})\b`)
)

// Parse finds the time expressions of text, relative to asOf (its location
// decides where days begin).
func Parse(text string, asOf time.Time) Parsed {
	p := parser{asOf: asOf, loc: asOf.Location()}
	p.today = time.Date(asOf.Year(), asOf.Month(), asOf.Day(), 0, 0, 0, 0, p.loc)
	var spans [][2]int
	for _, re := range []*regexp.Regexp{isoDate, slashDate} {
		for _, m := range re.FindAllStringSubmatchIndex(text, MaxRanges) {
			if r, ok := p.numericDate(re == isoDate, text, m); ok && len(p.ranges) < MaxRanges {
				p.ranges, p.pos = append(p.ranges, r), append(p.pos, m[0])
				spans = append(spans, [2]int{m[0], m[1]})
			}
		}
	}
	toks := tokenize(text)
	covered := func(t token) bool {
		for _, s := range spans {
			if t.start < s[1] && t.end > s[0] {
				return true
			}
		}
		return false
	}
	// A numeric date takes its preposition with it: "on 2023-05-24".
	for k, s := range spans {
		for i := range toks {
			if toks[i].start >= s[0] {
				for j := i - 1; j >= 0 && introducers[toks[j].lower]; j-- {
					spans[k][0] = toks[j].start
				}
				break
			}
		}
	}
	for i := 0; i < len(toks) && len(p.ranges) < MaxRanges; {
		if covered(toks[i]) {
			i++
			continue
		}
		r, n, ok := p.match(toks, i)
		if !ok {
			i += max(n, 1) // n > 0: a date that does not exist ("31 April"), taken as nothing
			continue
		}
		first := i
		for first > 0 && introducers[toks[first-1].lower] && !covered(toks[first-1]) {
			first--
		}
		r.Text = text[toks[i].start:toks[i+n-1].end]
		if at(toks, i-1) == "since" && r.End.Before(p.today.AddDate(0, 0, 1)) {
			r.End = p.today.AddDate(0, 0, 1) // "since March": from then until now
		}
		p.ranges, p.pos = append(p.ranges, r), append(p.pos, toks[i].start)
		spans = append(spans, [2]int{toks[first].start, toks[i+n-1].end})
		i += n
	}
	if len(p.ranges) == 0 {
		return Parsed{Rest: text}
	}
	// Numeric dates were found first; report all in order of appearance.
	idx := make([]int, len(p.ranges))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p.pos[idx[a]] < p.pos[idx[b]] })
	out := make([]Range, len(idx))
	for i, k := range idx {
		out[i] = p.ranges[k]
	}
	return Parsed{Ranges: out, Rest: cut(text, spans)}
}

// cut removes spans from text and collapses the spaces left behind.
func cut(text string, spans [][2]int) string {
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		in := false
		for _, s := range spans {
			if i >= s[0] && i < s[1] {
				in = true
				break
			}
		}
		if in {
			b.WriteByte(' ')
			continue
		}
		b.WriteByte(text[i])
	}
	out := strings.Join(strings.Fields(b.String()), " ")
	// A removed expression can leave its punctuation stranded: "at ?".
	out = strings.NewReplacer(" ?", "?", " ,", ",", " .", ".", " !", "!").Replace(out)
	return strings.TrimSpace(out)
}

type parser struct {
	asOf   time.Time
	today  time.Time
	loc    *time.Location
	ranges []Range
	pos    []int // byte offset of each range's text
}

func (p *parser) day(y int, m time.Month, d int) (Range, bool) {
	t := time.Date(y, m, d, 0, 0, 0, 0, p.loc)
	if t.Month() != m || t.Day() != d {
		return Range{}, false // 31 April and the like
	}
	return Range{Start: t, End: t.AddDate(0, 0, 1), Granularity: Day}, true
}

func (p *parser) month(y int, m time.Month) Range {
	t := time.Date(y, m, 1, 0, 0, 0, 0, p.loc)
	return Range{Start: t, End: t.AddDate(0, 1, 0), Granularity: Month}
}

func (p *parser) year(y int) Range {
	t := time.Date(y, time.January, 1, 0, 0, 0, 0, p.loc)
	return Range{Start: t, End: t.AddDate(1, 0, 0), Granularity: Year}
}

// season returns the season starting in month start of year y (winter of
// y starts in December of y).
func (p *parser) season(y int, start time.Month) Range {
	t := time.Date(y, start, 1, 0, 0, 0, 0, p.loc)
	return Range{Start: t, End: t.AddDate(0, 3, 0), Granularity: Season}
}

// recentYearOf picks the year for a month or day given without one: the
// latest such date not after as_of (a question asks about the past).
func (p *parser) recentYearOf(m time.Month, d int) int {
	y := p.today.Year()
	if time.Date(y, m, d, 0, 0, 0, 0, p.loc).After(p.today) {
		y--
	}
	return y
}

func (p *parser) numericDate(iso bool, text string, m []int) (Range, bool) {
	g := func(k int) int { n, _ := strconv.Atoi(text[m[2*k]:m[2*k+1]]); return n }
	var y, mo, d int
	if iso {
		y, mo, d = g(1), g(2), g(3)
	} else {
		a, b := g(1), g(2)
		y = g(3)
		switch {
		case a > 12 && b <= 12:
			d, mo = a, b // day first
		default:
			mo, d = a, b // English (US) order when it could be either
		}
	}
	if mo < 1 || mo > 12 {
		return Range{}, false
	}
	r, ok := p.day(y, time.Month(mo), d)
	r.Text = text[m[0]:m[1]]
	return r, ok
}

func dayNumber(t token) (int, bool) {
	s := t.lower
	for _, suf := range []string{"st", "nd", "rd", "th"} {
		if strings.HasSuffix(s, suf) && len(s) > len(suf) {
			s = strings.TrimSuffix(s, suf)
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 31 || len(s) > 2 {
		return 0, false
	}
	return n, true
}

func yearNumber(t token) (int, bool) {
	if len(t.lower) != 4 {
		return 0, false
	}
	n, err := strconv.Atoi(t.lower)
	if err != nil || n < 1900 || n > 2199 {
		return 0, false
	}
	return n, true
}

func count(toks []token, i int) (n, used int, ok bool) {
	if i >= len(toks) {
		return 0, 0, false
	}
	if v, err := strconv.Atoi(toks[i].lower); err == nil && v > 0 && v < 1000 {
		return v, 1, true
	}
	w := toks[i].lower
	if w == "a" && i+1 < len(toks) && (toks[i+1].lower == "couple" || toks[i+1].lower == "few") {
		// "a couple of weeks", "a few days"
		n := numberWords[toks[i+1].lower]
		used = 2
		if i+2 < len(toks) && toks[i+2].lower == "of" {
			used = 3
		}
		return n, used, true
	}
	if v, ok := numberWords[w]; ok {
		return v, 1, true
	}
	return 0, 0, false
}

func unit(w string) (string, bool) {
	switch w {
	case "day", "days":
		return "day", true
	case "week", "weeks":
		return "week", true
	case "month", "months":
		return "month", true
	case "year", "years":
		return "year", true
	}
	return "", false
}

func at(toks []token, i int) string {
	if i < 0 || i >= len(toks) {
		return ""
	}
	return toks[i].lower
}

// match tries every pattern at toks[i]; it returns the range and how many
// tokens it used.
func (p *parser) match(toks []token, i int) (Range, int, bool) {
	w := toks[i].lower
	prev := at(toks, i-1)

	// Day Month [Year]: "24 May, 2023", "24th of May", "the 3rd of March".
	if d, ok := dayNumber(toks[i]); ok {
		j := i + 1
		if at(toks, j) == "of" {
			j++
		}
		if m, ok := months[at(toks, j)]; ok {
			if y, ok := yearNumber(tokOr(toks, j+1)); ok {
				r, ok := p.day(y, m, d)
				return r, j + 2 - i, ok
			}
			r, ok := p.day(p.recentYearOf(m, d), m, d)
			return r, j + 1 - i, ok
		}
	}

	if m, ok := months[w]; ok {
		// Month Day [Year]: "May 24, 2023", "March 3rd".
		if d, ok := dayNumber(tokOr(toks, i+1)); ok {
			if y, ok := yearNumber(tokOr(toks, i+2)); ok {
				r, ok := p.day(y, m, d)
				return r, 3, ok
			}
			r, ok := p.day(p.recentYearOf(m, d), m, d)
			return r, 2, ok
		}
		// Month Year: "May 2023", "March of 2022".
		j := i + 1
		if at(toks, j) == "of" {
			j++
		}
		if y, ok := yearNumber(tokOr(toks, j)); ok {
			return p.month(y, m), j + 1 - i, true
		}
		// Month alone: "in March", "during July", "January".
		prep := prev == "in" || prev == "during" || prev == "since" || prev == "of" || prev == "until" || prev == "before" || prev == "after"
		if !abbreviated[w] && (prep || !wordlike[w]) {
			return p.month(p.recentYearOf(m, 1), m), 1, true
		}
	}

	// "early May", "mid-2023", "late March 2022": a third of the window.
	if (w == "early" || w == "mid" || w == "late") && i+1 < len(toks) {
		if r, n, ok := p.match(toks, i+1); ok && (r.Granularity == Month || r.Granularity == Year) && (months[at(toks, i+1)] != 0 || r.Granularity == Year) {
			third := r.End.Sub(r.Start) / 3
			switch w {
			case "early":
				r.End = r.Start.Add(third)
			case "mid":
				r.Start, r.End = r.Start.Add(third), r.End.Add(-third)
			default:
				r.Start = r.End.Add(-third)
			}
			return r, n + 1, true
		}
	}

	// Year alone after a preposition: "in 2022", "since 2019".
	if y, ok := yearNumber(toks[i]); ok && (prev == "in" || prev == "during" || prev == "since" || prev == "of" || prev == "year" ||
		prev == "early" || prev == "mid" || prev == "late" || prev == "until" || prev == "before" || prev == "after") {
		return p.year(y), 1, true
	}

	switch w {
	case "today", "tonight":
		return Range{Start: p.today, End: p.today.AddDate(0, 0, 1), Granularity: Day}, 1, true
	case "yesterday":
		return Range{Start: p.today.AddDate(0, 0, -1), End: p.today, Granularity: Day}, 1, true
	case "recently", "lately":
		return Range{Start: p.today.AddDate(0, 0, -30), End: p.today.AddDate(0, 0, 1), Granularity: Month}, 1, true
	}
	if w == "day" && at(toks, i+1) == "before" && at(toks, i+2) == "yesterday" {
		return Range{Start: p.today.AddDate(0, 0, -2), End: p.today.AddDate(0, 0, -1), Granularity: Day}, 3, true
	}
	if w == "this" {
		switch at(toks, i+1) {
		case "morning", "afternoon", "evening":
			return Range{Start: p.today, End: p.today.AddDate(0, 0, 1), Granularity: Day}, 2, true
		}
	}
	if w == "last" && at(toks, i+1) == "night" {
		return Range{Start: p.today.AddDate(0, 0, -1), End: p.today, Granularity: Day}, 2, true
	}

	// "earlier this week", "this month", "last year", "the past week".
	if w == "earlier" && at(toks, i+1) == "this" {
		if r, ok := p.period("this", at(toks, i+2)); ok {
			return r, 3, true
		}
	}
	if w == "this" || w == "last" || w == "previous" || w == "past" {
		next := at(toks, i+1)
		if r, ok := p.period(w, next); ok {
			return r, 2, true
		}
		if next == "weekend" {
			return p.weekend(w == "this"), 2, true
		}
		if wd, ok := weekdays[next]; ok {
			return p.weekday(wd, w == "last"), 2, true
		}
		if s, ok := seasons[next]; ok {
			if w == "this" {
				return p.thisSeason(s), 2, true
			}
			return p.namedSeason(s, true), 2, true
		}
		if m, ok := months[next]; ok && !abbreviated[next] && w != "past" {
			y := p.recentYearOf(m, 1)
			switch {
			case w == "this":
				y = p.today.Year()
			case y == p.today.Year() && m == p.today.Month():
				y-- // "last March", asked in March: a year ago
			}
			return p.month(y, m), 2, true
		}
		// "the past 3 days", "the last two weeks": a rolling window.
		if (w == "past" || w == "last") && next != "" {
			if n, used, ok := count(toks, i+1); ok {
				if u, ok := unit(at(toks, i+1+used)); ok {
					start := p.shift(u, -n)
					return Range{Start: start, End: p.today.AddDate(0, 0, 1), Granularity: granularityOf(u)}, 2 + used, true
				}
			}
		}
	}

	// "N units ago": "two months ago", "a week ago", "a couple of days ago".
	if n, used, ok := count(toks, i); ok {
		if u, ok := unit(at(toks, i+used)); ok && at(toks, i+used+1) == "ago" {
			return p.ago(u, n), used + 2, true
		}
	}

	// Weekday: "on Monday", "Friday".
	if wd, ok := weekdays[w]; ok {
		return p.weekday(wd, false), 1, true
	}

	// Season with a year: "summer 2022", "the summer of 2021"; or after a
	// preposition: "in the summer", "during winter".
	if s, ok := seasons[w]; ok {
		j := i + 1
		if at(toks, j) == "of" {
			j++
		}
		if y, ok := yearNumber(tokOr(toks, j)); ok {
			return p.season(y, s), j + 1 - i, true
		}
		if prev == "in" || prev == "during" || prev == "over" || (prev == "the" && (at(toks, i-2) == "in" || at(toks, i-2) == "during" || at(toks, i-2) == "over")) {
			return p.namedSeason(s, false), 1, true
		}
	}
	return Range{}, 0, false
}

func tokOr(toks []token, i int) token {
	if i < 0 || i >= len(toks) {
		return token{}
	}
	return toks[i]
}

func granularityOf(u string) Granularity {
	switch u {
	case "day":
		return Day
	case "week":
		return Week
	case "month":
		return Month
	}
	return Year
}

// shift moves today by n units.
func (p *parser) shift(u string, n int) time.Time {
	switch u {
	case "day":
		return p.today.AddDate(0, 0, n)
	case "week":
		return p.today.AddDate(0, 0, 7*n)
	case "month":
		return p.today.AddDate(0, n, 0)
	}
	return p.today.AddDate(n, 0, 0)
}

// ago is a window around a point n units before today: the day itself, or
// about half a unit either side ("two months ago" is not a calendar month).
func (p *parser) ago(u string, n int) Range {
	c := p.shift(u, -n)
	switch u {
	case "day":
		return Range{Start: c, End: c.AddDate(0, 0, 1), Granularity: Day}
	case "week":
		return Range{Start: c.AddDate(0, 0, -3), End: c.AddDate(0, 0, 4), Granularity: Week}
	case "month":
		return Range{Start: c.AddDate(0, 0, -15), End: c.AddDate(0, 0, 16), Granularity: Month}
	}
	return Range{Start: c.AddDate(0, -6, 0), End: c.AddDate(0, 6, 0), Granularity: Year}
}

// weekStart is the Monday of t's week.
func (p *parser) weekStart(t time.Time) time.Time {
	off := (int(t.Weekday()) + 6) % 7
	return t.AddDate(0, 0, -off)
}

// period handles "this|last|previous|past week|month|year".
func (p *parser) period(which, u string) (Range, bool) {
	if _, ok := unit(u); !ok || strings.HasSuffix(u, "s") || u == "day" {
		return Range{}, false
	}
	if which == "past" {
		// "the past week": the last seven days, not the calendar week.
		return Range{Start: p.shift(u, -1), End: p.today.AddDate(0, 0, 1), Granularity: granularityOf(u)}, true
	}
	back := 0
	if which == "last" || which == "previous" {
		back = 1
	}
	switch u {
	case "week":
		s := p.weekStart(p.today).AddDate(0, 0, -7*back)
		return Range{Start: s, End: s.AddDate(0, 0, 7), Granularity: Week}, true
	case "month":
		s := time.Date(p.today.Year(), p.today.Month(), 1, 0, 0, 0, 0, p.loc).AddDate(0, -back, 0)
		return Range{Start: s, End: s.AddDate(0, 1, 0), Granularity: Month}, true
	default:
		return p.year(p.today.Year() - back), true
	}
}

// weekend is the coming-or-current weekend for "this", else the last one
// that has begun before today's week (asked on a Sunday, "last weekend" is
// the one before).
func (p *parser) weekend(this bool) Range {
	sat := p.weekStart(p.today).AddDate(0, 0, 5)
	if !this {
		sat = sat.AddDate(0, 0, -7)
	}
	return Range{Start: sat, End: sat.AddDate(0, 0, 2), Granularity: Week}
}

// weekday is the latest such day on or before today ("on Monday"), or
// strictly before it ("last Monday").
func (p *parser) weekday(wd time.Weekday, strict bool) Range {
	back := (int(p.today.Weekday()) - int(wd) + 7) % 7
	if back == 0 && strict {
		back = 7
	}
	d := p.today.AddDate(0, 0, -back)
	return Range{Start: d, End: d.AddDate(0, 0, 1), Granularity: Day}
}

// namedSeason is the season that is under way or ended most recently; with
// previous set ("last summer") one that has ended.
func (p *parser) namedSeason(start time.Month, previous bool) Range {
	y := p.today.Year()
	if start == time.December && p.today.Month() < time.March {
		y-- // January and February belong to the winter that began last December
	}
	r := p.season(y, start)
	if r.Start.After(p.today) {
		r = p.season(y-1, start)
	}
	if previous && !r.End.Before(p.today.AddDate(0, 0, 1)) {
		r = p.season(r.Start.Year()-1, start)
	}
	return r
}

// thisSeason is the season of today's year ("this summer", asked in May, is
// the coming one); in January and February "this winter" began in December.
func (p *parser) thisSeason(start time.Month) Range {
	y := p.today.Year()
	if start == time.December && p.today.Month() < time.March {
		y--
	}
	return p.season(y, start)
}
