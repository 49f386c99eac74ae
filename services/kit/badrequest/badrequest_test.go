package badrequest

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestText(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		min, max  int
		multiline bool
		wantErr   string
	}{
		{"ok", "hello", 1, 10, false, ""},
		{"required", "", 1, 10, false, "is required"},
		{"optional empty", "", 0, 10, false, ""},
		{"too long", "hello world", 1, 5, false, "at most 5 bytes"},
		{"bad utf8", "a\xffb", 1, 10, false, "UTF-8"},
		{"control", "a\x00b", 1, 10, false, "control"},
		{"newline single-line", "a\nb", 1, 10, false, "control"},
		{"newline multiline", "a\nb", 1, 10, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Violations
			v.Text("f.g", tt.in, tt.min, tt.max, tt.multiline)
			err := v.Err()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "f.g") {
				t.Fatalf("error %v, want one naming f.g and containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestErrCarriesEveryField(t *testing.T) {
	var v Violations
	if v.Err() != nil {
		t.Fatal("empty violations must be nil")
	}
	v.Range("limit", 101, 1, 100)
	v.Range("importance", math.NaN(), 0, 1)
	v.Range("ok", 0.5, 0, 1)
	err := v.Err()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code %v, want InvalidArgument", st.Code())
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		}
	}
	if strings.Join(fields, ",") != "limit,importance" {
		t.Fatalf("details fields %v, want limit,importance", fields)
	}
}
