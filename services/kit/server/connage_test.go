package server

import (
	"context"
	"flag"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/brainhq/brain/services/kit/config"
)

// TestMaxConnectionAgeMakesClientsReconnect: a client that keeps calling over
// one ClientConn is asked to reconnect once its connection is older than
// MaxConnectionAge, so behind a ClusterIP Service it can land on a pod added
// since; no call fails on the way.
func TestMaxConnectionAgeMakesClientsReconnect(t *testing.T) {
	const age = 300 * time.Millisecond
	r := start(t, Config{Name: "test", MaxConnectionAge: age, MaxCallDuration: time.Second}, func(s *Server) {
		testpb.RegisterTestServiceServer(s.GRPC(), &streamer{})
	})
	var dials atomic.Int32
	conn, err := grpc.NewClient("passthrough:///"+r.srv.GRPCAddr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)

	// gRPC adds ±10% jitter to the age; the deadline leaves room for a
	// loaded machine.
	deadline := time.Now().Add(20 * age)
	for dials.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connection(s) in %s with MaxConnectionAge %s; want the client to reconnect", dials.Load(), 20*age, age)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("call failed around a connection-age GOAWAY: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConnectionAgeFlagsAndDefaults(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		age, grac time.Duration
	}{
		{"defaults", nil, nil, DefaultMaxConnectionAge, DefaultMaxCallDuration},
		{"environment", map[string]string{"MAX_CONNECTION_AGE": "1m", "MAX_CALL_DURATION": "45s"}, nil, time.Minute, 45 * time.Second},
		{"flag wins", map[string]string{"MAX_CONNECTION_AGE": "1m"}, []string{"--max-connection-age=2m"}, 2 * time.Minute, DefaultMaxCallDuration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := config.New(flag.NewFlagSet("test", flag.ContinueOnError), func(k string) string { return tt.env[k] })
			f := BindFlags(b, "test", "127.0.0.1:0", "127.0.0.1:0")
			if err := b.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			cfg := f.Config()
			if cfg.MaxConnectionAge != tt.age || cfg.MaxCallDuration != tt.grac {
				t.Fatalf("age %s grace %s, want %s %s", cfg.MaxConnectionAge, cfg.MaxCallDuration, tt.age, tt.grac)
			}
		})
	}
	// A Config built in code without them gets the same defaults.
	srv, err := New(Config{Name: "test"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.GRPC().Stop() // never run: stops its stream workers
	if srv.cfg.MaxConnectionAge != DefaultMaxConnectionAge || srv.cfg.MaxCallDuration != DefaultMaxCallDuration {
		t.Fatalf("zero Config: age %s grace %s", srv.cfg.MaxConnectionAge, srv.cfg.MaxCallDuration)
	}
}
