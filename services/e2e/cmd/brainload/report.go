package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Phase names; the budget table looks rows up by phase and row name.
const (
	phSQL        = "raw SQL"
	phGRPC       = "gRPC Recall"
	phJSONMemory = "JSON Recall (memory HTTP)"
	phJSONFront  = "JSON Recall (front door)"
	phOrch       = "Orchestrate"
	phMixed      = "mixed"
	phDead       = "Postgres dead (breaker open)"
	phDropRecall = "Postgres silently dropping: Recall"
	phDropOrch   = "Postgres silently dropping: Orchestrate"
	phCorpusLoad = "corpus load"
)

// results is everything one run measured.
type results struct {
	header   []string
	notes    []string // warnings found while measuring
	phases   []phase
	rss      *sampler // nil when RSS was not sampled
	services []string // sampled services, in report order
	idle     map[string]int64
	times    timings
	// loadPhases are the phases whose peak RSS counts as "under load".
	loadPhases map[string]bool
}

func (res *results) row(phaseName, rowName string) (row, bool) {
	for _, p := range res.phases {
		if p.name == phaseName {
			return p.find(rowName)
		}
	}
	return row{}, false
}

func fmtMS(d time.Duration) string {
	switch {
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
	}
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(max(b, 1)) }

func (res *results) write(out io.Writer) {
	for _, h := range res.header {
		fmt.Fprintln(out, h)
	}
	for _, n := range res.notes {
		fmt.Fprintln(out, "- **warning**: "+n)
	}
	fmt.Fprintln(out)
	res.writeBudgets(out)
	res.writeLatency(out)
	res.writeRatios(out)
	res.writeRSS(out)
	res.writeTimings(out)
	res.writeErrors(out)
}

func (res *results) writeLatency(out io.Writer) {
	if len(res.phases) == 0 {
		return
	}
	fmt.Fprintln(out, "### Latency and throughput per phase")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| phase | series | requests | errors | degraded | not from Postgres | throughput | p50 | p95 | p99 | max |")
	fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range res.phases {
		for _, r := range p.rows {
			if r.derived {
				fmt.Fprintf(out, "| %s | ↳ %s | %d | | | | | %s | %s | %s | %s |\n", p.name, strings.TrimPrefix(r.name, nameBefore(r.name)),
					len(r.latencies), fmtMS(r.pct(0.5)), fmtMS(r.pct(0.95)), fmtMS(r.pct(0.99)), fmtMS(r.max()))
				continue
			}
			fmt.Fprintf(out, "| %s | %s | %d | %d | %d | %d | %.0f/s | %s | %s | %s | %s |\n", p.name, r.name, len(r.latencies)+r.errors, r.errors, r.degraded, r.fallback,
				r.throughput(), fmtMS(r.pct(0.5)), fmtMS(r.pct(0.95)), fmtMS(r.pct(0.99)), fmtMS(r.max()))
		}
	}
	fmt.Fprintln(out)
}

// nameBefore is the "<kind>: " prefix of an extra series' name.
func nameBefore(name string) string {
	if i := strings.LastIndex(name, ": "); i >= 0 {
		return name[:i+2]
	}
	return ""
}

func (res *results) writeRatios(out io.Writer) {
	type pair struct{ name, phA, rowA, phB, rowB string }
	pairs := []pair{
		{"gRPC Recall / raw SQL", phGRPC, kindGRPC, phSQL, kindSQL},
		{"JSON Recall (memory HTTP) / gRPC Recall", phJSONMemory, kindJSONMemory, phGRPC, kindGRPC},
		{"JSON Recall (orchestrator HTTP) / gRPC Recall", phJSONFront, kindJSONFront, phGRPC, kindGRPC},
	}
	var lines []string
	for _, p := range pairs {
		a, okA := res.row(p.phA, p.rowA)
		b, okB := res.row(p.phB, p.rowB)
		if !okA || !okB || len(a.latencies) == 0 || len(b.latencies) == 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("| %s | %.2f× | %.2f× | %.2f× |", p.name,
			ratio(a.pct(0.5), b.pct(0.5)), ratio(a.pct(0.99), b.pct(0.99)), a.throughput()/max(b.throughput(), 1e-9)))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(out, "### Ratios")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| ratio | p50 | p99 | throughput |")
	fmt.Fprintln(out, "|---|---:|---:|---:|")
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	fmt.Fprintln(out)
}

