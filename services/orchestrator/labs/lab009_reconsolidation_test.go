package labs

import (
	"context"
	"slices"
	"testing"
)

func TestReconsolidation(t *testing.T) {
	real2 := []BufferItem{{EpisodeID: "a"}, {EpisodeID: "b"}}
	synth := []BufferItem{{Content: "the query", Synthetic: true}}
	tests := []struct {
		name         string
		buffer       []BufferItem
		rec          *fakeRecorder
		wantTouched  int
		wantDegraded bool
		wantCalls    int
	}{
		{"real episodes submitted", real2, &fakeRecorder{}, 2, false, 1},
		{"synthetic only: nothing to touch", synth, &fakeRecorder{}, 0, true, 0},
		{"empty buffer: nothing to touch", nil, &fakeRecorder{}, 0, true, 0},
		{"queue full", real2, &fakeRecorder{refuse: true}, 0, true, 0},
		{"no recorder", real2, nil, 0, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var acc AccessRecorder
			if tc.rec != nil {
				acc = tc.rec
			}
			in := Inputs{Request: request("q"), Deps: map[string]Outcome{IDWorkingMemory: ok(WorkingMemory{Items: tc.buffer})}}
			out, err := NewReconsolidation(acc).Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			r := out.Value.(Reconsolidation)
			if r.Touched != tc.wantTouched || len(r.EpisodeIDs) != tc.wantTouched {
				t.Errorf("touched = %d %v, want %d", r.Touched, r.EpisodeIDs, tc.wantTouched)
			}
			if out.Degraded != tc.wantDegraded || (tc.wantDegraded && out.Detail == "") {
				t.Errorf("degraded = %v (%q), want %v", out.Degraded, out.Detail, tc.wantDegraded)
			}
			if tc.rec != nil && len(tc.rec.calls) != tc.wantCalls {
				t.Errorf("submit calls = %d, want %d", len(tc.rec.calls), tc.wantCalls)
			}
			if tc.wantCalls == 1 && !slices.Equal(tc.rec.calls[0], []string{"a", "b"}) {
				t.Errorf("submitted %v", tc.rec.calls[0])
			}
		})
	}
}
