package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/memory/corpus"
)

func TestParseMix(t *testing.T) {
	tests := []struct {
		in      string
		want    []share
		wantErr bool
	}{
		{in: "recall=70,orchestrate=20,write=10", want: []share{{"recall", 70}, {"orchestrate", 20}, {"write", 10}}},
		{in: " recall = 1 , write=0", want: []share{{"recall", 1}}},
		{in: "recall=0", wantErr: true},
		{in: "recall=70,recall=10", wantErr: true},
		{in: "read=1", wantErr: true},
		{in: "recall", wantErr: true},
		{in: "recall=-1,write=2", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseMix(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestPickFollowsTheWeightsAndTheSeed(t *testing.T) {
	mix := []share{{"recall", 70}, {"orchestrate", 20}, {"write", 10}}
	counts := map[string]int{}
	const n = 20000
	for i := range n {
		k := pick(mix, 1, i)
		if k != pick(mix, 1, i) {
			t.Fatalf("call %d: pick is not deterministic", i)
		}
		counts[k]++
	}
	for _, s := range mix {
		got := float64(counts[s.kind]) / n * 100
		if got < float64(s.weight)-2 || got > float64(s.weight)+2 {
			t.Fatalf("%s: %.1f%% of calls, want about %d%%", s.kind, got, s.weight)
		}
	}
	same := 0
	for i := range 1000 {
		if pick(mix, 1, i) == pick(mix, 2, i) {
			same++
		}
	}
	if same == 1000 {
		t.Fatal("another seed gives the same sequence")
	}
}

// fakeOrchestrator streams a fixed run: LAB_011 took 5 ms, LAB_007 2 ms.
type fakeOrchestrator struct {
	orchestratorv1.UnimplementedOrchestratorServiceServer
	labs   int
	source memoryv1.RecallSource
}

func (f *fakeOrchestrator) Orchestrate(_ *orchestratorv1.OrchestrateRequest, stream grpc.ServerStreamingServer[orchestratorv1.OrchestrateResponse]) error {
	ids := []string{"LAB_011", "LAB_001", "LAB_010", "LAB_009", "LAB_007", "LAB_008", "LAB_028", "LAB_012", "LAB_006"}
	for i, id := range ids[:f.labs] {
		lab := &orchestratorv1.LabResult{LabId: id, Status: orchestratorv1.LabStatus_LAB_STATUS_OK}
		switch id {
		case "LAB_011":
			time.Sleep(5 * time.Millisecond)
			lab.Elapsed = durationpb.New(5 * time.Millisecond)
			lab.Output = &orchestratorv1.LabResult_WorkingMemory{WorkingMemory: &orchestratorv1.WorkingMemoryOutput{Source: f.source}}
		case "LAB_007":
			lab.Elapsed = durationpb.New(2 * time.Millisecond)
		}
		if i == 3 {
			lab.Status, lab.Detail = orchestratorv1.LabStatus_LAB_STATUS_DEGRADED, "nothing to touch"
		}
		if err := stream.Send(&orchestratorv1.OrchestrateResponse{Event: &orchestratorv1.OrchestrateResponse_Lab{Lab: lab}}); err != nil {
			return err
		}
	}
	return stream.Send(&orchestratorv1.OrchestrateResponse{Event: &orchestratorv1.OrchestrateResponse_Summary{Summary: &orchestratorv1.Summary{}}})
}

func serveFake(t *testing.T, f *fakeOrchestrator) orchestratorv1.OrchestratorServiceClient {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	orchestratorv1.RegisterOrchestratorServiceServer(srv, f)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return orchestratorv1.NewOrchestratorServiceClient(conn)
}

func testWorkload(t *testing.T) *workload {
	t.Helper()
	c, err := corpus.New(corpus.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &workload{corpus: c, queries: 10, limit: 7, asOf: c.Config().Epoch}
}

func TestOrchestrateTimings(t *testing.T) {
	tests := []struct {
		name         string
		fake         fakeOrchestrator
		wantErr      bool
		wantFallback bool
	}{
		{name: "whole run", fake: fakeOrchestrator{labs: 9, source: memoryv1.RecallSource_RECALL_SOURCE_POSTGRES}},
		{name: "recall from the cache", fake: fakeOrchestrator{labs: 9, source: memoryv1.RecallSource_RECALL_SOURCE_CACHE}, wantFallback: true},
		{name: "a LAB missing", fake: fakeOrchestrator{labs: 8, source: memoryv1.RecallSource_RECALL_SOURCE_POSTGRES}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := testWorkload(t)
			w.orch = serveFake(t, &tt.fake)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			out, err := w.orchestrate(ctx, 3)
			total := time.Since(start)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !out.degraded || !strings.Contains(out.note, "LAB_009") || out.fallback != tt.wantFallback {
				t.Fatalf("outcome %+v", out)
			}
			got := map[string]time.Duration{}
			for _, s := range out.extra {
				got[s.name] = s.d
			}
			first, beyond, firstBeyond, beyondMem := got[extraFirstLab], got[extraBeyondRecall], got[extraFirstLabBeyond], got[extraBeyondMemory]
			switch {
			case len(got) != 4:
				t.Fatalf("extras %v", got)
			case first < 5*time.Millisecond || first > total:
				t.Fatalf("first LAB %s, whole call %s", first, total)
			case firstBeyond != first-5*time.Millisecond: // LAB_011 reported 5 ms
				t.Fatalf("first beyond recall %s, first %s", firstBeyond, first)
			case beyond > total-5*time.Millisecond:
				t.Fatalf("beyond recall %s, whole call %s", beyond, total)
			case beyondMem != max(beyond-2*time.Millisecond, 0): // LAB_007 reported 2 ms
				t.Fatalf("beyond memory %s, beyond recall %s", beyondMem, beyond)
			}
		})
	}
}

func TestJSONRecall(t *testing.T) {
	var gotBody string
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		switch {
		case down.Load():
			http.Error(w, "down", http.StatusServiceUnavailable)
		case r.Method != http.MethodPost || r.URL.Path != "/v1/memory/episodes:recall":
			http.Error(w, "wrong route", http.StatusNotFound)
		default:
			_, _ = io.WriteString(w, `{"episodes":[],"source":"RECALL_SOURCE_CACHE","degraded":true,"degradedReason":"postgres unavailable","unknownField":1}`)
		}
	}))
	defer srv.Close()
	w := testWorkload(t)
	w.http = srv.Client()
	call := w.jsonRecall("json", srv.URL+"/")
	out, err := call(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !out.degraded || !out.fallback || !strings.Contains(out.note, "postgres unavailable") || out.kind != "json" {
		t.Fatalf("outcome %+v", out)
	}
	if !strings.Contains(gotBody, `"asOf":"2025-06-01T00:00:00Z"`) || !strings.Contains(gotBody, `"limit":7`) {
		t.Fatalf("request body %s", gotBody)
	}
	down.Store(true)
	if _, err := call(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("err %v, want HTTP 503", err)
	}
}
