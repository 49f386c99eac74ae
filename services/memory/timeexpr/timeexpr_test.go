package timeexpr

import (
	"strings"
	"testing"
	"time"
)

func d(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }

// asOf is a Monday, so week arithmetic is easy to check by hand.
var asOf = time.Date(2023, time.May, 29, 12, 0, 0, 0, time.UTC)

func TestParse(t *testing.T) {
	type want struct {
		start, end time.Time
		g          Granularity
		text       string
	}
	tests := []struct {
		name, in string
		asOf     time.Time
		want     []want
		rest     string
	}{
		{"day month year", "What did Nate make on 24 May, 2023?", asOf,
			[]want{{d(2023, 5, 24), d(2023, 5, 25), Day, "24 May, 2023"}}, "What did Nate make?"},
		{"month day year", "what happened May 24th, 2023", asOf,
			[]want{{d(2023, 5, 24), d(2023, 5, 25), Day, "May 24th, 2023"}}, "what happened"},
		{"ordinal of month, no year: this year", "the 3rd of March", asOf,
			[]want{{d(2023, 3, 3), d(2023, 3, 4), Day, "3rd of March"}}, ""},
		{"day without year after as_of: last year", "on 12 June", asOf,
			[]want{{d(2022, 6, 12), d(2022, 6, 13), Day, "12 June"}}, ""},
		{"in March", "Where did Caroline go in March?", asOf,
			[]want{{d(2023, 3, 1), d(2023, 4, 1), Month, "March"}}, "Where did Caroline go?"},
		{"lower-case in march", "what did we eat in march", asOf,
			[]want{{d(2023, 3, 1), d(2023, 4, 1), Month, "march"}}, "what did we eat"},
		{"December asked in May: last year's", "in December", asOf,
			[]want{{d(2022, 12, 1), d(2023, 1, 1), Month, "December"}}, ""},
		{"bare unambiguous month", "the January trip", asOf,
			[]want{{d(2023, 1, 1), d(2023, 2, 1), Month, "January"}}, "trip"},
		{"month year", "in September 2022", asOf,
			[]want{{d(2022, 9, 1), d(2022, 10, 1), Month, "September 2022"}}, ""},
		{"abbreviated month with day", "on Sep 3 2022", asOf,
			[]want{{d(2022, 9, 3), d(2022, 9, 4), Day, "Sep 3 2022"}}, ""},
		{"last March asked in May", "last March", asOf,
			[]want{{d(2023, 3, 1), d(2023, 4, 1), Month, "last March"}}, ""},
		{"last May asked in May: a year ago", "what about last May", asOf,
			[]want{{d(2022, 5, 1), d(2022, 6, 1), Month, "last May"}}, "what about"},
		{"year", "Did she travel in 2022?", asOf,
			[]want{{d(2022, 1, 1), d(2023, 1, 1), Year, "2022"}}, "Did she travel?"},
		{"since a month: until now", "since March", asOf,
			[]want{{d(2023, 3, 1), d(2023, 5, 30), Month, "March"}}, ""},
		{"early month year", "early May 2023", asOf,
			[]want{{d(2023, 5, 1), d(2023, 5, 1).Add(31 * 24 * time.Hour / 3), Month, "early May 2023"}}, ""},
		{"late year", "late 2022", asOf,
			[]want{{d(2023, 1, 1).Add(-365 * 24 * time.Hour / 3), d(2023, 1, 1), Year, "late 2022"}}, ""},
		{"today", "what did I say today", asOf, []want{{d(2023, 5, 29), d(2023, 5, 30), Day, "today"}}, "what did I say"},
		{"yesterday", "Yesterday's meeting", asOf, []want{{d(2023, 5, 28), d(2023, 5, 29), Day, "Yesterday"}}, "'s meeting"},
		{"last night", "what did we watch last night?", asOf, []want{{d(2023, 5, 28), d(2023, 5, 29), Day, "last night"}}, "what did we watch?"},
		{"day before yesterday", "the day before yesterday", asOf, []want{{d(2023, 5, 27), d(2023, 5, 28), Day, "day before yesterday"}}, ""},
		{"last week is the calendar week before", "What did Jon do last week?", asOf,
			[]want{{d(2023, 5, 22), d(2023, 5, 29), Week, "last week"}}, "What did Jon do?"},
		{"this week", "this week", asOf, []want{{d(2023, 5, 29), d(2023, 6, 5), Week, "this week"}}, ""},
		{"earlier this month", "earlier this month", asOf, []want{{d(2023, 5, 1), d(2023, 6, 1), Month, "earlier this month"}}, ""},
		{"last month", "last month", asOf, []want{{d(2023, 4, 1), d(2023, 5, 1), Month, "last month"}}, ""},
		{"last year", "last year", asOf, []want{{d(2022, 1, 1), d(2023, 1, 1), Year, "last year"}}, ""},
		{"the past week is seven days", "over the past week", asOf, []want{{d(2023, 5, 22), d(2023, 5, 30), Week, "past week"}}, ""},
		{"the past 3 days", "What happened over the past 3 days?", asOf,
			[]want{{d(2023, 5, 26), d(2023, 5, 30), Day, "past 3 days"}}, "What happened?"},
		{"two months ago is about a month around the point", "two months ago", asOf,
			[]want{{d(2023, 3, 14), d(2023, 4, 14), Month, "two months ago"}}, ""},
		{"a couple of weeks ago", "a couple of weeks ago", asOf,
			[]want{{d(2023, 5, 12), d(2023, 5, 19), Week, "a couple of weeks ago"}}, ""},
		{"3 days ago", "what did we discuss 3 days ago", asOf,
			[]want{{d(2023, 5, 26), d(2023, 5, 27), Day, "3 days ago"}}, "what did we discuss"},
		{"a year ago", "a year ago", asOf,
			[]want{{d(2021, 11, 29), d(2022, 11, 29), Year, "a year ago"}}, ""},
		{"last weekend asked on Monday", "last weekend", asOf,
			[]want{{d(2023, 5, 27), d(2023, 5, 29), Week, "last weekend"}}, ""},
		{"last weekend asked on Sunday is the one before", "last weekend", time.Date(2023, 6, 4, 9, 0, 0, 0, time.UTC),
			[]want{{d(2023, 5, 27), d(2023, 5, 29), Week, "last weekend"}}, ""},
		{"on Friday", "what did she bake on Friday", asOf,
			[]want{{d(2023, 5, 26), d(2023, 5, 27), Day, "Friday"}}, "what did she bake"},
		{"last Monday asked on a Monday", "last Monday", asOf, []want{{d(2023, 5, 22), d(2023, 5, 23), Day, "last Monday"}}, ""},
		{"Monday asked on a Monday", "Monday", asOf, []want{{d(2023, 5, 29), d(2023, 5, 30), Day, "Monday"}}, ""},
		{"last summer", "Where did they go last summer?", asOf,
			[]want{{d(2022, 6, 1), d(2022, 9, 1), Season, "last summer"}}, "Where did they go?"},
		{"last winter", "last winter", asOf, []want{{d(2022, 12, 1), d(2023, 3, 1), Season, "last winter"}}, ""},
		{"this summer asked in May is the coming one", "this summer", asOf, []want{{d(2023, 6, 1), d(2023, 9, 1), Season, "this summer"}}, ""},
		{"this winter asked in January", "this winter", time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC),
			[]want{{d(2023, 12, 1), d(2024, 3, 1), Season, "this winter"}}, ""},
		{"in the summer of 2021", "in the summer of 2021", asOf, []want{{d(2021, 6, 1), d(2021, 9, 1), Season, "summer of 2021"}}, ""},
		{"during the winter", "during the winter", asOf, []want{{d(2022, 12, 1), d(2023, 3, 1), Season, "winter"}}, ""},
		{"iso date", "notes from 2023-05-24 please", asOf, []want{{d(2023, 5, 24), d(2023, 5, 25), Day, "2023-05-24"}}, "notes please"},
		{"slash date, month first", "on 5/24/2023", asOf, []want{{d(2023, 5, 24), d(2023, 5, 25), Day, "5/24/2023"}}, ""},
		{"slash date, day first when it must be", "on 24/05/2023", asOf, []want{{d(2023, 5, 24), d(2023, 5, 25), Day, "24/05/2023"}}, ""},
		{"recently", "what has he been reading recently", asOf, []want{{d(2023, 4, 29), d(2023, 5, 30), Month, "recently"}}, "what has he been reading"},
		{"two dates in order", "What did Jon do between 9 March and 2 March 2023?", asOf, []want{
			{d(2023, 3, 9), d(2023, 3, 10), Day, "9 March"}, {d(2023, 3, 2), d(2023, 3, 3), Day, "2 March 2023"}}, "What did Jon do between and?"},
		{"iso and words keep text order", "yesterday or 2023-01-02", asOf, []want{
			{d(2023, 5, 28), d(2023, 5, 29), Day, "yesterday"}, {d(2023, 1, 2), d(2023, 1, 3), Day, "2023-01-02"}}, "or"},

		// Words that look like times but are not.
		{"modal may", "May I ask what you cooked?", asOf, nil, "May I ask what you cooked?"},
		{"verb march", "why did the band march", asOf, nil, "why did the band march"},
		{"abbreviation alone", "the dec was wrong; sat on the jan", asOf, nil, "the dec was wrong; sat on the jan"},
		{"a day without ago", "what is a day like for you", asOf, nil, "what is a day like for you"},
		{"last without a unit", "the last time we spoke", asOf, nil, "the last time we spoke"},
		{"bare year-like number", "room 2022 is booked", asOf, nil, "room 2022 is booked"},
		{"invalid day", "on 31 April 2023", asOf, nil, "on 31 April 2023"},
		{"invalid iso", "2023-13-40", asOf, nil, "2023-13-40"},
		{"no time at all", "how did the deploy go?", asOf, nil, "how did the deploy go?"},
		{"empty", "", asOf, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse(tt.in, tt.asOf)
			if len(got.Ranges) != len(tt.want) {
				t.Fatalf("Parse(%q) = %d ranges %+v, want %d", tt.in, len(got.Ranges), got.Ranges, len(tt.want))
			}
			for i, w := range tt.want {
				r := got.Ranges[i]
				if !r.Start.Equal(w.start) || !r.End.Equal(w.end) || r.Granularity != w.g || r.Text != w.text {
					t.Errorf("range %d = [%s, %s) %s %q, want [%s, %s) %s %q", i, r.Start, r.End, r.Granularity, r.Text,
						w.start, w.end, w.g, w.text)
				}
			}
			if got.Rest != tt.rest {
				t.Errorf("Rest = %q, want %q", got.Rest, tt.rest)
			}
		})
	}
}

