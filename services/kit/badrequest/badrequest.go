// Package badrequest collects field violations of a request and turns them
// into one INVALID_ARGUMENT status that names every offending field (with
// google.rpc.BadRequest details), which the gateway maps to HTTP 400.
package badrequest

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Violations accumulates field errors. The zero value is ready to use.
type Violations struct {
	list []*errdetails.BadRequest_FieldViolation
}

// Add records that field is invalid for the reason given.
func (v *Violations) Add(field, format string, args ...any) {
	v.list = append(v.list, &errdetails.BadRequest_FieldViolation{
		Field:       field,
		Description: fmt.Sprintf(format, args...),
	})
}

// Len reports how many violations were recorded.
func (v *Violations) Len() int { return len(v.list) }

// Fields returns the names of the invalid fields, in the order recorded.
func (v *Violations) Fields() []string {
	out := make([]string, len(v.list))
	for i, fv := range v.list {
		out[i] = fv.GetField()
	}
	return out
}

// Err returns nil when nothing was recorded, else an INVALID_ARGUMENT status
// whose message names each field and whose details carry them one by one.
func (v *Violations) Err() error {
	if len(v.list) == 0 {
		return nil
	}
	parts := make([]string, len(v.list))
	for i, fv := range v.list {
		parts[i] = fv.GetField() + ": " + fv.GetDescription()
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+strings.Join(parts, "; "))
	if withDetails, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: v.list}); err == nil {
		st = withDetails
	}
	return st.Err()
}

// Text checks a text field: valid UTF-8, no control characters other than
// tab and newlines (when multiline), and a byte length within [min, max].
// min = 0 makes the field optional.
func (v *Violations) Text(field, s string, min, max int, multiline bool) {
	switch {
	case len(s) < min && min == 1:
		v.Add(field, "is required")
		return
	case len(s) < min:
		v.Add(field, "must be at least %d bytes", min)
		return
	case len(s) > max:
		v.Add(field, "must be at most %d bytes, got %d", max, len(s))
		return
	case !utf8.ValidString(s):
		v.Add(field, "must be valid UTF-8")
		return
	}
	for _, r := range s {
		if r == '\t' || (multiline && (r == '\n' || r == '\r')) {
			continue
		}
		if unicode.IsControl(r) {
			v.Add(field, "must not contain control characters")
			return
		}
	}
}

// Range checks that a number lies in [lo, hi].
func (v *Violations) Range(field string, x, lo, hi float64) {
	if x != x || x < lo || x > hi { // x != x catches NaN
		v.Add(field, "must be between %g and %g, got %g", lo, hi, x)
	}
}
