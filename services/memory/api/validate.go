package api

import (
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/badrequest"
	"github.com/brainhq/brain/services/memory/episode"
)

// Bounds on client-supplied times: far enough for imported history, near
// enough that arithmetic on them cannot overflow.
var (
	minTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	minHalfLife = time.Second
	maxHalfLife = 10 * 365 * 24 * time.Hour
)

func checkNamespace(v *badrequest.Violations, field, ns string) {
	v.Text(field, ns, 1, episode.MaxNamespaceBytes, false)
}

func checkID(v *badrequest.Violations, field, id string, required bool) {
	if id == "" {
		if required {
			v.Add(field, "is required")
		}
		return
	}
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		v.Add(field, "must be a UUID like 123e4567-e89b-12d3-a456-426614174000")
	}
}

func checkTime(v *badrequest.Violations, field string, ts *timestamppb.Timestamp) {
	if ts == nil {
		return
	}
	if err := ts.CheckValid(); err != nil {
		v.Add(field, "is not a valid timestamp")
		return
	}
	if t := ts.AsTime(); t.Before(minTime) || t.After(maxTime) {
		v.Add(field, "must be between 1900 and 2200")
	}
}

func checkFraction(v *badrequest.Violations, field string, x float64) {
	v.Range(field, x, 0, 1)
}

func checkEpisode(v *badrequest.Violations, prefix string, ep *memoryv1.Episode) {
	if ep == nil {
		v.Add(prefix, "is required")
		return
	}
	checkID(v, prefix+".id", ep.GetId(), false)
	checkNamespace(v, prefix+".namespace", ep.GetNamespace())
	v.Text(prefix+".session_id", ep.GetSessionId(), 0, episode.MaxSessionBytes, false)
	v.Text(prefix+".content", ep.GetContent(), 1, episode.MaxContentBytes, true)
	if ep.Importance != nil {
		checkFraction(v, prefix+".importance", ep.GetImportance())
	}
	checkTime(v, prefix+".created_at", ep.GetCreatedAt())
	if n := len(ep.GetMetadata()); n > episode.MaxMetadataEntries {
		v.Add(prefix+".metadata", "must have at most %d entries, got %d", episode.MaxMetadataEntries, n)
	}
	for k, val := range ep.GetMetadata() {
		v.Text(prefix+".metadata.key", k, 1, episode.MaxMetadataKeyBytes, false)
		v.Text(prefix+".metadata["+truncate(k)+"]", val, 0, episode.MaxMetadataValueBytes, true)
	}
	if a := ep.GetAffect(); a != nil {
		v.Range(prefix+".affect.valence", a.GetValence(), -1, 1)
		checkFraction(v, prefix+".affect.arousal", a.GetArousal())
		checkFraction(v, prefix+".affect.intensity", a.GetIntensity())
	}
}

// truncate keeps field paths in errors short and printable.
func truncate(s string) string {
	const n = 32
	if len(s) > n {
		s = s[:n]
	}
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			r = '?'
		}
		out = append(out, r)
	}
	return string(out)
}

func checkDuration(v *badrequest.Violations, field string, d *durationpb.Duration, lo, hi time.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		v.Add(field, "is not a valid duration")
		return
	}
	if x := d.AsDuration(); x < lo || x > hi {
		v.Add(field, "must be between %s and %s", lo, hi)
	}
}

func checkWeights(v *badrequest.Violations, w *memoryv1.RecallWeights) {
	if w == nil {
		return
	}
	checkFraction(v, "weights.relevance", w.GetRelevance())
	checkFraction(v, "weights.importance", w.GetImportance())
	checkFraction(v, "weights.recency", w.GetRecency())
}
