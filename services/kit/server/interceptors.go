package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// RequestIDHeader carries a request id in gRPC metadata and HTTP headers.
const RequestIDHeader = "x-request-id"

type requestIDKey struct{}

// RequestID returns the id of the call ctx belongs to ("" outside a call).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID takes the caller's x-request-id (bounded, so a client cannot
// bloat every log line) or makes one, and echoes it in the response header.
func withRequestID(ctx context.Context) context.Context {
	var id string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(RequestIDHeader); len(v) > 0 && len(v[0]) <= 128 {
			id = v[0]
		}
	}
	if id == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id))
	return context.WithValue(ctx, requestIDKey{}, id)
}

func requestIDUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(withRequestID(ctx), req)
}

func requestIDStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	w := middleware.WrapServerStream(ss)
	w.WrappedContext = withRequestID(ss.Context())
	return h(srv, w)
}

// zapLogger adapts zap to the middleware's logging interface.
func zapLogger(l *zap.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		var zl zapcore.Level
		switch lvl {
		case logging.LevelDebug:
			zl = zapcore.DebugLevel
		case logging.LevelInfo:
			zl = zapcore.InfoLevel
		case logging.LevelWarn:
			zl = zapcore.WarnLevel
		default:
			zl = zapcore.ErrorLevel
		}
		if zl == zapcore.DebugLevel && slowCall(fields) {
			zl = zapcore.InfoLevel // a slow success is worth an operator's eye
		}
		ce := l.Check(zl, msg)
		if ce == nil {
			return // level disabled: skip building the fields
		}
		zf := make([]zap.Field, 0, len(fields)/2)
		for i := 0; i+1 < len(fields); i += 2 {
			key, _ := fields[i].(string)
			zf = append(zf, zap.Any(key, fields[i+1]))
		}
		ce.Write(zf...)
	})
}

// notHealth skips logging of health checks, which probes send every second.
var notHealth = selector.MatchFunc(func(_ context.Context, cm interceptors.CallMeta) bool {
	return cm.Service != "grpc.health.v1.Health"
})

func loggingOpts() []logging.Option {
	return []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithFieldsFromContext(func(ctx context.Context) logging.Fields {
			return logging.Fields{"request_id", RequestID(ctx)}
		}),
		logging.WithDurationField(durationFields),
		logging.WithLevels(callLevel),
	}
}

// SlowCall is the latency from which a successful call is logged at info.
const SlowCall = 250 * time.Millisecond

const slowKey = "grpc.slow"

// durationFields reports the call's latency in milliseconds and marks slow
// calls, so the logger can raise them above debug.
func durationFields(d time.Duration) logging.Fields {
	f := logging.Fields{"grpc.time_ms", float64(d.Microseconds()) / 1000}
	if d >= SlowCall {
		f = append(f, slowKey, true)
	}
	return f
}

func slowCall(fields []any) bool {
	for i := 0; i+1 < len(fields); i += 2 {
		if k, _ := fields[i].(string); k == slowKey {
			return true
		}
	}
	return false
}

// callLevel logs successful calls at debug (slow ones at info): at thousands of calls a second a
// line per success costs ~10% of a service's CPU (measured on Recall) and
// buries the lines that matter. Caller mistakes log at info, server-side
// failures at warn or error. LOG_LEVEL=debug shows every call.
func callLevel(code codes.Code) logging.Level {
	switch code {
	case codes.OK:
		return logging.LevelDebug
	case codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists,
		codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition, codes.OutOfRange,
		codes.Aborted: // a compare-and-set that lost a race: the caller re-reads and retries
		return logging.LevelInfo
	case codes.DeadlineExceeded, codes.Unavailable, codes.ResourceExhausted:
		return logging.LevelWarn
	default:
		return logging.LevelError
	}
}

func recoveryOpts(log *zap.Logger) []recovery.Option {
	return []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.Error("panic in handler", zap.String("request_id", RequestID(ctx)), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
		return status.Error(codes.Internal, fmt.Sprintf("internal error (request id %s)", RequestID(ctx)))
	})}
}

func unaryInterceptors(log *zap.Logger, m *grpcprom.ServerMetrics) []grpc.UnaryServerInterceptor {
	return []grpc.UnaryServerInterceptor{
		requestIDUnary,
		m.UnaryServerInterceptor(),
		selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(zapLogger(log), loggingOpts()...), notHealth),
		recovery.UnaryServerInterceptor(recoveryOpts(log)...),
	}
}

func streamInterceptors(log *zap.Logger, m *grpcprom.ServerMetrics) []grpc.StreamServerInterceptor {
	return []grpc.StreamServerInterceptor{
		requestIDStream,
		m.StreamServerInterceptor(),
		selector.StreamServerInterceptor(logging.StreamServerInterceptor(zapLogger(log), loggingOpts()...), notHealth),
		recovery.StreamServerInterceptor(recoveryOpts(log)...),
	}
}

// PropagateRequestID is a client interceptor that forwards the request id of
// the call being served to the services it calls, so one id follows a
// request through orchestrator and memory logs.
func PropagateRequestID(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if id := RequestID(ctx); id != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, RequestIDHeader, id)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}
