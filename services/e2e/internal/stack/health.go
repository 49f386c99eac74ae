package stack

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Dial returns a plaintext client connection to addr, closed at cleanup.
func Dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Serving and NotServing are the two statuses the suites wait for.
const (
	Serving    = healthpb.HealthCheckResponse_SERVING
	NotServing = healthpb.HealthCheckResponse_NOT_SERVING
)

// Check asks conn's health service for service, under timeout.
func Check(conn *grpc.ClientConn, service string, timeout time.Duration) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, err
	}
	return resp.GetStatus(), nil
}

// pollEvery is how often WaitHealth asks: fine enough that the measured
// times are within 10 ms of the real change.
const pollEvery = 10 * time.Millisecond

// WaitHealth polls until service reports want, and returns the time from
// since to the first answer that did. It fails after within has passed
// since since, reporting the last answer.
func WaitHealth(conn *grpc.ClientConn, service string, want healthpb.HealthCheckResponse_ServingStatus, since time.Time, within time.Duration) (time.Duration, error) {
	deadline := since.Add(within)
	var (
		last    healthpb.HealthCheckResponse_ServingStatus
		lastErr error
	)
	for {
		last, lastErr = Check(conn, service, 250*time.Millisecond)
		if lastErr == nil && last == want {
			return time.Since(since), nil
		}
		if time.Now().After(deadline) {
			return time.Since(since), fmt.Errorf("health %q: not %s within %s of the event: last status %s, error %v",
				service, want, within, last, lastErr)
		}
		time.Sleep(pollEvery)
	}
}

// MustWaitHealth is WaitHealth failing the test.
func MustWaitHealth(t testing.TB, conn *grpc.ClientConn, service string, want healthpb.HealthCheckResponse_ServingStatus, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	d, err := WaitHealth(conn, service, want, since, within)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// WaitListening polls until something accepts TCP connections at addr and
// returns the time from since. A process's gRPC port accepting is the
// earliest moment a client can get any answer from it.
func WaitListening(addr string, since time.Time, within time.Duration) (time.Duration, error) {
	deadline := since.Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return time.Since(since), nil
		}
		if time.Now().After(deadline) {
			return time.Since(since), fmt.Errorf("nothing listens at %s %s after start: %v", addr, within, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
