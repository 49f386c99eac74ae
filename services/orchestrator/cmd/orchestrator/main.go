// Command orchestrator is Brain's front door: it runs nine cognitive LAB
// layers over a query as a dependency graph and streams each result.
//
//	orchestrator [serve]   serve gRPC and HTTP (default)
//	orchestrator health    gRPC health check (exit 0 when SERVING)
//	orchestrator version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/brainhq/brain/services/kit/cli"
	"github.com/brainhq/brain/services/kit/config"
	"github.com/brainhq/brain/services/kit/logging"
	"github.com/brainhq/brain/services/orchestrator/app"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "health":
		return cli.Health(args, cli.LocalAddr(os.Getenv("GRPC_ADDR"), ":9090"), stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, cli.Version("orchestrator"))
		return 0
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: orchestrator [serve|health|version] [flags]; orchestrator <command> -h for flags")
		return 0
	default:
		fmt.Fprintf(stderr, "orchestrator: unknown command %q (serve, health, version)\n", cmd)
		return 2
	}
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("orchestrator serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	b := config.New(fs, os.Getenv)
	flags := app.BindFlags(b)
	if err := b.Parse(args); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	cfg := flags.Config()
	log, err := logging.New("orchestrator", cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	a, err := app.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "orchestrator: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "orchestrator: %v\n", err)
		return 1
	}
	return 0
}
