package memoryclient

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
)

// answeringMemory refuses every GetStats with its own UNAVAILABLE, sent
// after its headers as memory's request-id interceptor does, and never
// answers ListEpisodes.
type answeringMemory struct {
	memoryv1.UnimplementedMemoryServiceServer
}

const memoryOwnReason = "postgres unavailable: nothing was changed; retry with the same ids"

func (answeringMemory) GetStats(ctx context.Context, _ *memoryv1.GetStatsRequest) (*memoryv1.GetStatsResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", "r1"))
	return nil, status.Error(codes.Unavailable, memoryOwnReason)
}

// slowWork answers after twice the proxy's short timeout.
const slowWork = 600 * time.Millisecond

// DeleteNamespace and GetEpisode take slowWork: an erase may, a read may not.
func (answeringMemory) DeleteNamespace(ctx context.Context, _ *memoryv1.DeleteNamespaceRequest) (*memoryv1.DeleteNamespaceResponse, error) {
	select {
	case <-time.After(slowWork):
		return &memoryv1.DeleteNamespaceResponse{Deleted: 3}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (answeringMemory) GetEpisode(ctx context.Context, _ *memoryv1.GetEpisodeRequest) (*memoryv1.GetEpisodeResponse, error) {
	select {
	case <-time.After(slowWork):
		return &memoryv1.GetEpisodeResponse{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (answeringMemory) ListEpisodes(ctx context.Context, _ *memoryv1.ListEpisodesRequest) (*memoryv1.ListEpisodesResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func proxyTo(t *testing.T, addr string, timeout time.Duration) memoryv1.MemoryServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return memoryv1.NewMemoryServiceClient(NewProxy(conn, timeout, nil))
}

func TestProxy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	memoryv1.RegisterMemoryServiceServer(srv, answeringMemory{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	const timeout = 300 * time.Millisecond
	up := proxyTo(t, l.Addr().String(), timeout)

	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	down := proxyTo(t, deadAddr, timeout)

	ctx := context.Background()
	tests := []struct {
		name    string
		call    func(context.Context) error
		code    codes.Code
		message string
	}{
		{"memory's own error passes unchanged", func(ctx context.Context) error {
			_, err := up.GetStats(ctx, &memoryv1.GetStatsRequest{Namespace: "n"})
			return err
		}, codes.Unavailable, memoryOwnReason},
		{"no answer within the timeout", func(ctx context.Context) error {
			_, err := up.ListEpisodes(ctx, &memoryv1.ListEpisodesRequest{Namespace: "n"})
			return err
		}, codes.DeadlineExceeded, "memory service did not answer within the deadline"},
		{"connection refused", func(ctx context.Context) error {
			_, err := down.GetStats(ctx, &memoryv1.GetStatsRequest{Namespace: "n"})
			return err
		}, codes.Unavailable, "memory service unavailable; retry later"},
		{"a lost write may have been made", func(ctx context.Context) error {
			_, err := down.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{})
			return err
		}, codes.Unavailable, "may or may not have been made"},
		{"a read slower than the timeout is cut", func(ctx context.Context) error {
			_, err := up.GetEpisode(ctx, &memoryv1.GetEpisodeRequest{Namespace: "n", Id: "x"})
			return err
		}, codes.DeadlineExceeded, "memory service did not answer within the deadline"},
		{"an erase may take longer than the timeout (memory bounds it)", func(ctx context.Context) error {
			r, err := up.DeleteNamespace(ctx, &memoryv1.DeleteNamespaceRequest{Namespace: "n"})
			if err == nil && r.GetDeleted() != 3 {
				t.Errorf("erase answered %v", r)
			}
			return err
		}, codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.call(ctx)
			st := status.Convert(err)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.message) {
				t.Fatalf("= %v, want %s %q", err, tt.code, tt.message)
			}
			if strings.Contains(st.Message(), "127.0.0.1") {
				t.Fatalf("message names an address: %q", st.Message())
			}
			if took := time.Since(start); took > timeout+time.Second {
				t.Fatalf("took %s with a %s timeout", took, timeout)
			}
		})
	}

	// A caller's shorter deadline still wins.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := up.ListEpisodes(cctx, &memoryv1.ListEpisodesRequest{Namespace: "n"}); status.Code(err) != codes.DeadlineExceeded || time.Since(start) > timeout {
		t.Fatalf("with a 50ms caller deadline: %v after %s", err, time.Since(start))
	}
}

// A write gets the proxy's timeout plus time for its bytes (capped), an
// erase the long timeout, everything else the timeout.
func TestProxyDeadlines(t *testing.T) {
	p := NewProxy(nil, time.Second, nil)
	write := func(bytes int) *memoryv1.WriteEpisodesRequest {
		return &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{{Namespace: "n", Content: strings.Repeat("x", bytes)}}}
	}
	size := func(m *memoryv1.WriteEpisodesRequest) time.Duration {
		return time.Duration(proto.Size(m)) * time.Second / writeBytesPerSecond
	}
	oneMiB := write(1 << 20)
	tests := []struct {
		name   string
		method string
		args   any
		want   time.Duration
	}{
		{"a small write fails as fast as any call", memoryv1.MemoryService_WriteEpisodes_FullMethodName, write(10), time.Second + size(write(10))},
		{"a large write gets time for its bytes", memoryv1.MemoryService_WriteEpisodes_FullMethodName, oneMiB, time.Second + size(oneMiB)},
		{"a huge write is capped", memoryv1.MemoryService_WriteEpisodes_FullMethodName, write(8 << 20), LongProxyTimeout},
		{"an erase gets the long timeout", memoryv1.MemoryService_DeleteNamespace_FullMethodName, &memoryv1.DeleteNamespaceRequest{}, LongProxyTimeout},
		{"a read gets the timeout", memoryv1.MemoryService_GetStats_FullMethodName, &memoryv1.GetStatsRequest{}, time.Second},
	}
	for _, tt := range tests {
		if got := p.deadline(tt.method, tt.args); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	if d := p.deadline(memoryv1.MemoryService_WriteEpisodes_FullMethodName, oneMiB); d < 16*time.Second {
		t.Errorf("1 MiB write gets %s, want at least 16 s at 64 KiB/s", d)
	}
}
