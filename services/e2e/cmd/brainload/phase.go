package main

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/brainhq/brain/services/e2e/internal/stack"
)

// sample is an extra timing a call reports besides its own latency, such as
// Orchestrate's time to the first LAB result.
type sample struct {
	name string
	d    time.Duration
}

// outcome is what one call reports: which row it belongs to (a mixed phase
// has several), whether the answer was degraded, and extra timings.
type outcome struct {
	kind     string
	degraded bool
	// fallback: the recall behind the answer did not come from PostgreSQL
	// (cache or nothing), so its latency is not that of the healthy path.
	fallback bool
	note     string // why it was degraded
	extra    []sample
}

// callFunc makes call number i; its latency is measured by the runner.
type callFunc func(ctx context.Context, i int) (outcome, error)

// row is one measured series: the latencies of the successful calls of one
// kind (or one extra timing), their errors and degraded answers.
type row struct {
	name      string
	latencies []time.Duration // sorted once the phase ends
	errors    int
	degraded  int
	fallback  int
	firstErr  error
	firstNote string // the reason of the first degraded answer
	elapsed   time.Duration
	// derived marks a row of extra timings: its count is not a request count,
	// so it has no throughput.
	derived bool
}

// fallbackShare is the fraction of answers not served from PostgreSQL.
func (r row) fallbackShare() float64 {
	return float64(r.fallback) / float64(max(len(r.latencies), 1))
}

// pct is the nearest-rank percentile p (0..1] of the sorted latencies.
func (r row) pct(p float64) time.Duration { return stack.PercentileSorted(r.latencies, 100*p) }

func (r row) max() time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[len(r.latencies)-1]
}

func (r row) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(len(r.latencies)) / r.elapsed.Seconds()
}

// phase is a finished measurement: its rows in first-seen order.
type phase struct {
	name     string
	rows     []row
	start    time.Time
	end      time.Time
	requests int
}

// find returns the row named name.
func (p phase) find(name string) (row, bool) {
	for _, r := range p.rows {
		if r.name == name {
			return r, true
		}
	}
	return row{}, false
}

// runConfig bounds a phase: fixed concurrency, fixed time, bounded count.
type runConfig struct {
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	maxRequests int
	callTimeout time.Duration
}

// run drives call from cfg.concurrency goroutines, first for cfg.warmup
// unrecorded, then for cfg.duration (or cfg.maxRequests calls, whichever
// ends first), and returns the recorded rows. It returns early, with what it
// has, when ctx ends.
func run(ctx context.Context, name string, cfg runConfig, call callFunc) phase {
	if cfg.warmup > 0 {
		runOnce(ctx, name, cfg, cfg.warmup, call)
	}
	return runOnce(ctx, name, cfg, cfg.duration, call)
}

// collector gathers the rows of one phase from its workers.
type collector struct {
	mu    sync.Mutex
	order []string
	rows  map[string]*row
}

func (c *collector) get(name string, derived bool) *row {
	r, ok := c.rows[name]
	if !ok {
		r = &row{name: name, derived: derived}
		c.rows[name] = r
		c.order = append(c.order, name)
	}
	return r
}

func runOnce(ctx context.Context, name string, cfg runConfig, d time.Duration, call callFunc) phase {
	col := &collector{rows: map[string]*row{}}
	next := make(chan int)
	start := time.Now()
	deadline := start.Add(d)
	runCtx, cancel := context.WithDeadline(ctx, deadline.Add(cfg.callTimeout))
	defer cancel()
	go func() { // the feeder owns next and closes it
		defer close(next)
		for i := 0; i < cfg.maxRequests; i++ {
			if time.Now().After(deadline) {
				return
			}
			select {
			case next <- i:
			case <-runCtx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Go(func() {
			for i := range next {
				callCtx, cancelCall := context.WithTimeout(runCtx, cfg.callTimeout)
				t := time.Now()
				out, err := call(callCtx, i)
				el := time.Since(t)
				cancelCall()
				col.mu.Lock()
				r := col.get(out.kind, false)
				if err != nil {
					r.errors++
					if r.firstErr == nil {
						r.firstErr = err
					}
				} else {
					r.latencies = append(r.latencies, el)
					if out.fallback {
						r.fallback++
					}
					if out.degraded {
						r.degraded++
						if r.firstNote == "" {
							r.firstNote = out.note
						}
					}
					for _, s := range out.extra {
						x := col.get(out.kind+": "+s.name, true)
						x.latencies = append(x.latencies, s.d)
					}
				}
				col.mu.Unlock()
			}
		})
	}
	wg.Wait()
	end := time.Now()
	p := phase{name: name, start: start, end: end}
	for _, n := range col.order {
		r := *col.rows[n]
		r.elapsed = end.Sub(start)
		slices.Sort(r.latencies)
		if !r.derived {
			p.requests += len(r.latencies) + r.errors
		}
		p.rows = append(p.rows, r)
	}
	return p
}