func (res *results) writeRSS(out io.Writer) {
	if res.rss == nil || len(res.services) == 0 {
		return
	}
	fmt.Fprintln(out, "### Resident memory (VmRSS sampled every 100 ms)")
	fmt.Fprintln(out)
	fmt.Fprintf(out, "| when | %s |\n", strings.Join(res.services, " | "))
	fmt.Fprintf(out, "|---|%s\n", strings.Repeat("---:|", len(res.services)))
	// cells renders one row; ok is false when no service has a sample.
	cells := func(f func(svc string) (int64, bool)) (string, bool) {
		var c []string
		seen := false
		for _, s := range res.services {
			if kb, ok := f(s); ok {
				c, seen = append(c, mb(kb)), true
			} else {
				c = append(c, "–")
			}
		}
		return strings.Join(c, " | "), seen
	}
	line := func(label string, f func(svc string) (int64, bool)) {
		if c, ok := cells(f); ok {
			fmt.Fprintf(out, "| %s | %s |\n", label, c)
		}
	}
	line("idle, before any brainload traffic", func(s string) (int64, bool) { kb, ok := res.idle[s]; return kb, ok })
	for _, p := range res.phases {
		line("peak during "+p.name, func(s string) (int64, bool) { return res.rss.peak(s, p.start, p.end) })
	}
	line("peak under load (all load phases)", res.peakUnderLoad)
	fmt.Fprintln(out)
}

func (res *results) peakUnderLoad(service string) (int64, bool) {
	if res.rss == nil {
		return 0, false
	}
	var best int64
	found := false
	for _, p := range res.phases {
		if !res.loadPhases[p.name] {
			continue
		}
		if kb, ok := res.rss.peak(service, p.start, p.end); ok && kb >= best {
			best, found = kb, true
		}
	}
	return best, found
}

func (res *results) writeTimings(out io.Writer) {
	rows := res.times.rows()
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(out, "### Start-up and readiness (spawned processes; health polled every 5 ms)")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| measurement | n | median | max |")
	fmt.Fprintln(out, "|---|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(out, "| %s | %d | %s | %s |\n", r.name, len(r.latencies), fmtMS(r.pct(0.5)), fmtMS(r.max()))
	}
	fmt.Fprintln(out)
}

