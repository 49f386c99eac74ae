package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestPublicReadyzWithholdsReasons: /readyz on the public port says which
// check fails but not why, as the Kubernetes API server does: a probe's
// error names hosts, ports and users. The reason goes to the log, once per
// status change.
func TestPublicReadyzWithholdsReasons(t *testing.T) {
	const secret = `dial tcp db.internal.example:6432: password authentication failed for user "brain_prod"`
	core, logs := observer.New(zapcore.InfoLevel)
	r := NewRegistry(zap.New(core))
	for _, c := range []Check{
		{Name: "postgres", Critical: true},
		{Name: "cache"}, // non-critical
	} {
		c.Interval, c.Timeout = 10*time.Millisecond, 50*time.Millisecond
		c.Probe = func(context.Context) error { return errors.New(secret) }
		if err := r.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	runRegistry(t, r)
	waitFor(t, time.Second, func() bool {
		a, _ := r.Result("postgres")
		b, _ := r.Result("cache")
		return a.Known && b.Known
	})

	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/readyz?verbose", []string{"[-]postgres failed: reason withheld", "[!]cache failed (non-critical, serving degraded): reason withheld"}},
		{"/readyz", []string{"[-]postgres failed: reason withheld"}},
		{"/readyz/postgres", []string{"[-]postgres failed: reason withheld"}},
		{"/readyz/cache", []string{"[-]cache failed: reason withheld"}},
	} {
		rec := httptest.NewRecorder()
		r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		b, _ := io.ReadAll(rec.Body)
		body := string(b)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s = %d, want 503", tt.path, rec.Code)
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s does not say %q:\n%s", tt.path, w, body)
			}
		}
		for _, leak := range []string{"db.internal", "6432", "brain_prod", "password"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s shows %q:\n%s", tt.path, leak, body)
			}
		}
	}
	// The reason stays in the log, once per status change, not per probe.
	waitFor(t, time.Second, func() bool { res, _ := r.Result("postgres"); return time.Since(res.Since) > 50*time.Millisecond })
	failing := logs.FilterMessage("dependency check failing")
	if failing.Len() != 2 {
		t.Fatalf("%d failing lines, want one per check: %v", failing.Len(), failing.All())
	}
	for _, e := range failing.All() {
		if !strings.Contains(e.ContextMap()["error"].(string), secret) {
			t.Errorf("log line without the reason: %v", e.ContextMap())
		}
	}
}
