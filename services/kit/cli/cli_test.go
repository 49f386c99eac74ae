package cli

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestHealth(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	// A port where nothing listens.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	_ = closed.Close()

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"server", []string{"--addr", lis.Addr().String()}, 0, "SERVING"},
		{"serving service", []string{"--addr", lis.Addr().String(), "--service", "up"}, 0, "SERVING"},
		{"not serving", []string{"--addr", lis.Addr().String(), "--service", "down"}, 1, "NOT_SERVING"},
		{"unknown service", []string{"--addr", lis.Addr().String(), "--service", "nope"}, 1, ""},
		{"nothing listens", []string{"--addr", closedAddr, "--timeout", "300ms"}, 1, ""},
		{"bad flag", []string{"--nope"}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Health(tt.args, "unused", &out, &errOut)
			if code != tt.wantCode {
				t.Fatalf("code %d, want %d (stderr %q)", code, tt.wantCode, errOut.String())
			}
			if tt.wantOut != "" && strings.TrimSpace(out.String()) != tt.wantOut {
				t.Fatalf("stdout %q, want %q", out.String(), tt.wantOut)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	if v := Version("memory"); !strings.HasPrefix(v, "memory ") {
		t.Fatalf("Version = %q", v)
	}
}
