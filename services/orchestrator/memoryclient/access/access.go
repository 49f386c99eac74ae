// Package access records episode accesses (LAB_009) off the request path: a
// bounded queue that Submit fills without ever blocking, drained by one
// background goroutine that batches ids per namespace into memory's
// RecordAccess calls. Failures are counted and logged, never returned to a
// request: an access count is worth less than a fast answer.
package access

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Sink records accesses; memoryclient.Client implements it.
type Sink interface {
	RecordAccess(ctx context.Context, namespace string, ids []string, at time.Time) (int, error)
}

// Defaults of Options.
const (
	DefaultQueueSize    = 1024
	DefaultBatchSize    = 100 // memory's RecordAccess takes 1..100 ids
	DefaultCallTimeout  = 250 * time.Millisecond
	DefaultDrainTimeout = time.Second
	// failureLogEvery spaces failure log lines, so a dead memory does not
	// log once per request.
	failureLogEvery = 10 * time.Second
	// gatherMax bounds how many queued submissions one flush merges.
	gatherMax = 256
)

// Options tune a Recorder; zero values mean the defaults.
type Options struct {
	// QueueSize is how many submissions may wait; Submit refuses beyond.
	QueueSize int
	// BatchSize is the most ids per RecordAccess call, 1..100.
	BatchSize int
	// CallTimeout is the deadline of each RecordAccess call.
	CallTimeout time.Duration
	// DrainTimeout bounds the flush of what is still queued when Run's
	// context ends.
	DrainTimeout time.Duration
	Logger       *zap.Logger
	Now          func() time.Time
}

// Stats are the recorder's counters since it was made.
type Stats struct {
	// Submitted and Refused count Submit calls taken and refused.
	Submitted, Refused uint64
	// Recorded counts ids sent in successful calls; Updated what memory
	// reported as updated (unknown ids are not).
	Recorded, Updated uint64
	// Failed counts ids of failed calls or left queued at shutdown;
	// FailedCalls the calls that failed.
	Failed, FailedCalls uint64
}

type entry struct {
	namespace string
	ids       []string
	at        time.Time
}

// Recorder is the bounded access queue and its drainer. Submit may be called
// from any goroutine; Run from one, once.
type Recorder struct {
	sink Sink
	opts Options
	log  *zap.Logger

	mu     sync.RWMutex // held for reading while enqueuing, for writing to close
	closed bool
	queue  chan entry
	// Stop records the context of the final flush, then ends stopping.
	stopMu   sync.Mutex
	flushCtx context.Context
	stopping context.Context
	stopFn   context.CancelFunc
	done     chan struct{} // closed when Run returns

	submitted, refused, recorded, updated, failed, failedCalls atomic.Uint64

	// Touched only by the Run goroutine.
	lastLog    time.Time
	unreported uint64
}

// New returns a Recorder writing to sink. It records nothing until Run runs.
func New(sink Sink, opts Options) (*Recorder, error) {
	if opts.QueueSize == 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	switch {
	case sink == nil:
		return nil, fmt.Errorf("access recorder: nil sink")
	case opts.QueueSize < 1:
		return nil, fmt.Errorf("access recorder: queue size %d < 1", opts.QueueSize)
	case opts.BatchSize < 1 || opts.BatchSize > 100:
		return nil, fmt.Errorf("access recorder: batch size %d outside 1..100", opts.BatchSize)
	case opts.CallTimeout < 0 || opts.DrainTimeout < 0:
		return nil, fmt.Errorf("access recorder: negative timeout")
	}
	stopping, stopFn := context.WithCancel(context.Background())
	return &Recorder{sink: sink, opts: opts, log: opts.Logger, queue: make(chan entry, opts.QueueSize),
		stopping: stopping, stopFn: stopFn, done: make(chan struct{})}, nil
}

// Submit queues the access of ids in namespace, stamped now. It never
// blocks: it returns false, recording nothing, when the queue is full or Run
// has ended. ids is copied.
func (r *Recorder) Submit(namespace string, ids []string) bool {
	if len(ids) == 0 {
		return true
	}
	e := entry{namespace: namespace, ids: slices.Clone(ids), at: r.opts.Now()}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.refused.Add(1)
		return false
	}
	select {
	case r.queue <- e:
		r.submitted.Add(1)
		return true
	default:
		r.refused.Add(1)
		return false
	}
}

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	return Stats{
		Submitted: r.submitted.Load(), Refused: r.refused.Load(),
		Recorded: r.recorded.Load(), Updated: r.updated.Load(),
		Failed: r.failed.Load(), FailedCalls: r.failedCalls.Load(),
	}
}

