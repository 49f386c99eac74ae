package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// flat is a sorted series of n identical latencies.
func flat(n int, d time.Duration) []time.Duration {
	l := make([]time.Duration, n)
	for i := range l {
		l[i] = d
	}
	return l
}

func TestBudgetsVerdicts(t *testing.T) {
	sec := time.Second
	res := &results{
		idle:       map[string]int64{"memory": 30 * 1024, "orchestrator": 50 * 1024},
		services:   []string{"memory", "orchestrator"},
		loadPhases: map[string]bool{},
		phases: []phase{
			{name: phSQL, rows: []row{{name: kindSQL, latencies: flat(100, time.Millisecond), elapsed: sec}}},
			// 2 ms p50 at 1,500/s: 2× the SQL, over the 1.3× budget.
			{name: phGRPC, rows: []row{{name: kindGRPC, latencies: flat(1500, 2*time.Millisecond), elapsed: sec}}},
			{name: phJSONMemory, rows: []row{{name: kindJSONMemory, latencies: flat(100, 3*time.Millisecond), elapsed: sec}}},
			{name: phJSONFront, rows: []row{{name: kindJSONFront, latencies: flat(100, time.Millisecond), fallback: 50, elapsed: sec}}},
			{name: phDead, rows: []row{{name: kindDead, latencies: flat(100, time.Millisecond), errors: 1, firstErr: errors.New("answer not flagged degraded"), elapsed: sec}}},
		},
	}
	res.times.add(tStartMemoryUp, 30*time.Millisecond)
	res.times.add(tStartOrchUp, 1200*time.Millisecond)
	res.times.add(tReadyDownMemory, 500*time.Millisecond)

	got := map[string]verdict{}
	for _, v := range res.budgets() {
		got[v.what] = v
	}
	tests := []struct{ what, state, measured string }{
		{"Recall p50 (gRPC, concurrency 8)", "met", "2.00 ms"},
		{"Recall throughput (gRPC, concurrency 8)", "met", "1500/s"},
		{"Recall service overhead vs raw SQL (gRPC p50 / SQL p50)", "**NOT met**", "2.00×"},
		{"JSON vs gRPC, same Recall (memory's gateway, p50)", "met", "1.50×"},
		{"JSON vs gRPC, same Recall (orchestrator's front door, p50)", `**invalid**: 50% of "` + kindJSONFront + `" answers not from Postgres`, "0.50×"},
		{"Orchestrate, all nine LABs, beyond its recall (p50)", "", ""}, // absent: named differently when not measured
		{"Recall with Postgres dead, breaker open (p99, all degraded)", "**NOT met**", "1 of 101"},
		{"process start → SERVING, Postgres up", "**NOT met**", "1200 ms"},
		{"readiness change after Postgres dies, returns, or drops packets", "met", "500 ms"},
		{"process start → health answering, Postgres unreachable", notMeasured, ""},
		{"resident memory idle, memory", "met", "30.0 MB"},
		{"resident memory idle, orchestrator", "**NOT met**", "50.0 MB"},
		{"resident memory peak under load, memory", notMeasured, ""},
	}
	for _, tt := range tests {
		v, ok := got[tt.what]
		if tt.state == "" {
			if ok {
				t.Errorf("%q present: %+v", tt.what, v)
			}
			continue
		}
		if !ok {
			t.Errorf("%q missing", tt.what)
			continue
		}
		if v.state != tt.state || !strings.Contains(v.measured, tt.measured) {
			t.Errorf("%q = %q %q, want %q containing %q", tt.what, v.state, v.measured, tt.state, tt.measured)
		}
	}
	if v := got["Orchestrate beyond recall"]; v.state != notMeasured {
		t.Errorf("orchestrate without a phase: %+v", v)
	}

	var b bytes.Buffer
	res.write(&b)
	for _, want := range []string{"### Budgets of docs/design.md", "| gRPC Recall / raw SQL | 2.00× |", "1 errors, first: answer not flagged degraded", "| memory start → SERVING (Postgres up) | 1 |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
