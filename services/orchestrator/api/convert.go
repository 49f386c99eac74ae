package api

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/orchestrator/graph"
	"github.com/brainhq/brain/services/orchestrator/labs"
	"github.com/brainhq/brain/services/orchestrator/memoryclient"
)

func labStatus(s labs.Status) orchestratorv1.LabStatus {
	switch s {
	case labs.StatusOK:
		return orchestratorv1.LabStatus_LAB_STATUS_OK
	case labs.StatusDegraded:
		return orchestratorv1.LabStatus_LAB_STATUS_DEGRADED
	case labs.StatusFailed:
		return orchestratorv1.LabStatus_LAB_STATUS_FAILED
	case labs.StatusSkipped:
		return orchestratorv1.LabStatus_LAB_STATUS_SKIPPED
	}
	return orchestratorv1.LabStatus_LAB_STATUS_UNSPECIFIED
}

func recallSource(s labs.Source) memoryv1.RecallSource {
	switch s {
	case labs.SourcePostgres:
		return memoryv1.RecallSource_RECALL_SOURCE_POSTGRES
	case labs.SourceCache:
		return memoryv1.RecallSource_RECALL_SOURCE_CACHE
	case labs.SourceNone:
		return memoryv1.RecallSource_RECALL_SOURCE_NONE
	}
	return memoryv1.RecallSource_RECALL_SOURCE_UNSPECIFIED
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func labResult(r graph.Result) *orchestratorv1.LabResult {
	out := &orchestratorv1.LabResult{
		LabId:         r.LabID,
		Name:          r.Name,
		DependsOn:     r.DependsOn,
		Status:        labStatus(r.Status),
		StartedOffset: durationpb.New(r.StartedOffset),
		Elapsed:       durationpb.New(r.Elapsed),
		Detail:        r.Detail,
		UsedSignals:   r.UsedSignals,
	}
	switch v := r.Value.(type) {
	case labs.WorkingMemory:
		out.Output = &orchestratorv1.LabResult_WorkingMemory{WorkingMemory: &orchestratorv1.WorkingMemoryOutput{
			Items:                bufferItems(v.Items),
			Source:               recallSource(v.Source),
			Degraded:             v.Degraded,
			DegradedReason:       v.DegradedReason,
			Candidates:           int32(v.Candidates),
			SuppressedDuplicates: int32(v.SuppressedDuplicates),
		}}
		if v.Session != nil {
			o := out.GetWorkingMemory()
			o.SessionVersion = v.Session.Version
			o.Evictions = evictions(v.Session.Evictions)
		}
	case labs.Salience:
		s := &orchestratorv1.SalienceOutput{Query: itemSalience(v.Query)}
		for _, it := range v.Items {
			s.Items = append(s.Items, itemSalience(it))
		}
		out.Output = &orchestratorv1.LabResult_Salience{Salience: s}
	case labs.Attention:
		a := &orchestratorv1.AttentionOutput{}
		for _, it := range v.Items {
			a.Items = append(a.Items, &orchestratorv1.AttentionItem{
				EpisodeId: it.Item.EpisodeID, Relevance: it.Relevance, Recency: it.Recency,
				Salience: it.Salience, Overlap: it.Overlap, Score: it.Score, Attention: it.Attention,
			})
		}
		out.Output = &orchestratorv1.LabResult_Attention{Attention: a}
	case labs.Reconsolidation:
		out.Output = &orchestratorv1.LabResult_Reconsolidation{Reconsolidation: &orchestratorv1.ReconsolidationOutput{
			Touched: int32(v.Touched), EpisodeIds: v.EpisodeIDs,
		}}
	case labs.Preload:
		p := &orchestratorv1.PreloadOutput{}
		for _, pr := range v.Predictions {
			p.Predictions = append(p.Predictions, &orchestratorv1.Prediction{
				EpisodeId: pr.EpisodeID, Content: pr.Content, FollowsEpisodeId: pr.FollowsEpisodeID,
				SessionId: pr.SessionID, Gap: durationpb.New(pr.Gap), Confidence: pr.Confidence,
			})
		}
		out.Output = &orchestratorv1.LabResult_Preload{Preload: p}
	case labs.Contagion:
		out.Output = &orchestratorv1.LabResult_Contagion{Contagion: &orchestratorv1.ContagionOutput{
			State: emotion(v.State), Buffer: emotion(v.Buffer), Caller: emotion(v.Caller), CallerWeight: v.CallerWeight,
		}}
	case labs.Regulation:
		out.Output = &orchestratorv1.LabResult_Regulation{Regulation: &orchestratorv1.RegulationOutput{
			Strategy: v.Strategy, Rule: v.Rule, Regulated: emotion(v.Regulated),
		}}
	case labs.FutureThinking:
		out.Output = &orchestratorv1.LabResult_Future{Future: &orchestratorv1.FutureThinkingOutput{
			Goal: v.Goal, SuccessProbability: v.SuccessProbability, Successes: int32(v.Successes),
			Failures: int32(v.Failures), EvidenceIds: v.EvidenceIDs, Horizon: durationpb.New(v.Horizon),
		}}
	case labs.Metacognition:
		out.Output = &orchestratorv1.LabResult_Metacognition{Metacognition: &orchestratorv1.MetacognitionOutput{
			Confidence: v.Confidence, RetrievalMargin: v.RetrievalMargin, KeywordCoverage: v.KeywordCoverage,
			DegradedLabs: v.DegradedLabs, Reasoning: v.Reasoning,
		}}
	}
	return out
}

func bufferItems(items []labs.BufferItem) []*orchestratorv1.BufferItem {
	out := make([]*orchestratorv1.BufferItem, len(items))
	for i, it := range items {
		b := &orchestratorv1.BufferItem{
			EpisodeId:  it.EpisodeID,
			Content:    it.Content,
			SessionId:  it.SessionID,
			Speaker:    it.Speaker,
			CreatedAt:  timestamp(it.CreatedAt),
			Synthetic:  it.Synthetic,
			Metadata:   it.Metadata,
			Importance: it.Importance,
			Origin:     memoryv1.Origin(it.Origin),
		}
		if !it.Synthetic { // the query has no recall scores
			b.Scores = scoresToProto(it.Scores)
		}
		if a := it.Affect; a != nil {
			b.Affect = &memoryv1.Affect{Valence: a.Valence, Arousal: a.Arousal, Intensity: a.Intensity}
		}
		out[i] = b
	}
	return out
}

func itemSalience(s labs.ItemSalience) *orchestratorv1.ItemSalience {
	return &orchestratorv1.ItemSalience{EpisodeId: s.EpisodeID, Valence: s.Valence, Arousal: s.Arousal,
		Intensity: s.Intensity, Salience: s.Salience, Basis: s.Basis}
}

func emotion(e labs.Emotion) *orchestratorv1.Emotion {
	return &orchestratorv1.Emotion{Label: e.Label, Valence: e.Valence, Arousal: e.Arousal, Intensity: e.Intensity}
}

// summary is the stream's last message: the working memory in attention
// order (LAB_010's when it ran, LAB_011's otherwise), every LAB's timing in
// completion order, and LAB_006's confidence.
func summary(s graph.Summary, asOf time.Time) *orchestratorv1.Summary {
	out := &orchestratorv1.Summary{
		DegradedLabs: s.Degraded,
		Elapsed:      durationpb.New(s.Elapsed),
		AsOf:         timestamppb.New(asOf),
	}
	if att, ok := value[labs.Attention](s, labs.IDAttention); ok {
		items := make([]labs.BufferItem, len(att.Items))
		for i, it := range att.Items {
			items[i] = it.Item
		}
		out.WorkingMemory = bufferItems(items)
	} else if wm, ok := value[labs.WorkingMemory](s, labs.IDWorkingMemory); ok {
		out.WorkingMemory = bufferItems(wm.Items)
	}
	if m, ok := value[labs.Metacognition](s, labs.IDMetacognition); ok {
		out.Confidence = m.Confidence
	}
	for _, r := range s.Results {
		t := &orchestratorv1.LabTiming{
			LabId:         r.LabID,
			Status:        labStatus(r.Status),
			StartedOffset: durationpb.New(r.StartedOffset),
			Elapsed:       durationpb.New(r.Elapsed),
		}
		if r.Status != labs.StatusOK {
			t.Reason = r.Detail
		}
		out.Labs = append(out.Labs, t)
	}
	return out
}

// value returns LAB id's value when it produced one of type T.
func value[T labs.Value](s graph.Summary, id string) (T, bool) {
	r, _ := s.Result(id)
	v, ok := r.Value.(T)
	return v, ok
}

// scoresToProto passes memory's explanation of a recall score on.
func scoresToProto(s labs.Scores) *memoryv1.RecallScores {
	c := s.Contributions
	return &memoryv1.RecallScores{
		Relevance: s.Relevance, Importance: s.Importance, Recency: s.Recency, Total: s.Total,
		OwnWords: s.OwnWords, Context: s.Context, Speaker: s.Speaker, Time: s.Time,
		Contributions: &memoryv1.RecallContributions{
			OwnWords: c.OwnWords, Context: c.Context, Speaker: c.Speaker, Time: c.Time,
			Importance: c.Importance, Recency: c.Recency,
		},
	}
}

func evictions(ev []labs.Eviction) []*orchestratorv1.Eviction {
	out := make([]*orchestratorv1.Eviction, len(ev))
	for i, e := range ev {
		out[i] = &orchestratorv1.Eviction{EpisodeId: e.Item.EpisodeID, Content: e.Item.Content,
			Origin: memoryv1.Origin(e.Item.Origin), Reason: evictionReason(e.Reason), Detail: e.Detail}
	}
	return out
}

func evictionReason(r labs.EvictionReason) orchestratorv1.EvictionReason {
	switch r {
	case labs.EvictedDecayTurns:
		return orchestratorv1.EvictionReason_EVICTION_REASON_DECAY_TURNS
	case labs.EvictedDecayTime:
		return orchestratorv1.EvictionReason_EVICTION_REASON_DECAY_TIME
	case labs.EvictedCapacity:
		return orchestratorv1.EvictionReason_EVICTION_REASON_CAPACITY
	case labs.EvictedPredictionUnused:
		return orchestratorv1.EvictionReason_EVICTION_REASON_PREDICTION_UNUSED
	}
	return orchestratorv1.EvictionReason_EVICTION_REASON_UNSPECIFIED
}

func sessionToProto(o labs.SessionOutcome) *orchestratorv1.SessionMemory {
	return &orchestratorv1.SessionMemory{
		SessionId: o.SessionID, Items: memoryclient.SessionItemsToProto(o.Items), Evictions: evictions(o.Evictions),
		Version: o.Version, Saved: o.Saved, DegradedReason: o.Reason, Attempts: int32(o.Attempts),
	}
}
