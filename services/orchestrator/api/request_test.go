package api

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	orchestratorv1 "github.com/brainhq/brain/gen/brain/orchestrator/v1"
	"github.com/brainhq/brain/services/orchestrator/labs"
)

func TestRequestFromProtoDefaults(t *testing.T) {
	now := time.Date(2025, 5, 5, 5, 5, 5, 0, time.UTC)
	in, budget, err := requestFromProto(&orchestratorv1.OrchestrateRequest{Namespace: "ns", Query: "q"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !in.AsOf.Equal(now) || budget != 0 || in.CurrentEmotion != nil {
		t.Errorf("as_of %s budget %s emotion %v", in.AsOf, budget, in.CurrentEmotion)
	}
	def := labs.DefaultOptions()
	if in.Options.RecallLimit != def.RecallLimit || in.Options.CandidatePool != def.CandidatePool ||
		in.Options.Weights != def.Weights || *in.Options.PreloadMinConfidence != 0.3 {
		t.Errorf("options = %+v", in.Options)
	}
}

func TestRequestFromProtoMapsOptions(t *testing.T) {
	asOf := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	in, budget, err := requestFromProto(&orchestratorv1.OrchestrateRequest{
		Namespace: "ns", Query: "q", SessionId: "s", Goal: "g",
		CurrentEmotion: &orchestratorv1.Emotion{Label: "calm", Valence: 0.1, Arousal: 0.2, Intensity: 0.3},
		Options: &orchestratorv1.OrchestrateOptions{
			RecallLimit: 3, CandidatePool: 9, RecencyHalfLife: durationpb.New(time.Hour),
			Weights: &orchestratorv1.AttentionWeights{Relevance: 1}, AsOf: timestamppb.New(asOf),
			Budget: durationpb.New(time.Second), ContentMaxChars: 32, PreloadK: 2,
			PreloadMinConfidence: proto.Float64(0), // explicit 0, not the default
		},
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o := in.Options
	if o.RecallLimit != 3 || o.CandidatePool != 9 || o.RecencyHalfLife != time.Hour || o.ContentMaxChars != 32 ||
		o.PreloadK != 2 || *o.PreloadMinConfidence != 0 || o.Weights != (labs.AttentionWeights{Relevance: 1}) {
		t.Errorf("options = %+v", o)
	}
	if !in.AsOf.Equal(asOf) || budget != time.Second || in.SessionID != "s" || in.Goal != "g" ||
		*in.CurrentEmotion != (labs.Emotion{Label: "calm", Valence: 0.1, Arousal: 0.2, Intensity: 0.3}) {
		t.Errorf("request = %+v, budget %s", in, budget)
	}
}

// Invalid UTF-8 cannot cross gRPC (proto3 rejects it), but the gateway or
// another transport could hand it over.
func TestRequestFromProtoRejectsInvalidUTF8(t *testing.T) {
	_, _, err := requestFromProto(&orchestratorv1.OrchestrateRequest{Namespace: "ns\xff", Query: "\xfe"}, time.Now())
	if err == nil {
		t.Fatal("accepted invalid UTF-8")
	}
	msg := status.Convert(err).Message()
	for _, f := range []string{"namespace", "query"} {
		if !strings.Contains(msg, f+": must be valid UTF-8") {
			t.Errorf("message %q does not reject %s", msg, f)
		}
	}
}
