package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/memory/corpus"
	"github.com/brainhq/brain/services/memory/recall"
	"github.com/brainhq/brain/services/memory/store"
)

// Row names; the report and the budget table refer to them.
const (
	kindSQL         = "Recall, raw SQL via pgx (store.RecallStatement)"
	kindGRPC        = "Recall, gRPC MemoryService/Recall"
	kindJSONMemory  = "Recall, JSON POST /v1/memory/episodes:recall (memory HTTP)"
	kindJSONFront   = "Recall, JSON POST /v1/memory/episodes:recall (orchestrator HTTP, proxied)"
	kindOrchestrate = "Orchestrate, gRPC stream (9 LABs + summary)"
	kindWrite       = "WriteEpisodes, gRPC, 1 episode"

	extraFirstLab       = "time to first LAB result"
	extraBeyondRecall   = "full stream beyond recall (total − LAB_011 elapsed)"
	extraFirstLabBeyond = "first LAB result beyond recall (first − LAB_011 elapsed)"
	extraBeyondMemory   = "full stream beyond memory calls (total − LAB_011 − LAB_007 elapsed)"
)

// workload makes the calls of every phase from one corpus.
type workload struct {
	corpus    *corpus.Corpus
	queries   int
	limit     int
	asOf      time.Time
	writeBase int // first corpus index the write calls use (after the loaded corpus)

	pool   *pgxpool.Pool
	memory memoryv1.MemoryServiceClient
	orch   orchestratorv1.OrchestratorServiceClient
	http   *http.Client
}

func (w *workload) query(i int) (namespace, text string) { return w.corpus.Query(i % w.queries) }

func (w *workload) recallRequest(i int) *memoryv1.RecallRequest {
	ns, text := w.query(i)
	return &memoryv1.RecallRequest{Namespace: ns, Query: text, Limit: int32(w.limit), AsOf: timestamppb.New(w.asOf)}
}

