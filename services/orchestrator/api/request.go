package api

import (
	"errors"
	"time"

	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/kit/badrequest"
	"github.com/brainhq/brain/services/orchestrator/labs"
)

// Request limits (see OrchestrateRequest in the proto).
const (
	maxNamespaceBytes = 128
	maxQueryBytes     = 4096
	maxSessionBytes   = 128
	maxGoalBytes      = 1024
	maxLabelBytes     = 64
	minBudget         = 10 * time.Millisecond
	maxBudget         = 30 * time.Second
)

// requestFromProto validates req and returns it as a labs.Request and the budget
// it asked for (0 when unset). The error is an INVALID_ARGUMENT status
// naming every bad field.
func requestFromProto(req *orchestratorv1.OrchestrateRequest, now time.Time) (labs.Request, time.Duration, error) {
	var v badrequest.Violations
	v.Text("namespace", req.GetNamespace(), 1, maxNamespaceBytes, false)
	v.Text("query", req.GetQuery(), 1, maxQueryBytes, true)
	v.Text("session_id", req.GetSessionId(), 0, maxSessionBytes, false)
	v.Text("goal", req.GetGoal(), 0, maxGoalBytes, true)

	out := labs.Request{
		Namespace: req.GetNamespace(),
		Query:     req.GetQuery(),
		SessionID: req.GetSessionId(),
		Goal:      req.GetGoal(),
		AsOf:      now,
	}
	if e := req.GetCurrentEmotion(); e != nil {
		v.Text("current_emotion.label", e.GetLabel(), 0, maxLabelBytes, false)
		v.Range("current_emotion.valence", e.GetValence(), -1, 1)
		v.Range("current_emotion.arousal", e.GetArousal(), 0, 1)
		v.Range("current_emotion.intensity", e.GetIntensity(), 0, 1)
		out.CurrentEmotion = &labs.Emotion{Label: e.GetLabel(), Valence: e.GetValence(),
			Arousal: e.GetArousal(), Intensity: e.GetIntensity()}
	}

	o := req.GetOptions()
	opts := labs.Options{
		RecallLimit:     int(o.GetRecallLimit()),
		CandidatePool:   int(o.GetCandidatePool()),
		ContentMaxChars: int(o.GetContentMaxChars()),
		PreloadK:        int(o.GetPreloadK()),
		Capacity:        int(o.GetWorkingMemoryCapacity()),
		DecayTurns:      int(o.GetDecayTurns()),
	}
	if d := o.GetDecayAfter(); d != nil {
		if err := d.CheckValid(); err != nil {
			v.Add("options.decay_after", "is not a valid duration: %v", err)
		} else {
			opts.DecayAfter = d.AsDuration()
		}
	}
	if w := o.GetWeights(); w != nil {
		opts.Weights = labs.AttentionWeights{Relevance: w.GetRelevance(), Recency: w.GetRecency(),
			Salience: w.GetSalience(), Overlap: w.GetOverlap()}
	}
	if o != nil && o.PreloadMinConfidence != nil {
		c := o.GetPreloadMinConfidence()
		opts.PreloadMinConfidence = &c
	}
	if d := o.GetRecencyHalfLife(); d != nil {
		if err := d.CheckValid(); err != nil {
			v.Add("options.recency_half_life", "is not a valid duration: %v", err)
		} else {
			opts.RecencyHalfLife = d.AsDuration()
		}
	}
	if ts := o.GetAsOf(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			v.Add("options.as_of", "is not a valid timestamp: %v", err)
		} else {
			out.AsOf = ts.AsTime()
		}
	}
	var budget time.Duration
	if d := o.GetBudget(); d != nil {
		if err := d.CheckValid(); err != nil {
			v.Add("options.budget", "is not a valid duration: %v", err)
		} else if budget = d.AsDuration(); budget != 0 && (budget < minBudget || budget > maxBudget) {
			v.Add("options.budget", "must be between %s and %s, got %s", minBudget, maxBudget, budget)
		}
	}
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		var ve labs.ValidationError
		if !errors.As(err, &ve) {
			v.Add("options", "%v", err)
		}
		for _, f := range ve {
			v.Add("options."+f.Field, "%s", f.Reason)
		}
	}
	out.Options = opts
	return out, budget, v.Err()
}
