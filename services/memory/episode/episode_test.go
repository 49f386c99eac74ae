package episode

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestCheckNamespace(t *testing.T) {
	tests := []struct {
		ns           string
		ok, legacyOK bool
	}{
		{"a", true, true},
		{"demo", true, true},
		{"Team-1.prod_eu:agent@42", true, true},
		{"9lives", true, true},
		{strings.Repeat("n", MaxNamespaceBytes), true, true},
		{strings.Repeat("n", MaxNamespaceBytes+1), false, false},
		{"", false, false},
		{"a/b", false, true},
		{"a*", false, true},
		{"*", false, true},
		{"a b", false, true},
		{" a", false, true},
		{".hidden", false, true},
		{"-x", false, true},
		{"_x", false, true},
		{":x", false, true},
		{"@x", false, true},
		{"a%2Fb", false, true},
		{"a\tb", false, true},
		{"a\nb", false, true},
		{"café", false, true},
		{"a\x00b", false, false},
		{"a\xffb", false, false},
	}
	for _, tt := range tests {
		err := CheckNamespace(tt.ns)
		if (err == nil) != tt.ok {
			t.Errorf("CheckNamespace(%q) = %v, want ok=%v", tt.ns, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrNamespace) {
			t.Errorf("CheckNamespace(%q) = %v, does not wrap ErrNamespace", tt.ns, err)
		}
		if err := CheckLegacyNamespace(tt.ns); (err == nil) != tt.legacyOK {
			t.Errorf("CheckLegacyNamespace(%q) = %v, want ok=%v", tt.ns, err, tt.legacyOK)
		}
	}
}

// Every allowed punctuation character is accepted after the first byte.
func TestNamespaceAlphabetPunctuation(t *testing.T) {
	for _, c := range "._-:@" {
		if err := CheckNamespace("a" + string(c) + "b"); err != nil {
			t.Errorf("%q: %v", c, err)
		}
	}
	for c := 0; c < 128; c++ {
		r := rune(c)
		allowed := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:@", r)
		if got := CheckNamespace("a"+string(r)) == nil; got != allowed {
			t.Errorf("byte %#x: accepted=%v, want %v", c, got, allowed)
		}
	}
}

// The alphabet's description states the length bound in force.
func TestNamespaceAlphabetStatesTheBound(t *testing.T) {
	if !strings.HasPrefix(NamespaceAlphabet, "1.."+strconv.Itoa(MaxNamespaceBytes)+" bytes") {
		t.Fatalf("NamespaceAlphabet %q does not state MaxNamespaceBytes %d", NamespaceAlphabet, MaxNamespaceBytes)
	}
}