// Run drains the queue until ctx ends or Stop is called, then flushes what
// is still queued within DrainTimeout (and Stop's context), refuses further
// submissions and returns. Call it once, from the goroutine that owns the
// recorder's lifetime.
func (r *Recorder) Run(ctx context.Context) {
	defer close(r.done)
	// Calls outlive a cancelled ctx only by their own short deadlines, so
	// an access taken just before shutdown is still recorded.
	base := context.WithoutCancel(ctx)
	// A call in flight when Stop is called ends with Stop's context too.
	loop, cancelLoop := context.WithCancel(base)
	defer cancelLoop()
	unwatch := context.AfterFunc(r.stopping, func() {
		select {
		case <-r.flushContext().Done():
			cancelLoop()
		case <-r.done:
		}
	})
	defer unwatch()
	for {
		switch { // select picks at random; shutdown goes first
		case ctx.Err() != nil:
			r.drain(base)
			return
		case r.stopping.Err() != nil:
			r.drain(r.flushContext())
			return
		}
		select {
		case <-ctx.Done():
		case <-r.stopping.Done():
		case e := <-r.queue:
			r.flush(loop, r.gather(e))
		}
	}
}

// Stop ends Run as the end of its context would, except that the final
// flush (and a call in flight) also ends with ctx: a process stopping
// within a deadline stops the recorder within it. It returns once Run has
// returned, so call it while Run runs or after.
func (r *Recorder) Stop(ctx context.Context) {
	r.stopMu.Lock()
	if r.flushCtx == nil {
		r.flushCtx = ctx
	}
	r.stopMu.Unlock()
	r.stopFn()
	<-r.done
}

func (r *Recorder) flushContext() context.Context {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	return r.flushCtx
}

// gather merges first with whatever else is queued, up to gatherMax.
func (r *Recorder) gather(first entry) []entry {
	batch := []entry{first}
	for len(batch) < gatherMax {
		select {
		case e := <-r.queue:
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

// drain closes the queue to new submissions and flushes what it holds.
func (r *Recorder) drain(base context.Context) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(base, r.opts.DrainTimeout)
	defer cancel()
	for {
		var batch []entry
		select {
		case e := <-r.queue:
			batch = r.gather(e)
		default:
			return
		}
		if ctx.Err() != nil {
			lost := 0
			for _, e := range batch {
				lost += len(e.ids)
			}
			r.failed.Add(uint64(lost))
			r.log.Warn("access recorder: drain timed out, accesses not recorded", zap.Int("ids", lost))
			continue // keep emptying the queue so the counts are right
		}
		r.flush(ctx, batch)
	}
}

// flush sends a batch as one or more RecordAccess calls per namespace: ids
// deduplicated in order of submission, chunked by BatchSize, stamped with
// the latest submission time of the namespace.
func (r *Recorder) flush(ctx context.Context, batch []entry) {
	type group struct {
		ids  []string
		seen map[string]bool
		at   time.Time
	}
	var order []string
	groups := map[string]*group{}
	for _, e := range batch {
		g := groups[e.namespace]
		if g == nil {
			g = &group{seen: map[string]bool{}}
			groups[e.namespace] = g
			order = append(order, e.namespace)
		}
		if e.at.After(g.at) {
			g.at = e.at
		}
		for _, id := range e.ids {
			if !g.seen[id] {
				g.seen[id] = true
				g.ids = append(g.ids, id)
			}
		}
	}
	for _, ns := range order {
		g := groups[ns]
		for chunk := range slices.Chunk(g.ids, r.opts.BatchSize) {
			r.call(ctx, ns, chunk, g.at)
		}
	}
}

func (r *Recorder) call(ctx context.Context, namespace string, ids []string, at time.Time) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	defer cancel()
	n, err := r.sink.RecordAccess(ctx, namespace, ids, at)
	if err == nil {
		r.recorded.Add(uint64(len(ids)))
		r.updated.Add(uint64(max(n, 0)))
		return
	}
	r.failed.Add(uint64(len(ids)))
	r.failedCalls.Add(1)
	r.unreported++
	now := time.Now()
	if now.Sub(r.lastLog) >= failureLogEvery {
		r.log.Warn("access recorder: RecordAccess failed",
			zap.String("namespace", namespace), zap.Int("ids", len(ids)),
			zap.Uint64("failed_calls_since_last_log", r.unreported), zap.Error(err))
		r.lastLog, r.unreported = now, 0
	}
}