// Days begin where as_of says they do.
func TestParseLocation(t *testing.T) {
	loc := time.FixedZone("UTC-7", -7*3600)
	now := time.Date(2023, 5, 29, 20, 0, 0, 0, time.UTC).In(loc) // 13:00 on the 29th there
	got := Parse("yesterday", now)
	want := time.Date(2023, 5, 28, 0, 0, 0, 0, loc)
	if len(got.Ranges) != 1 || !got.Ranges[0].Start.Equal(want) {
		t.Fatalf("got %+v, want start %s", got.Ranges, want)
	}
}

func TestMaxRanges(t *testing.T) {
	got := Parse(strings.Repeat("yesterday ", 20), asOf)
	if len(got.Ranges) != MaxRanges {
		t.Fatalf("%d ranges, want %d", len(got.Ranges), MaxRanges)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"on 24 May, 2023", "two months ago", "last summer", "2023-02-30", "\xff May 3", "early mid late 2022"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Parse(s, asOf)
		if len(got.Ranges) > MaxRanges {
			t.Fatalf("%d ranges", len(got.Ranges))
		}
		for _, r := range got.Ranges {
			if !r.Start.Before(r.End) {
				t.Fatalf("empty window %+v for %q", r, s)
			}
			if !strings.Contains(s, r.Text) {
				t.Fatalf("text %q not in %q", r.Text, s)
			}
		}
		if len(got.Rest) > len(s) {
			t.Fatalf("rest %q longer than input %q", got.Rest, s)
		}
	})
}
