// Command orchestrator is Brain's front door: it runs nine cognitive LAB
// layers over a query as a dependency graph and streams each result.
//
//	orchestrator [serve]   serve gRPC and HTTP (default)
//	orchestrator health    gRPC health check (exit 0 when SERVING)
//	orchestrator version
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/brainhq/brain/services/kit/cli"
	"github.com/brainhq/brain/services/kit/config"
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
	return cli.Serve("orchestrator", cfg.LogLevel, stderr, func(log *zap.Logger) (cli.Runner, error) {
		return app.New(cfg, log)
	})
}
