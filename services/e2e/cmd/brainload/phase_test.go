package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var d []time.Duration
		for _, n := range ns {
			d = append(d, time.Duration(n)*time.Millisecond)
		}
		return d
	}
	tests := []struct {
		name string
		lat  []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"p50 of 4 is the 2nd", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(seq(100)...), 0.99, 99 * time.Millisecond},
		{"p95 of 10 is the 10th", ms(seq(10)...), 0.95, 10 * time.Millisecond},
		{"p100 is the max", ms(1, 5, 9), 1, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (row{latencies: tt.lat}).pct(tt.p); got != tt.want {
				t.Fatalf("pct(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

func TestRunIsBoundedByCount(t *testing.T) {
	var calls atomic.Int64
	cfg := runConfig{concurrency: 4, duration: 10 * time.Second, maxRequests: 50, callTimeout: time.Second}
	start := time.Now()
	p := run(context.Background(), "count", cfg, func(ctx context.Context, i int) (outcome, error) {
		calls.Add(1)
		if i%10 == 0 {
			return outcome{kind: "k"}, errors.New("every tenth fails")
		}
		return outcome{kind: "k", degraded: i%5 == 1, note: "why", extra: []sample{{"x", time.Millisecond}}}, nil
	})
	if time.Since(start) > 5*time.Second {
		t.Fatalf("a 50-call phase took %s", time.Since(start))
	}
	if calls.Load() != 50 || p.requests != 50 {
		t.Fatalf("calls %d, requests %d, want 50", calls.Load(), p.requests)
	}
	r, ok := p.find("k")
	if !ok || r.errors != 5 || len(r.latencies) != 45 || r.degraded != 10 || r.firstNote != "why" || r.firstErr == nil {
		t.Fatalf("row %+v", r)
	}
	x, ok := p.find("k: x")
	if !ok || !x.derived || len(x.latencies) != 45 || x.pct(0.5) != time.Millisecond {
		t.Fatalf("extra row %+v", x)
	}
}

func TestRunIsBoundedByTimeAndWarmsUp(t *testing.T) {
	var calls atomic.Int64
	cfg := runConfig{concurrency: 2, duration: 150 * time.Millisecond, warmup: 100 * time.Millisecond, maxRequests: 1 << 30, callTimeout: time.Second}
	start := time.Now()
	p := run(context.Background(), "time", cfg, func(ctx context.Context, i int) (outcome, error) {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		return outcome{kind: "k"}, nil
	})
	el := time.Since(start)
	if el < 250*time.Millisecond || el > 2*time.Second {
		t.Fatalf("warm-up + phase took %s, want about 250 ms", el)
	}
	r, _ := p.find("k")
	if int64(len(r.latencies)) >= calls.Load() || len(r.latencies) == 0 {
		t.Fatalf("recorded %d of %d calls: the warm-up must not be recorded", len(r.latencies), calls.Load())
	}
	if r.elapsed < 150*time.Millisecond || r.throughput() <= 0 {
		t.Fatalf("elapsed %s, throughput %f", r.elapsed, r.throughput())
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	run(ctx, "cancel", runConfig{concurrency: 3, duration: time.Minute, maxRequests: 1 << 30, callTimeout: time.Minute},
		func(ctx context.Context, i int) (outcome, error) {
			<-ctx.Done() // a call that only ends with its context
			return outcome{kind: "k"}, ctx.Err()
		})
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("run ignored its context for %s", d)
	}
}
