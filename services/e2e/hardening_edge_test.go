package e2e

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// Hardening of the HTTP edge: what both gateways answer to bad input, and
// how the front door behaves when memory stalls or clients stop reading.

// edgePorts are the two HTTP gateways of a shared stack.
func edgePorts(s *sharedStack) []struct{ name, url string } {
	return []struct{ name, url string }{{"front door", s.orchHTTP}, {"memory", s.memHTTP}}
}

// TestEdgeParamsNotUTF8: a path or query parameter that decodes to invalid
// UTF-8 is 400 naming the parameter on both ports, for every route that
// takes one (it was 500 "error while marshaling").
func TestEdgeParamsNotUTF8(t *testing.T) {
	skipShort(t)
	s := startShared(t)
	id := newID()
	cases := []struct{ method, path, param string }{
		{"GET", "/v1/memory/stats?namespace=%FF", "namespace"},
		{"GET", "/v1/memory/namespaces/%FF/episodes", "namespace"},
		{"GET", "/v1/memory/namespaces/ns/episodes?sessionId=%FF", "sessionId"},
		{"GET", "/v1/memory/namespaces/ns/episodes?pageToken=%FF", "pageToken"},
		{"GET", "/v1/memory/namespaces/ns/episodes?createdAfter=%FF", "createdAfter"},
		{"GET", "/v1/memory/namespaces/%FF/episodes/" + id, "namespace"},
		{"GET", "/v1/memory/namespaces/ns/episodes/%FF", "id"},
		{"DELETE", "/v1/memory/namespaces/%FF/episodes/" + id, "namespace"},
		{"DELETE", "/v1/memory/namespaces/ns/episodes/%FF", "id"},
		{"DELETE", "/v1/memory/namespaces/%FF", "namespace"},
	}
	for _, port := range edgePorts(s) {
		t.Run(port.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.method+" "+c.path, func(t *testing.T) {
					code, body := httpDo(t, c.method, port.url+c.path, "")
					msg, _ := decodeJSON(t, body)["message"].(string)
					if code != http.StatusBadRequest || !strings.Contains(msg, c.param) || !strings.Contains(msg, "UTF-8") || !utf8.ValidString(msg) {
						t.Fatalf("%s %s = %d %s, want 400 naming %s", c.method, c.path, code, body, c.param)
					}
				})
			}
		})
	}
	s.alive(t)
}
