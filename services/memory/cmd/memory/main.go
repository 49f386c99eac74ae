// Command memory is Brain's episodic memory service.
//
//	memory [serve]   serve gRPC and HTTP (default)
//	memory migrate   apply the embedded database migrations
//	memory doctor    run the PostgreSQL connectivity ladder
//	memory health    gRPC health check (exit 0 when SERVING)
//	memory version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"go.uber.org/zap"

	"github.com/brainhq/brain/services/kit/cli"
	"github.com/brainhq/brain/services/kit/config"
	"github.com/brainhq/brain/services/memory/app"
	"github.com/brainhq/brain/services/memory/doctor"
	"github.com/brainhq/brain/services/memory/pgconn"
	"github.com/brainhq/brain/services/memory/store"
)

func main() {
	os.Exit(cli.Dispatch("memory", []cli.Command{
		{Name: "serve", Summary: "serve gRPC and HTTP (the default)", Run: func(args []string, _, stderr io.Writer) int { return serve(args, stderr) }},
		{Name: "migrate", Summary: "apply the embedded database migrations", Run: migrate},
		{Name: "doctor", Summary: "run the PostgreSQL connectivity ladder", Run: doctorCmd},
		cli.HealthCommand(os.Getenv, ":9091"),
		cli.VersionCommand("memory"),
	}, os.Args[1:], os.Stdout, os.Stderr))
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("memory serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	b := config.New(fs, os.Getenv)
	flags := app.BindFlags(b)
	if err := b.Parse(args); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	db, err := pgconn.FromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "memory: %v\n", err)
		return 2
	}
	cfg := flags.Config(db)
	return cli.Serve("memory", cfg.LogLevel, stderr, func(log *zap.Logger) (cli.Runner, error) {
		return app.New(cfg, log)
	})
}

func migrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("memory migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	db, err := pgconn.FromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "memory migrate: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := app.Migrate(ctx, db); err != nil {
		fmt.Fprintf(stderr, "memory migrate: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "schema at version %d\n", store.SchemaVersion)
	return 0
}

func doctorCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("memory doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stepTimeout := fs.Duration("step-timeout", doctor.DefaultStepTimeout, "timeout of each step")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	db, err := pgconn.FromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL %-8s %v\n     hint: fix the environment (DATABASE_URL or POSTGRES_HOST/PORT/USER/DB with POSTGRES_PASSWORD_FILE)\n", doctor.StepConfig, err)
		return 1
	}
	_, ok := doctor.Run(context.Background(), db, stdout, doctor.Options{
		StepTimeout:           *stepTimeout,
		ExpectedSchemaVersion: store.SchemaVersion,
		SchemaVersion: func(ctx context.Context, conn *pgx.Conn) (int64, error) {
			return store.ReadSchemaVersion(ctx, conn)
		},
	})
	if !ok {
		return 1
	}
	return 0
}
