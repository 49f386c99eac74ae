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

func main() {
	os.Exit(cli.Dispatch("orchestrator", []cli.Command{
		{Name: "serve", Summary: "serve gRPC and HTTP (the default)", Run: func(args []string, _, stderr io.Writer) int { return serve(args, stderr) }},
		cli.HealthCommand(os.Getenv, ":9090"),
		cli.VersionCommand("orchestrator"),
	}, os.Args[1:], os.Stdout, os.Stderr))
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
