package cli

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/brainhq/brain/services/kit/logging"
)

// Runner is a built service that serves until its context ends.
type Runner interface {
	Run(ctx context.Context) error
}

// Serve makes the binary's logger, builds the service with it and runs it
// until SIGINT or SIGTERM, then returns the exit code (2 for bad
// configuration, 1 for a failure to build or serve).
func Serve(binary, logLevel string, stderr io.Writer, build func(*zap.Logger) (Runner, error)) int {
	log, err := logging.New(binary, logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", binary, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	svc, err := build(log)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", binary, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := svc.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", binary, err)
		return 1
	}
	return 0
}
