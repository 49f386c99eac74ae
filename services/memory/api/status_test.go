package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/brainhq/brain/services/memory/fallback"
	"github.com/brainhq/brain/services/memory/store"
)

// guarded runs err through a guard, as the handlers do, with the caller's
// deadline (0: none) and the configured limit.
func guarded(deadline, limit time.Duration, err error) error {
	ctx := context.Background()
	if deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, deadline)
		defer cancel()
	}
	g := fallback.NewGuard(fallback.NewBreaker(100, 0, time.Now, nil))
	return g.Do(ctx, limit, func(ctx context.Context) error {
		if errors.Is(err, context.DeadlineExceeded) {
			<-ctx.Done()
		}
		return err
	})
}

// TestToStatus: what a failed call says about what it left behind.
func TestToStatus(t *testing.T) {
	s := New(Deps{Log: zap.NewNop()})
	unknown := fmt.Errorf("write 3 episodes: %w: %w", store.ErrOutcomeUnknown, io.ErrUnexpectedEOF)
	unknownLate := fmt.Errorf("write 3 episodes: %w: %w", store.ErrOutcomeUnknown, context.DeadlineExceeded)
	tests := []struct {
		name, op    string
		err         error
		code        codes.Code
		want, never []string
		unknown     bool
	}{
		{"connection lost after COMMIT was sent", "write episodes", guarded(0, time.Second, unknown),
			codes.Unavailable, []string{"may or may not have been stored", "same ids", "without ids may store them twice"}, []string{"nothing was stored"}, true},
		{"deadline after COMMIT was sent", "write episodes", guarded(0, 10*time.Millisecond, unknownLate),
			codes.Unavailable, []string{"may or may not have been stored", "same ids"}, []string{"nothing was stored"}, true},
		{"caller's deadline after COMMIT was sent", "write episodes", guarded(500*time.Millisecond, 5*time.Second, unknownLate),
			codes.DeadlineExceeded, []string{"caller's deadline", "may or may not have been stored"}, []string{"postgres unavailable"}, true},
		{"connection lost before COMMIT", "write episodes", guarded(0, time.Second, fmt.Errorf("write: %w", io.ErrUnexpectedEOF)),
			codes.Unavailable, []string{"connection to postgres lost", "nothing was stored", "same ids"}, []string{"may or may not"}, false},
		{"caller's deadline before COMMIT", "write episodes", guarded(500*time.Millisecond, 5*time.Second, context.DeadlineExceeded),
			codes.DeadlineExceeded, []string{"caller's deadline", "nothing was stored"}, []string{"postgres unavailable", "circuit"}, false},
		{"delete of unknown outcome", "delete episode", guarded(0, 10*time.Millisecond, context.DeadlineExceeded),
			codes.Unavailable, []string{"did not answer within 10ms", "may or may not have been applied", "safe"}, []string{"nothing was"}, false},
		{"read", "list episodes", guarded(0, time.Second, io.ErrUnexpectedEOF),
			codes.Unavailable, []string{"connection to postgres lost", "retry"}, nil, false},
		{"unexpected", "list episodes", errors.New("boom"), codes.Internal, []string{"list episodes failed"}, []string{"boom"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(s.toStatus(context.Background(), tt.op, tt.err))
			if st.Code() != tt.code {
				t.Errorf("code %s, want %s (%q)", st.Code(), tt.code, st.Message())
			}
			for _, w := range tt.want {
				if !strings.Contains(st.Message(), w) {
					t.Errorf("message %q does not say %q", st.Message(), w)
				}
			}
			for _, n := range tt.never {
				if strings.Contains(st.Message(), n) {
					t.Errorf("message %q says %q", st.Message(), n)
				}
			}
			got := false
			for _, d := range st.Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == ReasonOutcomeUnknown {
					got = true
				}
			}
			if got != tt.unknown {
				t.Errorf("ErrorInfo %s present: %v, want %v", ReasonOutcomeUnknown, got, tt.unknown)
			}
		})
	}
}
