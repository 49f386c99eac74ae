// Package health keeps the last result of named dependency checks, run as
// background probes with timeouts, and publishes them two ways: the gRPC
// health protocol (one service name per check) and Kubernetes-style /readyz.
//
// A health call never waits on a dependency: Check, Watch and /readyz only
// read the last recorded result. This is the lesson of the prototype, whose
// /health hung on a database connect without a timeout.
package health

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Probe checks one dependency. It must honour ctx; its error says what failed.
type Probe func(ctx context.Context) error

// Defaults chosen so a status changes within 2 s of a dependency going away
// or coming back: at worst one interval plus one timeout.
const (
	DefaultInterval = 500 * time.Millisecond
	DefaultTimeout  = time.Second
)

// Check is a named dependency probe.
type Check struct {
	// Name is both the gRPC health service name and the /readyz/<name> path.
	Name  string
	Probe Probe
	// Interval between the end of one probe and the start of the next.
	Interval time.Duration
	// Timeout of one probe; a probe still running then counts as failed.
	Timeout time.Duration
	// Critical checks make /readyz answer 503 while they fail. A service that
	// answers degraded without the dependency (memory without Postgres) keeps
	// the check non-critical: it is reported, but the pod stays in rotation.
	Critical bool
}

// Result is the last outcome of a check.
type Result struct {
	Name     string
	Critical bool
	// Known is false until the first probe ended.
	Known       bool
	OK          bool
	LastError   string
	LastLatency time.Duration
	LastRun     time.Time
	// Since is when OK last changed (or when the check was added).
	Since time.Time
}

type state struct {
	check Check
	res   Result
}

// Registry runs checks and publishes their results.
type Registry struct {
	log      *zap.Logger
	grpc     *grpchealth.Server
	services []string

	mu        sync.RWMutex
	checks    map[string]*state
	order     []string
	listeners []func(name string, ok bool)
	results   []func(name string, err error)
	draining  bool
	started   bool
}

// NewRegistry returns a registry whose gRPC health server reports "" and each
// of services as SERVING until Shutdown: the process itself can take calls.
func NewRegistry(log *zap.Logger, services ...string) *Registry {
	r := &Registry{
		log:      log,
		grpc:     grpchealth.NewServer(),
		services: append([]string{""}, services...),
		checks:   make(map[string]*state),
	}
	for _, s := range r.services {
		r.grpc.SetServingStatus(s, healthpb.HealthCheckResponse_SERVING)
	}
	return r
}

// GRPCServer is the grpc.health.v1.Health implementation to register.
func (r *Registry) GRPCServer() healthpb.HealthServer { return r.grpc }

// Add registers a check; it reports NOT_SERVING until its first probe passes.
// Add must be called before Run.
func (r *Registry) Add(c Check) error {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return fmt.Errorf("health: check %q added after Run", c.Name)
	}
	if _, dup := r.checks[c.Name]; dup || c.Name == "" || c.Probe == nil {
		return fmt.Errorf("health: empty, duplicate or probe-less check %q", c.Name)
	}
	r.checks[c.Name] = &state{check: c, res: Result{Name: c.Name, Critical: c.Critical, Since: time.Now(), LastError: "not probed yet"}}
	r.order = append(r.order, c.Name)
	r.grpc.SetServingStatus(c.Name, healthpb.HealthCheckResponse_NOT_SERVING)
	return nil
}

// OnChange registers fn to be called (from the probe goroutine) whenever a
// check's outcome flips, and after its first result. fn must not block.
func (r *Registry) OnChange(fn func(name string, ok bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listeners = append(r.listeners, fn)
}

// OnResult registers fn to be called (from the probe goroutine) after every
// probe, with its error (nil when it passed). Unlike OnChange it also sees
// the results that repeat the last one, which state kept elsewhere (a
// circuit breaker) needs to converge. fn must not block.
func (r *Registry) OnResult(fn func(name string, err error)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, fn)
}