// sqlRecall runs the exact statement store.Recall runs, straight through pgx.
func (w *workload) sqlRecall(ctx context.Context, i int) (outcome, error) {
	out := outcome{kind: kindSQL}
	ns, text := w.query(i)
	st, ok := store.RecallStatement(recall.Query{Namespace: ns, Text: text, Limit: w.limit, AsOf: w.asOf})
	if !ok {
		return out, nil // no searchable term: store.Recall answers without SQL too
	}
	rows, err := w.pool.Query(ctx, st.SQL, st.Args...)
	if err != nil {
		return out, fmt.Errorf("sql recall: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
	}
	return out, rows.Err()
}

// checkRecall says whether a healthy-path answer came from PostgreSQL.
func checkRecall(out *outcome, resp *memoryv1.RecallResponse) {
	out.fallback = resp.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_POSTGRES
	out.degraded = resp.GetDegraded() || out.fallback
	if out.degraded {
		out.note = resp.GetSource().String() + ": " + resp.GetDegradedReason()
	}
}

func (w *workload) grpcRecall(ctx context.Context, i int) (outcome, error) {
	out := outcome{kind: kindGRPC}
	resp, err := w.memory.Recall(ctx, w.recallRequest(i))
	if err != nil {
		return out, fmt.Errorf("grpc recall: %w", err)
	}
	checkRecall(&out, resp)
	return out, nil
}

// jsonRecall posts the same request as JSON to baseURL's gateway route and
// decodes the answer, as a JSON client would.
func (w *workload) jsonRecall(kind, baseURL string) callFunc {
	url := strings.TrimSuffix(baseURL, "/") + "/v1/memory/episodes:recall"
	return func(ctx context.Context, i int) (outcome, error) {
		out := outcome{kind: kind}
		body, err := protojson.Marshal(w.recallRequest(i))
		if err != nil {
			return out, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return out, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := w.http.Do(req)
		if err != nil {
			return out, fmt.Errorf("json recall: %w", err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return out, fmt.Errorf("json recall: read: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return out, fmt.Errorf("json recall: HTTP %d: %.200s", resp.StatusCode, b)
		}
		var rr memoryv1.RecallResponse
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &rr); err != nil {
			return out, fmt.Errorf("json recall: decode: %w", err)
		}
		checkRecall(&out, &rr)
		return out, nil
	}
}

// orchestrate runs one Orchestrate stream to its end. Besides the whole
// stream it reports the time to the first LAB result and both figures
// minus LAB_011's own elapsed time (the recall it makes), which is what
// docs/design.md budgets, and the stream minus LAB_011 and LAB_007 (whose
// ListEpisodes call is the other memory round trip on the critical path),
// which is closer to the orchestration's own cost.
func (w *workload) orchestrate(ctx context.Context, i int) (outcome, error) {
	out := outcome{kind: kindOrchestrate}
	ns, text := w.query(i)
	_, goal := w.query(i + 1)
	start := time.Now()
	stream, err := w.orch.Orchestrate(ctx, &orchestratorv1.OrchestrateRequest{
		Namespace: ns, Query: text, Goal: strings.TrimSuffix(goal, "?"),
		Options: &orchestratorv1.OrchestrateOptions{AsOf: timestamppb.New(w.asOf)},
	})
	if err != nil {
		return out, fmt.Errorf("orchestrate: %w", err)
	}
	var first, lab011, lab007 time.Duration
	labs, summaries := 0, 0
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("orchestrate: after %d LABs: %w", labs, err)
		}
		if labs+summaries == 0 {
			first = time.Since(start)
		}
		switch ev := msg.GetEvent().(type) {
		case *orchestratorv1.OrchestrateResponse_Lab:
			labs++
			switch ev.Lab.GetLabId() {
			case "LAB_011": // the recall
				lab011 = ev.Lab.GetElapsed().AsDuration()
			case "LAB_007": // ListEpisodes, on the critical path after LAB_010
				lab007 = ev.Lab.GetElapsed().AsDuration()
			}
			if wm := ev.Lab.GetWorkingMemory(); wm != nil && wm.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_POSTGRES {
				out.fallback = true
			}
			if s := ev.Lab.GetStatus(); s != orchestratorv1.LabStatus_LAB_STATUS_OK && !out.degraded {
				out.degraded = true
				out.note = ev.Lab.GetLabId() + " " + s.String() + ": " + ev.Lab.GetDetail()
			}
		case *orchestratorv1.OrchestrateResponse_Summary:
			summaries++
			if d := ev.Summary.GetDegradedLabs(); len(d) > 0 && !out.degraded {
				out.degraded = true
				out.note = "summary: degraded " + strings.Join(d, ", ")
			}
		}
	}
	total := time.Since(start)
	if labs != 9 || summaries != 1 {
		return out, fmt.Errorf("orchestrate: %d LAB results and %d summaries, want 9 and 1", labs, summaries)
	}
	out.extra = []sample{
		{extraFirstLab, first},
		{extraBeyondRecall, max(total-lab011, 0)},
		{extraFirstLabBeyond, max(first-lab011, 0)},
		{extraBeyondMemory, max(total-lab011-lab007, 0)},
	}
	return out, nil
}

// write upserts one corpus episode past the loaded corpus; the ids are the
// corpus' own, so repeated runs rewrite the same rows instead of growing
// the table.
func (w *workload) write(ctx context.Context, i int) (outcome, error) {
	out := outcome{kind: kindWrite}
	e := w.corpus.Episode(w.writeBase + i)
	_, err := w.memory.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{
		Id: e.ID, Namespace: e.Namespace, SessionId: e.SessionID, Content: e.Content,
		Importance: proto.Float64(e.Importance), CreatedAt: timestamppb.New(e.CreatedAt),
		Metadata: map[string]string{"source": "brainload"},
	}}})
	if err != nil {
		return out, fmt.Errorf("write: %w", err)
	}
	return out, nil
}

// share is one kind of call of a mixed phase with its weight.
type share struct {
	kind   string
	weight int
}

// parseMix reads "recall=70,orchestrate=20,write=10".
func parseMix(s string) ([]share, error) {
	var mix []share
	seen := map[string]bool{}
	total := 0
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("--mix %q: %q is not kind=weight", s, part)
		}
		k = strings.TrimSpace(k)
		switch k {
		case "recall", "orchestrate", "write":
		default:
			return nil, fmt.Errorf("--mix %q: unknown kind %q (recall, orchestrate, write)", s, k)
		}
		if seen[k] {
			return nil, fmt.Errorf("--mix %q: %s given twice", s, k)
		}
		seen[k] = true
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--mix %q: weight of %s must be a whole number ≥ 0", s, k)
		}
		total += n
		if n > 0 {
			mix = append(mix, share{k, n})
		}
	}
	if total == 0 {
		return nil, fmt.Errorf("--mix %q: weights sum to 0", s)
	}
	return mix, nil
}

// pick chooses the kind of call i, the same for the same seed and i.
func pick(mix []share, seed uint64, i int) string {
	total := 0
	for _, s := range mix {
		total += s.weight
	}
	x := rand.New(rand.NewPCG(seed, uint64(i))).IntN(total)
	for _, s := range mix {
		if x < s.weight {
			return s.kind
		}
		x -= s.weight
	}
	return mix[len(mix)-1].kind
}

func (w *workload) mixed(mix []share, seed uint64) callFunc {
	return func(ctx context.Context, i int) (outcome, error) {
		switch pick(mix, seed, i) {
		case "orchestrate":
			return w.orchestrate(ctx, i)
		case "write":
			return w.write(ctx, i)
		default:
			return w.grpcRecall(ctx, i)
		}
	}
}