func (res *results) writeErrors(out io.Writer) {
	var lines []string
	for _, p := range res.phases {
		for _, r := range p.rows {
			if r.firstErr != nil {
				lines = append(lines, fmt.Sprintf("- %s / %s: %d errors, first: %v", p.name, r.name, r.errors, r.firstErr))
			}
			if r.degraded > 0 {
				lines = append(lines, fmt.Sprintf("- %s / %s: %d degraded answers, first: %s", p.name, r.name, r.degraded, oneLine(r.firstNote)))
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(out, "### Errors and degraded answers")
	fmt.Fprintln(out)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	fmt.Fprintln(out)
}

// verdict is one line of the budget table.
type verdict struct {
	what, budget, measured string
	state                  string // "met", "NOT met", "not measured"
}

func check(ok bool) string {
	if ok {
		return "met"
	}
	return "**NOT met**"
}

const notMeasured = "not measured"

// maxFallbackShare is the share of answers not served by PostgreSQL above
// which a healthy-path figure is not a measurement of the healthy path.
const maxFallbackShare = 0.01

// judge is check(ok), unless one of rows has too many answers that did not
// come from PostgreSQL (the breaker was open, say): then the figure says
// nothing about the budget, and the verdict says so.
func judge(ok bool, rows ...row) string {
	for _, r := range rows {
		if r.fallbackShare() > maxFallbackShare {
			return fmt.Sprintf("**invalid**: %.0f%% of %q answers not from Postgres", 100*r.fallbackShare(), r.name)
		}
	}
	return check(ok)
}

func (res *results) budgets() []verdict {
	var v []verdict
	add := func(what, budget string, measured string, state string) {
		v = append(v, verdict{what, budget, measured, state})
	}
	g, okG := res.row(phGRPC, kindGRPC)
	okG = okG && len(g.latencies) > 0
	if okG {
		add("Recall p50 (gRPC, concurrency 8)", "≤ 3 ms", fmtMS(g.pct(0.5)), judge(g.pct(0.5) <= 3*time.Millisecond, g))
		add("Recall p99 (gRPC, concurrency 8)", "≤ 15 ms", fmtMS(g.pct(0.99)), judge(g.pct(0.99) <= 15*time.Millisecond, g))
		add("Recall throughput (gRPC, concurrency 8)", "≥ 1,000/s", fmt.Sprintf("%.0f/s", g.throughput()), judge(g.throughput() >= 1000, g))
	} else {
		add("Recall p50 / p99 / throughput", "≤ 3 ms / ≤ 15 ms / ≥ 1,000/s", "", notMeasured)
	}
	if s, ok := res.row(phSQL, kindSQL); ok && okG && len(s.latencies) > 0 {
		r50 := ratio(g.pct(0.5), s.pct(0.5))
		add("Recall service overhead vs raw SQL (gRPC p50 / SQL p50)", "≤ 1.3×",
			fmt.Sprintf("%.2f× (p99 %.2f×)", r50, ratio(g.pct(0.99), s.pct(0.99))), judge(r50 <= 1.3, g, s))
	} else {
		add("Recall service overhead vs raw SQL", "≤ 1.3×", "", notMeasured)
	}
	orch, _ := res.row(phOrch, kindOrchestrate)
	if b, ok := res.row(phOrch, kindOrchestrate+": "+extraBeyondRecall); ok && len(b.latencies) > 0 {
		add("Orchestrate, all nine LABs, beyond its recall (p50)", "≤ 1 ms", fmtMS(b.pct(0.5)), judge(b.pct(0.5) <= time.Millisecond, orch))
	} else {
		add("Orchestrate beyond recall", "≤ 1 ms p50", "", notMeasured)
	}
	if b, ok := res.row(phOrch, kindOrchestrate+": "+extraBeyondMemory); ok && len(b.latencies) > 0 {
		add("(informative) Orchestrate beyond its recall and LAB_007's ListEpisodes (p50)", "≤ 1 ms", fmtMS(b.pct(0.5)), judge(b.pct(0.5) <= time.Millisecond, orch))
	}
	if b, ok := res.row(phOrch, kindOrchestrate+": "+extraFirstLabBeyond); ok && len(b.latencies) > 0 {
		add("Orchestrate first LAB result, beyond its recall (p50)", "≤ 1 ms", fmtMS(b.pct(0.5)), judge(b.pct(0.5) <= time.Millisecond, orch))
	} else {
		add("Orchestrate first LAB result", "≤ 1 ms", "", notMeasured)
	}
	for _, j := range []struct{ ph, kind, what string }{
		{phJSONMemory, kindJSONMemory, "JSON vs gRPC, same Recall (memory's gateway, p50)"},
		{phJSONFront, kindJSONFront, "JSON vs gRPC, same Recall (orchestrator's front door, p50)"},
	} {
		if r, ok := res.row(j.ph, j.kind); ok && okG && len(r.latencies) > 0 {
			x := ratio(r.pct(0.5), g.pct(0.5))
			add(j.what, "≤ 2×", fmt.Sprintf("%.2f× (p99 %.2f×)", x, ratio(r.pct(0.99), g.pct(0.99))), judge(x <= 2, r, g))
		} else {
			add(j.what, "≤ 2×", "", notMeasured)
		}
	}
	if d, ok := res.row(phDead, kindDead); ok && len(d.latencies)+d.errors > 0 {
		add("Recall with Postgres dead, breaker open (p99, all degraded)", "≤ 5 ms, degraded=true",
			fmt.Sprintf("%s, %d of %d not degraded or failed", fmtMS(d.pct(0.99)), d.errors, len(d.latencies)+d.errors),
			check(d.pct(0.99) <= 5*time.Millisecond && d.errors == 0))
	} else {
		add("Recall with Postgres dead, breaker open", "p99 ≤ 5 ms", "", notMeasured)
	}
	for _, x := range []struct{ ph, kind, what string }{
		{phDropRecall, kindDropRecall, "Recall while Postgres silently drops packets (300 ms deadline; max)"},
		{phDropOrch, kindDropOrchestrate, "Orchestrate while Postgres silently drops packets (default 300 ms budget; max)"},
	} {
		if d, ok := res.row(x.ph, x.kind); ok && len(d.latencies)+d.errors > 0 {
			add(x.what, "answered within 300 ms", fmt.Sprintf("max %s, %d errors of %d", fmtMS(d.max()), d.errors, len(d.latencies)+d.errors),
				check(d.max() <= 300*time.Millisecond && d.errors == 0))
		} else {
			add(x.what, "within 300 ms", "", notMeasured)
		}
	}
	worst := func(names ...string) (time.Duration, string, bool) {
		var w time.Duration
		var which string
		found := false
		for _, n := range names {
			if r, ok := res.times.get(n); ok && len(r.latencies) > 0 {
				found = true
				if r.max() >= w {
					w, which = r.max(), n
				}
			}
		}
		return w, which, found
	}
	timed := func(what, budget string, limit time.Duration, names ...string) {
		if w, which, ok := worst(names...); ok {
			add(what, budget, fmt.Sprintf("max %s (%s)", fmtMS(w), which), check(w <= limit))
		} else {
			add(what, budget, "", notMeasured)
		}
	}
	timed("readiness change after Postgres dies, returns, or drops packets", "≤ 2 s", 2*time.Second,
		tReadyDownMemory, tReadyDownOrch, tReadyUpMemory, tReadyUpOrch, tReadyDropMemory, tReadyHealMemory)
	timed("process start → SERVING, Postgres up", "≤ 1 s", time.Second, tStartMemoryUp, tStartOrchUp)
	timed("process start → health answering, Postgres unreachable", "≤ 1 s", time.Second, tStartMemoryDead, tStartOrchDead)
	for _, s := range res.services {
		if kb, ok := res.idle[s]; ok {
			add("resident memory idle, "+s, "≤ 40 MB", mb(kb), check(kb <= 40*1024))
		} else {
			add("resident memory idle, "+s, "≤ 40 MB", "", notMeasured)
		}
		if kb, ok := res.peakUnderLoad(s); ok {
			add("resident memory peak under load, "+s, "≤ 150 MB", mb(kb), check(kb <= 150*1024))
		} else {
			add("resident memory peak under load, "+s, "≤ 150 MB", "", notMeasured)
		}
	}
	return v
}

func (res *results) writeBudgets(out io.Writer) {
	fmt.Fprintln(out, "### Budgets of docs/design.md")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| what | budget | measured | verdict |")
	fmt.Fprintln(out, "|---|---|---|---|")
	for _, v := range res.budgets() {
		fmt.Fprintf(out, "| %s | %s | %s | %s |\n", v.what, v.budget, v.measured, v.state)
	}
	fmt.Fprintln(out)
}

// oneLine keeps a reason short and on one line for a markdown list.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 240 {
		s = string(r[:240]) + "…"
	}
	return s
}
