package corpus

import (
	"reflect"
	"testing"
)

func TestEvalSetShape(t *testing.T) {
	a := GenerateEvalSet(7)
	if !reflect.DeepEqual(a, GenerateEvalSet(7)) {
		t.Fatal("same seed, different eval sets")
	}
	if len(a.Questions) != len(evalFacts) || len(a.Turns) < 2000 {
		t.Fatalf("%d questions, %d turns", len(a.Questions), len(a.Turns))
	}
	turns := map[string]EvalTurn{}
	sessions := map[string]bool{}
	for i, tr := range a.Turns {
		if _, dup := turns[tr.ID]; dup {
			t.Fatalf("turn id %s repeated", tr.ID)
		}
		if i > 0 && !tr.CreatedAt.After(a.Turns[i-1].CreatedAt) {
			t.Fatalf("turn %s not after the previous one", tr.ID)
		}
		turns[tr.ID] = tr
		sessions[tr.Session] = true
	}
	if len(sessions) != EvalSessions || !a.AsOf.After(a.Turns[len(a.Turns)-1].CreatedAt) {
		t.Fatalf("%d sessions, as_of %v", len(sessions), a.AsOf)
	}
	for i, q := range a.Questions {
		if len(q.Evidence) != 1 || turns[q.Evidence[0]].Content != evalFacts[i].evidence || turns[q.Evidence[0]].Role != "user" {
			t.Fatalf("question %s: evidence %v does not point at its fact", q.ID, q.Evidence)
		}
	}
}
