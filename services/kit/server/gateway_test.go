package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

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
	// A map field (the metadata filter) binds as metadata[key]=value.
	msg = &memoryv1.ListEpisodesRequest{}
	if err := (&strictQueryParser{}).Parse(msg, url.Values{"metadata[user]": {"ann"}, "metadata[channel]": {"web"}}, utilities.NewDoubleArray(nil)); err != nil ||
		msg.GetMetadata()["user"] != "ann" || msg.GetMetadata()["channel"] != "web" {
		t.Fatalf("metadata filter not bound: %v %v", msg, err)
	}
}

// gatewayStack is a server whose gateway serves memory's routes over a stub
// that counts the calls reaching it.
func gatewayStack(t *testing.T) (base string, stub *memoryStub) {
	t.Helper()
	stub = &memoryStub{}
	r := start(t, Config{Name: "test"}, func(s *Server) {
		memoryv1.RegisterMemoryServiceServer(s.GRPC(), stub)
		s.RegisterGateway(func(ctx context.Context, mux *runtime.ServeMux, self *grpc.ClientConn) error {
			return memoryv1.RegisterMemoryServiceHandler(ctx, mux, self)
		})
	})
	return "http://" + r.srv.HTTPAddr(), stub
}

func httpCall(t *testing.T, method, url, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v: %q", method, url, err, b)
	}
	return resp, m
}

// TestGatewayRejectsParamsThatAreNotUTF8: a path or query parameter that
// decodes to invalid UTF-8 gets 400 naming it (it used to reach the
// gateway's gRPC client, which refused to marshal it: HTTP 500), and the
// call never reaches the service.
func TestGatewayRejectsParamsThatAreNotUTF8(t *testing.T) {
	base, stub := gatewayStack(t)
	id := "0b4e7d8c-3f0a-4d6e-9a51-2c1f4b7e8d90"
	tests := []struct {
		method, path, param string
	}{
		{"GET", "/v1/memory/stats?namespace=%FF", "namespace"},
		{"GET", "/v1/memory/namespaces/%FF/episodes", "namespace"},
		{"GET", "/v1/memory/namespaces/ns/episodes?sessionId=%C3", "sessionId"},
		{"GET", "/v1/memory/namespaces/ns/episodes?pageToken=ab%FE%FF", "pageToken"},
		{"GET", "/v1/memory/namespaces/ns/episodes?session_id=ok&pageToken=%80", "pageToken"},
		{"GET", "/v1/memory/namespaces/%E2%82/episodes/" + id, "namespace"},
		{"GET", "/v1/memory/namespaces/ns/episodes/%FF", "id"},
		{"DELETE", "/v1/memory/namespaces/%FF/episodes/" + id, "namespace"},
		{"DELETE", "/v1/memory/namespaces/ns/episodes/a%FFb", "id"},
		{"DELETE", "/v1/memory/namespaces/%FF", "namespace"},
		{"GET", "/v1/memory/namespaces/ns/episodes?%FF=1", "query parameter name"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := httpCall(t, tt.method, base+tt.path, "")
			msg, _ := body["message"].(string)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, tt.param) || !strings.Contains(msg, "UTF-8") {
				t.Fatalf("= %d %v, want 400 naming %s as not UTF-8", resp.StatusCode, body, tt.param)
			}
			if !utf8.ValidString(msg) {
				t.Fatalf("message echoes the invalid bytes: %q", msg)
			}
		})
	}
	if n := stub.calls.Load(); n != 0 {
		t.Fatalf("%d bad calls reached the service", n)
	}
	// Valid UTF-8, escaped or not, still goes through.
	if resp, body := httpCall(t, "GET", base+"/v1/memory/namespaces/caf%C3%A9/episodes?sessionId=%E2%82%AC", ""); resp.StatusCode == http.StatusBadRequest {
		t.Fatalf("valid UTF-8 parameters rejected: %v", body)
	}
}

