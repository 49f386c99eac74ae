package stack

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Measurements collects the numbers the suites measure, for a summary
// table at the end of the run (docs/benchmarks.md takes it as is).
type Measurements struct {
	mu   sync.Mutex
	rows []row
}

type row struct{ what, value, budget string }

// Add records one measurement; budget is the bound it was held to ("" when
// none).
func (m *Measurements) Add(what, value, budget string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, row{what, value, budget})
}

// Duration records a duration, rounded for reading.
func (m *Measurements) Duration(what string, d time.Duration, budget string) {
	m.Add(what, Round(d).String(), budget)
}

// Len is the number of measurements.
func (m *Measurements) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

// Table renders the measurements as a markdown table, in recording order.
func (m *Measurements) Table() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("| what | measured | budget |\n|---|---|---|\n")
	for _, r := range m.rows {
		budget := r.budget
		if budget == "" {
			budget = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", cell(r.what), cell(r.value), cell(budget))
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Round keeps three significant digits or so: 1.234567ms -> 1.23ms.
func Round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// Percentile returns the p-th percentile (0..100) of ds by nearest rank:
// the ⌈p/100·n⌉-th smallest (the smallest for p 0); zero for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return PercentileSorted(s, p)
}

// PercentileSorted is Percentile of ds already sorted ascending, without a
// copy.
func PercentileSorted(ds []time.Duration, p float64) time.Duration {
	n := len(ds)
	if n == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(n)-1e-9)) - 1
	return ds[min(max(k, 0), n-1)]
}
