package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/brainhq/brain/services/e2e/internal/stack"
	"github.com/brainhq/brain/services/kit/child"
)

// service is a service binary brainload started itself (for the start-up,
// dead-postgres and outage measurements). It dies with brainload (the
// parent-death signal of kit/child) even if brainload is killed.
type service struct {
	name    string
	proc    *child.Process
	started time.Time
	logPath string
}

// spawnChild starts `bin serve` with exactly env (plus PATH and HOME), so
// nothing of the caller's environment (DATABASE_URL, GRPC_ADDR, ...) leaks
// in, logging to logDir/<name>.log.
func spawnChild(bin, name, logDir string, env []string) (*service, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make build`)", bin, err)
	}
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	started := time.Now()
	p, err := child.Start(cmd, syscall.SIGKILL)
	if err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &service{name: name, proc: p, started: started, logPath: logPath}
	go func() { // owned by c: ends when the process does
		<-p.Done()
		_ = logFile.Close()
	}()
	return c, nil
}

// stop sends SIGTERM and waits for the drain, then kills.
func (c *service) stop() {
	_ = c.proc.Signal(syscall.SIGTERM)
	select {
	case <-c.proc.Done():
	case <-time.After(15 * time.Second):
		_ = c.proc.Signal(syscall.SIGKILL)
		<-c.proc.Done()
	}
}

func (c *service) exited() bool { return c.proc.Exited() }

// freeLoopbackAddr is a loopback address nothing listens on (stack.FreeAddr:
// outside the ephemeral range, so no outgoing connection takes it first).
func freeLoopbackAddr() (string, error) { return stack.FreeAddr() }

// dialFast is a gRPC client that retries a refused connect every 5 ms
// instead of gRPC's default 1 s backoff, so start-up times are not rounded
// up to the backoff.
func dialFast(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 5 * time.Millisecond, Multiplier: 1, MaxDelay: 5 * time.Millisecond},
			MinConnectTimeout: 200 * time.Millisecond,
		}))
}

// healthIs asks one health service once, with a short deadline.
func healthIs(ctx context.Context, h healthpb.HealthClient, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	cctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	resp, err := h.Check(cctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, err
	}
	return resp.GetStatus(), nil
}

// waitStatus polls service every 5 ms until it reports want, and returns
// the time since from. It fails after limit, or when c (if not nil) exits.
func waitStatus(ctx context.Context, h healthpb.HealthClient, service string, want healthpb.HealthCheckResponse_ServingStatus,
	from time.Time, limit time.Duration, c *service) (time.Duration, error) {
	deadline := from.Add(limit)
	var last error
	for time.Now().Before(deadline) {
		st, err := healthIs(ctx, h, service)
		if err == nil && st == want {
			return time.Since(from), nil
		}
		if err == nil {
			err = fmt.Errorf("health %q is %s", service, st)
		}
		last = err
		if c != nil && c.exited() {
			return 0, fmt.Errorf("%s exited (log %s): %w", c.name, c.logPath, last)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return 0, errors.Join(fmt.Errorf("health %q not %s within %s", service, want, limit), last)
}
