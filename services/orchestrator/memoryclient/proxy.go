package memoryclient

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
)

// DefaultProxyTimeout bounds a call the front door forwards to memory for a
// JSON client (GET /v1/memory/..., POST /v1/memory/episodes:write, ...). It
// is above memory's own caps (RECALL_TIMEOUT, QUERY_TIMEOUT), so memory's
// answer, degraded or refused with its reason, normally comes first; it only
// fires when memory itself does not answer (stopped, partitioned).
const DefaultProxyTimeout = 5 * time.Second

// LongProxyTimeout bounds the calls whose work memory lets grow with their
// size, above memory's own caps (1 min), so memory's answer (stored, or
// erased so far and "call again") comes first: DeleteNamespace always (its
// size is the namespace's, unknown here), WriteEpisodes in proportion to its
// bytes (see deadline). A shorter MEMORY_PROXY_TIMEOUT does not cut them.
const LongProxyTimeout = 70 * time.Second

// writeBytesPerSecond is the rate memory budgets a write's bytes at
// (services/memory/api.WriteBytesPerSecond): a write gets the proxy's
// timeout plus its bytes at this rate, so a small one fails as fast as any
// call when memory is gone and a large one is not cut while memory works.
const writeBytesPerSecond = 64 << 10

// proxyRequestID is the metadata key the gateway forwards the request id in.
const proxyRequestID = "x-request-id"

// Proxy is the connection the front door's gateway reaches memory through:
// every call gets at most timeout (the caller's own deadline still applies
// when shorter), and an error that did not come from memory (the deadline,
// a refused or broken connection) is answered without the transport's
// detail, which names internal addresses; the detail is logged instead.
type Proxy struct {
	cc            grpc.ClientConnInterface
	timeout, long time.Duration
	log           *zap.Logger
}

// NewProxy wraps cc; timeout ≤ 0 means DefaultProxyTimeout.
func NewProxy(cc grpc.ClientConnInterface, timeout time.Duration, log *zap.Logger) *Proxy {
	if timeout <= 0 {
		timeout = DefaultProxyTimeout
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Proxy{cc: cc, timeout: timeout, long: max(timeout, LongProxyTimeout), log: log}
}

// deadline is the time a call of method with args gets.
func (p *Proxy) deadline(method string, args any) time.Duration {
	switch method {
	case memoryv1.MemoryService_DeleteNamespace_FullMethodName:
		return p.long
	case memoryv1.MemoryService_WriteEpisodes_FullMethodName:
		if m, ok := args.(proto.Message); ok {
			return min(p.timeout+time.Duration(proto.Size(m))*time.Second/writeBytesPerSecond, p.long)
		}
	}
	return p.timeout
}

// Invoke makes a unary call under the proxy's deadline.
func (p *Proxy) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	ctx, cancel := context.WithTimeout(ctx, p.deadline(method, args))
	defer cancel()
	// Memory sends headers (its request id) before any answer of its own, so
	// an error without headers was made on this side of the connection.
	var header metadata.MD
	err := p.cc.Invoke(ctx, method, args, reply, append(opts, grpc.Header(&header))...)
	if err == nil || len(header) > 0 {
		return err
	}
	return p.local(ctx, method, err)
}

// NewStream opens a stream under the proxy's deadline. Memory's API has no
// streaming method today; this keeps the rule for one added later.
func (p *Proxy) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, cancel := context.WithTimeout(ctx, p.deadline(method, nil))
	s, err := p.cc.NewStream(ctx, desc, method, opts...)
	if err != nil {
		cancel()
		return nil, p.local(ctx, method, err)
	}
	go func() { // the stream's context ends when it does; then release the timer
		<-s.Context().Done()
		cancel()
	}()
	return s, nil
}

// local turns an error raised by the client itself into a status that says
// what happened without how the connection failed.
func (p *Proxy) local(ctx context.Context, method string, err error) error {
	code := status.Code(err)
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Internal, codes.Unknown:
	default:
		return err // the client's own checks (message size, ...): no address in them
	}
	var id string
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		if v := md.Get(proxyRequestID); len(v) > 0 {
			id = v[0]
		}
	}
	p.log.Warn("memory proxy call failed", zap.String("method", method), zap.String("request_id", id),
		zap.String("code", code.String()), zap.Error(err))
	// A change whose answer was lost may still have been made.
	outcome := "; retry later"
	if !readOnly[method] {
		outcome = "; the change may or may not have been made: retry it (writes with the same ids are stored once)"
	}
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || code == codes.DeadlineExceeded:
		return status.Errorf(codes.DeadlineExceeded, "memory service did not answer within the deadline (at most %s)%s", p.timeout, outcome)
	}
	return status.Error(codes.Unavailable, "memory service unavailable"+outcome)
}

// readOnly are the methods of memory that change nothing.
var readOnly = map[string]bool{
	memoryv1.MemoryService_Recall_FullMethodName:           true,
	memoryv1.MemoryService_GetEpisode_FullMethodName:       true,
	memoryv1.MemoryService_ListEpisodes_FullMethodName:     true,
	memoryv1.MemoryService_GetStats_FullMethodName:         true,
	memoryv1.MemoryService_GetWorkingMemory_FullMethodName: true,
}