// TestGatewayMethodNotAllowed: a route asked with a method it does not serve
// is 405 with Allow (it was 501 UNIMPLEMENTED); an unknown path stays 404.
func TestGatewayMethodNotAllowed(t *testing.T) {
	base, _ := gatewayStack(t)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"PUT", "/v1/memory/episodes:recall", 405, "POST"},
		{"GET", "/v1/memory/episodes:write", 405, "POST"},
		{"POST", "/v1/memory/namespaces/ns/episodes", 405, "GET"},
		{"PATCH", "/v1/memory/namespaces/ns/episodes/x", 405, "GET, DELETE"},
		{"POST", "/v1/memory/namespaces/ns", 405, "DELETE"},
		{"DELETE", "/v1/memory/stats", 405, "GET"},
		{"GET", "/v1/memory/nothing-here", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := httpCall(t, tt.method, base+tt.path, "{}")
			if resp.StatusCode != tt.status || resp.Header.Get("Allow") != tt.allow {
				t.Fatalf("= %d Allow %q %v, want %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"), body, tt.status, tt.allow)
			}
			if msg, _ := body["message"].(string); tt.status == 405 && !strings.Contains(msg, tt.method) {
				t.Fatalf("message %q does not name the method", msg)
			}
		})
	}
}

// TestGatewayExplainsLoneSurrogates: "\ud800" is valid JSON syntax but no
// character; protojson said "unexpected EOF". The 400 now says what it is.
func TestGatewayExplainsLoneSurrogates(t *testing.T) {
	base, stub := gatewayStack(t)
	for _, body := range []string{
		`{"namespace":"n","query":"\ud800"}`,
		`{"namespace":"n","query":"ok \udc00 then"}`,
		`{"namespace":"n","query":"\ud800\u0041"}`,
		`{"namespace":"n","query":"\\\ud800"}`,
	} {
		t.Run(body, func(t *testing.T) {
			resp, m := httpCall(t, "POST", base+"/v1/memory/episodes:recall", body)
			msg, _ := m["message"].(string)
			if resp.StatusCode != 400 || !strings.Contains(msg, "lone UTF-16 surrogate") || strings.Contains(msg, "EOF") {
				t.Fatalf("= %d %q, want 400 naming the lone surrogate", resp.StatusCode, msg)
			}
		})
	}
	if n := stub.calls.Load(); n != 0 {
		t.Fatalf("%d bad calls reached the service", n)
	}
	// A proper pair, and an escaped backslash before a u, are fine.
	for _, body := range []string{`{"namespace":"n","query":"a\ud83d\ude00"}`, `{"namespace":"n","query":"\\ud800"}`} {
		if resp, m := httpCall(t, "POST", base+"/v1/memory/episodes:recall", body); resp.StatusCode != 200 {
			t.Fatalf("%s = %d %v", body, resp.StatusCode, m)
		}
	}
}

func TestLoneSurrogate(t *testing.T) {
	tests := []struct {
		in   string
		want string
		at   int
	}{
		{`"\ud800"`, `\ud800`, 1},
		{`"\uD83D\uDE00"`, "", 0},
		{`"\uDE00"`, `\uDE00`, 1},
		{`"\ud83d\u0041"`, `\ud83d`, 1},
		{`"\\ud800"`, "", 0},
		{`"\\\ud800"`, `\ud800`, 3},
		{`"\u00e9\n\ud800"`, `\ud800`, 9},
		{`"\ud800`, `\ud800`, 1}, // not valid JSON; still found
		{`"\u12"`, "", 0},
	}
	for _, tt := range tests {
		esc, at, ok := loneSurrogate([]byte(tt.in))
		if esc != tt.want || ok != (tt.want != "") || (ok && at != tt.at) {
			t.Errorf("loneSurrogate(%s) = %q %d %v, want %q %d", tt.in, esc, at, ok, tt.want, tt.at)
		}
	}
}

// Building a gateway while another one parses query parameters does not
// race: the gateway's process-wide query parser is set once.
func TestGatewayMuxesShareTheQueryParser(t *testing.T) {
	newGatewayMux()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { newGatewayMux() })
		wg.Go(func() {
			_ = runtime.PopulateQueryParameters(&wrapperspb.StringValue{}, url.Values{"value": {"x"}}, utilities.NewDoubleArray(nil))
		})
	}
	wg.Wait()
}
