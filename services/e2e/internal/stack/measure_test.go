package stack

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, x := range n {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of unsorted", ms(5, 1, 3, 2, 4), 50, 3 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(seq(100)...), 99, 99 * time.Millisecond},
		{"p100 is the max", ms(3, 9, 1), 100, 9 * time.Millisecond},
		{"p0 is the min", ms(3, 9, 1), 0, 1 * time.Millisecond},
		{"p50 of 4 is the 2nd", ms(4, 3, 2, 1), 50, 2 * time.Millisecond},
		{"p95 of 10 is the 10th", ms(seq(10)...), 95, 10 * time.Millisecond},
		{"p91 of 10 is the 10th (nearest rank rounds up)", ms(seq(10)...), 91, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestRound(t *testing.T) {
	tests := []struct{ in, want time.Duration }{
		{1234567 * time.Nanosecond, 1230 * time.Microsecond},
		{12345678 * time.Nanosecond, 12300 * time.Microsecond},
		{1234567890 * time.Nanosecond, 1230 * time.Millisecond},
		{1500 * time.Nanosecond, 2 * time.Microsecond},
	}
	for _, tt := range tests {
		if got := Round(tt.in); got != tt.want {
			t.Errorf("Round(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestTable(t *testing.T) {
	var m Measurements
	m.Duration("recall | degraded", 1234*time.Microsecond, "≤ 5 ms")
	m.Add("lines", "10", "")
	got := m.Table()
	want := "| what | measured | budget |\n|---|---|---|\n| recall \\| degraded | 1.23ms | ≤ 5 ms |\n| lines | 10 | — |\n"
	if got != want {
		t.Errorf("Table() =\n%s\nwant\n%s", got, want)
	}
	if m.Len() != 2 || !strings.Contains(got, "1.23ms") {
		t.Errorf("Len() = %d", m.Len())
	}
}

func TestMerge(t *testing.T) {
	got := merge([]string{"A=1", "B=2"}, []string{"B=3", "C=4"})
	if strings.Join(got, ",") != "A=1,B=3,C=4" {
		t.Errorf("merge = %v", got)
	}
}
