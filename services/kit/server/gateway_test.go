package server

import (
	"net/url"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
)

func TestStrictQueryParser(t *testing.T) {
	tests := []struct {
		query   string
		wantErr string
	}{
		{"pageSize=10&sessionId=s1&descending=true", ""},
		{"page_size=10&session_id=s1", ""},        // proto names too
		{"createdAfter=2026-01-01T00:00:00Z", ""}, // a message field
		{"createdAfter.seconds=5", ""},            // a nested field
		{"pagesize=10", `unknown query parameter "pagesize"`},
		{"drop=table", `unknown query parameter "drop"`},
		{"createdAfter.nope=1", `unknown query parameter "createdAfter.nope"`},
		{"pageSize.x=1", `unknown query parameter "pageSize.x"`}, // not a message
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			values, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			msg := &memoryv1.ListEpisodesRequest{}
			err = (&strictQueryParser{}).Parse(msg, values, utilities.NewDoubleArray(nil))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse error %v, want %q", err, tt.wantErr)
			}
		})
	}
	msg := &memoryv1.ListEpisodesRequest{}
	if err := (&strictQueryParser{}).Parse(msg, url.Values{"pageSize": {"10"}, "sessionId": {"s"}}, utilities.NewDoubleArray(nil)); err != nil ||
		msg.GetPageSize() != 10 || msg.GetSessionId() != "s" {
		t.Fatalf("known parameters not bound: %v %v", msg, err)
	}
}
