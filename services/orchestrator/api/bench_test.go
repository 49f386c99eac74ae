package api

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/orchestrator/graph"
	"github.com/brainhq/brain/services/orchestrator/labs"
	"github.com/brainhq/brain/services/orchestrator/memoryclient/access"
)

// nopSink accepts every access at once.
type nopSink struct{}

func (nopSink) RecordAccess(_ context.Context, _ string, ids []string, _ time.Time) (int, error) {
	return len(ids), nil
}

// benchDeps is a memory that answers a fixed 50-candidate recall instantly
// and the real access recorder draining into nothing, so what is measured is
// the orchestration beyond the recall.
func benchDeps(b *testing.B) Deps {
	rec, err := access.New(nopSink{}, access.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return Deps{Memory: newFixedMemory(50), Access: rec}
}

func reportLatencies(b *testing.B, first, total []time.Duration) {
	pct := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[int(p*float64(len(d)-1))].Microseconds())
	}
	b.ReportMetric(pct(first, 0.5), "first-p50-µs")
	b.ReportMetric(pct(total, 0.5), "total-p50-µs")
	b.ReportMetric(pct(total, 0.99), "total-p99-µs")
}

// BenchmarkOrchestrate measures a whole Orchestrate call over in-process
// gRPC (bufconn): time to the first LAB result and to the end of the stream.
func BenchmarkOrchestrate(b *testing.B) {
	benchOrchestrate(b, serve(b, benchDeps(b)), baseRequest())
}

// BenchmarkOrchestrateSession is BenchmarkOrchestrate with a session's
// working memory kept in an instant in-process store: the cost the session
// adds beyond memory's round trips (loading, merging, settling, writing
// back, reporting). Every call is a new turn of the same session.
func BenchmarkOrchestrateSession(b *testing.B) {
	deps := benchDeps(b)
	deps.Memory = &sessionMemory{fixedMemory: newFixedMemory(50)}
	benchOrchestrate(b, serve(b, deps), baseRequest())
}

func benchOrchestrate(b *testing.B, c orchestratorv1.OrchestratorServiceClient, req *orchestratorv1.OrchestrateRequest) {
	ctx := context.Background()
	first := make([]time.Duration, 0, b.N)
	total := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		stream, err := c.Orchestrate(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				first = append(first, time.Since(start))
			}
			n++
		}
		total = append(total, time.Since(start))
		if n != 10 {
			b.Fatalf("%d messages, want 9 results and a summary", n)
		}
	}
	b.StopTimer()
	reportLatencies(b, first, total)
}

// BenchmarkRunGraph measures the scheduler and the nine LABs alone, without
// gRPC: the orchestration cost proper.
func BenchmarkRunGraph(b *testing.B) {
	deps := benchDeps(b)
	sched, err := graph.New(labs.Catalog(deps.Memory, deps.Access))
	if err != nil {
		b.Fatal(err)
	}
	in, _, err := requestFromProto(baseRequest(), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	first := make([]time.Duration, 0, b.N)
	total := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		n := 0
		err := sched.Run(ctx, in, time.Second, func(e graph.Event) error {
			if n == 0 {
				first = append(first, time.Since(start))
			}
			n++
			if e.Result != nil && e.Result.Status != labs.StatusOK {
				return errors.New(e.Result.LabID + " " + e.Result.Status.String() + ": " + e.Result.Detail)
			}
			return nil
		})
		total = append(total, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportLatencies(b, first, total)
}
