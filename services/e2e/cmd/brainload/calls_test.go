package main

import (
	"testing"
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
