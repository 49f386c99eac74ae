package app

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
)

// countingMemory answers every Recall empty and counts them.
type countingMemory struct {
	memoryv1.UnimplementedMemoryServiceServer
	recalls atomic.Int64
}

func (m *countingMemory) Recall(context.Context, *memoryv1.RecallRequest) (*memoryv1.RecallResponse, error) {
	m.recalls.Add(1)
	return &memoryv1.RecallResponse{}, nil
}

// TestMemoryCallsSpreadOverEveryAddress: when memory's name resolves to
// several pods (a headless Service), calls go to all of them, not to the
// first connection only.
func TestMemoryCallsSpreadOverEveryAddress(t *testing.T) {
	var pods [3]countingMemory
	var addrs []resolver.Address
	for i := range pods {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		memoryv1.RegisterMemoryServiceServer(s, &pods[i])
		go func() { _ = s.Serve(l) }()
		t.Cleanup(s.Stop)
		addrs = append(addrs, resolver.Address{Addr: l.Addr().String()})
	}
	r := manual.NewBuilderWithScheme("pods")
	r.InitialState(resolver.State{Addresses: addrs})
	conn, err := dialMemory("pods:///memory", insecure.NewCredentials(), grpc.WithResolvers(r))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := memoryv1.NewMemoryServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 30 {
		if _, err := client.Recall(ctx, &memoryv1.RecallRequest{Namespace: "n", Query: "q"}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range pods {
		if n := pods[i].recalls.Load(); n == 0 {
			t.Errorf("pod %d got no call of 30 (got %d, %d, %d)", i, pods[0].recalls.Load(), pods[1].recalls.Load(), pods[2].recalls.Load())
		}
	}
}
