package health

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Handler serves Kubernetes-style readiness:
//
//	GET /readyz            200 "ok" when every critical check passes and the
//	                       server is not draining, else 503
//	GET /readyz?verbose    one line per check: [+] passing, [-] failing
//	                       (critical), [!] failing but non-critical, with the
//	                       last latency and since when
//	GET /readyz/<check>    that check alone: 200 or 503 (404 when unknown)
//
// A failing check's reason is withheld, as the Kubernetes API server does:
// this is the public port, and a probe's error names hosts, ports and
// users. The registry logs the reason at each status change.
//
// It only reads recorded results, so it answers at once whatever the
// dependencies do. Mount it at both "/readyz" and "/readyz/".
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		name := strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, "/readyz"), "/")
		if name != "" {
			r.serveOne(w, name)
			return
		}
		_, verbose := req.URL.Query()["verbose"]
		var b strings.Builder
		ready := true
		if r.Draining() {
			ready = false
			b.WriteString("[-]shutdown failed: server is draining\n")
		} else {
			b.WriteString("[+]shutdown ok\n")
		}
		for _, res := range r.Results() {
			passing := res.Known && res.OK
			switch {
			case passing:
				fmt.Fprintf(&b, "[+]%s ok (latency %s, since %s)\n", res.Name, round(res.LastLatency), res.Since.UTC().Format(time.RFC3339))
			case res.Critical:
				ready = false
				fmt.Fprintf(&b, "[-]%s failed: %s (latency %s, since %s)\n", res.Name, withheld, round(res.LastLatency), res.Since.UTC().Format(time.RFC3339))
			default:
				fmt.Fprintf(&b, "[!]%s failed (non-critical, serving degraded): %s (latency %s, since %s)\n", res.Name, withheld, round(res.LastLatency), res.Since.UTC().Format(time.RFC3339))
			}
		}
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			b.WriteString("readyz check failed\n")
			fmt.Fprint(w, b.String())
			return
		}
		if verbose {
			b.WriteString("readyz check passed\n")
			fmt.Fprint(w, b.String())
			return
		}
		fmt.Fprint(w, "ok")
	})
}

// withheld stands for a failing check's reason in public output.
const withheld = "reason withheld"

func (r *Registry) serveOne(w http.ResponseWriter, name string) {
	if name == "shutdown" {
		if r.Draining() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "[-]shutdown failed: server is draining\n")
			return
		}
		fmt.Fprint(w, "ok")
		return
	}
	res, ok := r.Result(name)
	if !ok {
		http.Error(w, fmt.Sprintf("no check named %q", name), http.StatusNotFound)
		return
	}
	if res.Known && res.OK {
		fmt.Fprint(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, "[-]%s failed: %s (since %s)\n", res.Name, withheld, res.Since.UTC().Format(time.RFC3339))
}

// LivezHandler answers 200 while the process runs: liveness must not depend
// on dependencies, or a database outage would restart every pod.
func LivezHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "ok")
	})
}

func round(d time.Duration) time.Duration {
	if d > time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
