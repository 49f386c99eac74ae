package api

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/fallback"
	"github.com/brainhq/brain/services/memory/recall"
)

func episodeFromProto(p *memoryv1.Episode) episode.Episode {
	ep := episode.Episode{
		ID:         p.GetId(),
		Namespace:  p.GetNamespace(),
		SessionID:  p.GetSessionId(),
		Speaker:    p.GetSpeaker(),
		Content:    p.GetContent(),
		Importance: episode.DefaultImportance,
		Metadata:   p.GetMetadata(),
	}
	if p.Importance != nil {
		ep.Importance = p.GetImportance()
	}
	if p.GetCreatedAt() != nil {
		ep.CreatedAt = p.GetCreatedAt().AsTime()
	}
	if a := p.GetAffect(); a != nil {
		ep.Affect = &episode.Affect{Valence: a.GetValence(), Arousal: a.GetArousal(), Intensity: a.GetIntensity()}
	}
	return ep
}

func episodeToProto(ep episode.Episode) *memoryv1.Episode {
	imp := ep.Importance
	p := &memoryv1.Episode{
		Id:          ep.ID,
		Namespace:   ep.Namespace,
		SessionId:   ep.SessionID,
		Speaker:     ep.Speaker,
		Content:     ep.Content,
		Importance:  &imp,
		CreatedAt:   timestamppb.New(ep.CreatedAt),
		Metadata:    ep.Metadata,
		AccessCount: ep.AccessCount,
	}
	if ep.Affect != nil {
		p.Affect = &memoryv1.Affect{Valence: ep.Affect.Valence, Arousal: ep.Affect.Arousal, Intensity: ep.Affect.Intensity}
	}
	if ep.LastAccessedAt != nil {
		p.LastAccessedAt = timestamppb.New(*ep.LastAccessedAt)
	}
	return p
}

func optTime(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

func sourceToProto(s fallback.Source) memoryv1.RecallSource {
	switch s {
	case fallback.SourcePostgres:
		return memoryv1.RecallSource_RECALL_SOURCE_POSTGRES
	case fallback.SourceCache:
		return memoryv1.RecallSource_RECALL_SOURCE_CACHE
	case fallback.SourceNone:
		return memoryv1.RecallSource_RECALL_SOURCE_NONE
	}
	return memoryv1.RecallSource_RECALL_SOURCE_UNSPECIFIED
}

func scoresToProto(s recall.Scores, c recall.Contribution) *memoryv1.RecallScores {
	return &memoryv1.RecallScores{
		Relevance: s.Relevance, Importance: s.Importance, Recency: s.Recency, Total: s.Total,
		OwnWords: s.OwnWords, Context: s.Context, Speaker: s.Speaker, Time: s.Time,
		Contributions: &memoryv1.RecallContributions{
			OwnWords: c.OwnWords, Context: c.Context, Speaker: c.Speaker, Time: c.Time,
			Importance: c.Importance, Recency: c.Recency,
		},
	}
}
