package api

import (
	"strings"
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

// checkNamespace requires episode.NamespaceAlphabet: every write and read.
func checkNamespace(v *badrequest.Violations, field, ns string) {
	if err := episode.CheckNamespace(ns); err != nil {
		v.Add(field, "%s", strings.TrimPrefix(err.Error(), episode.ErrNamespace.Error()+": "))
	}
}

// checkLegacyNamespace is for the delete calls only: they also take names
// stored before the alphabet was enforced, so those can still be erased.
func checkLegacyNamespace(v *badrequest.Violations, field, ns string) {
	if err := episode.CheckLegacyNamespace(ns); err != nil {
		v.Add(field, "%s", strings.TrimPrefix(err.Error(), episode.ErrNamespace.Error()+": "))
	}
}

// checkRequiredText is Text for a required field that must also say
// something: text of only white space counts as missing.
func checkRequiredText(v *badrequest.Violations, field, s string, max int, multiline bool) {
	n := v.Len()
	v.Text(field, s, 1, max, multiline)
	if v.Len() == n && strings.TrimSpace(s) == "" {
		v.Add(field, "must not be only white space")
	}
}

// idKey is the canonical form of a valid id, so that spellings of one UUID
// that differ only in case are one id; "" when id is not a UUID.
func idKey(id string) string {
	u, err := uuid.Parse(id)
	if err != nil {
		return ""
	}
	return u.String()
}

func checkID(v *badrequest.Violations, field, id string, required bool) {
	if id == "" {
		if required {
			v.Add(field, "is required")
		}
		return
	}
	// Only the 36-character hyphenated form (either case); uuid.Parse also
	// takes braces, urn:uuid: and bare hex, which every call refuses alike.
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
	v.Text(prefix+".speaker", ep.GetSpeaker(), 0, episode.MaxSpeakerBytes, false)
	checkRequiredText(v, prefix+".content", ep.GetContent(), episode.MaxContentBytes, true)
	if ep.Importance != nil {
		checkFraction(v, prefix+".importance", ep.GetImportance())
	}
	checkTime(v, prefix+".created_at", ep.GetCreatedAt())
	checkMetadata(v, prefix+".metadata", ep.GetMetadata())
	if a := ep.GetAffect(); a != nil {
		v.Range(prefix+".affect.valence", a.GetValence(), -1, 1)
		checkFraction(v, prefix+".affect.arousal", a.GetArousal())
		checkFraction(v, prefix+".affect.intensity", a.GetIntensity())
	}
}

// checkMetadata checks a metadata map (an episode's, or a filter, which has
// the same limits) against episode's limits.
func checkMetadata(v *badrequest.Violations, field string, m map[string]string) {
	if n := len(m); n > episode.MaxMetadataEntries {
		v.Add(field, "must have at most %d entries, got %d", episode.MaxMetadataEntries, n)
	}
	for k, val := range m {
		v.Text(field+".key", k, 1, episode.MaxMetadataKeyBytes, false)
		v.Text(field+"["+truncate(k)+"]", val, 0, episode.MaxMetadataValueBytes, true)
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