// Run probes every check until ctx ends, then returns once every probe
// goroutine has ended.
func (r *Registry) Run(ctx context.Context) {
	r.mu.Lock()
	r.started = true
	states := make([]*state, 0, len(r.order))
	for _, n := range r.order {
		states = append(states, r.checks[n])
	}
	r.mu.Unlock()

	var wg sync.WaitGroup
	for _, st := range states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx, st.check)
		}()
	}
	wg.Wait()
}

// loop runs one check. At most one probe is in flight per check: a probe that
// overruns its timeout is recorded as failed at once, and the next attempt
// waits until it has returned, so a stuck dependency cannot pile up goroutines.
func (r *Registry) loop(ctx context.Context, c Check) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, c.Timeout)
		done := make(chan error, 1)
		go func() { done <- c.Probe(pctx) }()
		select {
		case err := <-done:
			r.record(c.Name, err, time.Since(start))
		case <-pctx.Done():
			if ctx.Err() != nil {
				cancel()
				return
			}
			r.record(c.Name, fmt.Errorf("probe timed out after %s", c.Timeout), time.Since(start))
			// Wait for the overrunning probe before starting another one.
			select {
			case <-done:
			case <-ctx.Done():
				cancel()
				return
			}
		}
		cancel()
		timer.Reset(c.Interval)
	}
}

func (r *Registry) record(name string, err error, latency time.Duration) {
	ok := err == nil
	r.mu.Lock()
	st := r.checks[name]
	changed := !st.res.Known || st.res.OK != ok
	now := time.Now()
	st.res.Known = true
	st.res.LastRun = now
	st.res.LastLatency = latency
	if ok {
		st.res.LastError = ""
	} else {
		st.res.LastError = err.Error()
	}
	if changed {
		st.res.OK = ok
		st.res.Since = now
	}
	draining := r.draining
	listeners := append([]func(string, bool){}, r.listeners...)
	results := append([]func(string, error){}, r.results...)
	r.mu.Unlock()

	for _, fn := range results {
		fn(name, err)
	}
	if !changed {
		return
	}
	if !draining {
		s := healthpb.HealthCheckResponse_NOT_SERVING
		if ok {
			s = healthpb.HealthCheckResponse_SERVING
		}
		r.grpc.SetServingStatus(name, s)
	}
	if ok {
		r.log.Info("dependency check passing", zap.String("check", name), zap.Duration("latency", latency))
	} else {
		r.log.Warn("dependency check failing", zap.String("check", name), zap.Error(err))
	}
	for _, fn := range listeners {
		fn(name, ok)
	}
}

// Shutdown marks everything NOT_SERVING for good: the first step of a
// graceful stop, so load balancers and probes move traffic away before the
// listeners close.
func (r *Registry) Shutdown() {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	r.grpc.Shutdown()
}

// Draining reports whether Shutdown was called.
func (r *Registry) Draining() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.draining
}

// Result returns the last result of the named check.
func (r *Registry) Result(name string) (Result, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	st, ok := r.checks[name]
	if !ok {
		return Result{}, false
	}
	return st.res, true
}

// Results returns every check's last result, by name.
func (r *Registry) Results() []Result {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Result, 0, len(r.checks))
	for _, n := range r.order {
		out = append(out, r.checks[n].res)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Passing reports whether the named check last passed.
func (r *Registry) Passing(name string) bool {
	res, ok := r.Result(name)
	return ok && res.Known && res.OK
}

// ErrNotServing is returned by RemoteProbe when the remote reports a status
// other than SERVING.
var ErrNotServing = errors.New("not serving")

// RemoteProbe mirrors a service of a remote gRPC health server: it passes
// while the remote answers SERVING for service within the probe's timeout.
func RemoteProbe(client healthpb.HealthClient, service string) Probe {
	return func(ctx context.Context) error {
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return fmt.Errorf("health check %q: %w", service, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health check %q: %w (%s)", service, ErrNotServing, resp.GetStatus())
		}
		return nil
	}
}
