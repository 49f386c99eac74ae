// Command devstack is `make run`: it brings up PostgreSQL (a persistent
// cluster under .run/ from the installed binaries, unless DATABASE_URL or
// DATABASE_URL_FILE points elsewhere), the memory service and the orchestrator, waits until
// each is healthy, seeds a small demo memory on first start, prints where
// everything listens and what to try, and stops all of it on Ctrl-C.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/brainhq/brain/services/kit/child"
	"github.com/brainhq/brain/services/kit/config"
	"github.com/brainhq/brain/services/kit/pgtest"
)

func main() { os.Exit(run(os.Args[1:])) }

type options struct {
	binDir, runDir string
	pgPort         int
	seed           bool
	memoryGRPC     string
	memoryHTTP     string
	orchGRPC       string
	orchHTTP       string
}

func run(args []string) int {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	b := config.New(fs, os.Getenv)
	var o options
	fs.StringVar(&o.binDir, "bin-dir", "bin", "where bin/memory and bin/orchestrator are")
	fs.StringVar(&o.runDir, "run-dir", ".run", "state directory (PostgreSQL data, logs)")
	pgPort := b.Int("pg-port", "BRAIN_PG_PORT", 55432, "port of the local PostgreSQL (when DATABASE_URL is unset)")
	seed := b.Bool("seed", "BRAIN_SEED", true, "seed the demo namespace on start (idempotent)")
	fs.StringVar(&o.memoryGRPC, "memory-grpc", "127.0.0.1:9091", "memory gRPC address")
	fs.StringVar(&o.memoryHTTP, "memory-http", "127.0.0.1:8081", "memory HTTP address")
	fs.StringVar(&o.orchGRPC, "orchestrator-grpc", "127.0.0.1:9090", "orchestrator gRPC address")
	fs.StringVar(&o.orchHTTP, "orchestrator-http", "127.0.0.1:8080", "orchestrator HTTP address")
	if err := b.Parse(args); err != nil {
		return 2
	}
	o.pgPort, o.seed = *pgPort, *seed

	// `make run | tee log` and Ctrl-C: tee dies with devstack, and the next
	// line devstack prints would kill it with SIGPIPE before it stopped its
	// children (in their own process groups, so Ctrl-C does not reach them).
	// With SIGPIPE notified, such a write fails with EPIPE instead, and the
	// output is best effort. Notify rather than Ignore: an ignored signal
	// stays ignored in the children across exec.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	// SIGHUP: the terminal went away.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := up(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "devstack: %v\n", err)
		return 1
	}
	return 0
}

func up(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.runDir, 0o755); err != nil {
		return err
	}
	runDir, err := filepath.Abs(o.runDir)
	if err != nil {
		return err
	}
	memEnv := []string{
		"GRPC_ADDR=" + o.memoryGRPC, "HTTP_ADDR=" + o.memoryHTTP, "MIGRATE_ON_START=true",
	}
	if url, file := os.Getenv("DATABASE_URL"), os.Getenv("DATABASE_URL_FILE"); url != "" || file != "" {
		// memory inherits the variable (a URL with a password only as a file).
		fmt.Println("postgres      DATABASE_URL or DATABASE_URL_FILE (external)")
	} else {
		dataDir := filepath.Join(runDir, "postgres")
		fmt.Printf("postgres      starting a local cluster in %s ...\n", dataDir)
		startCtx, cancel := context.WithTimeout(ctx, time.Minute)
		cluster, err := pgtest.Start(startCtx, pgtest.Options{DataDir: dataDir, Port: o.pgPort})
		if errors.Is(err, pgtest.ErrNotTraversable) {
			// Running as root in a checkout the postgres user cannot reach
			// (under /root, say): keep the cluster where it can, one per
			// checkout.
			sum := sha256.Sum256([]byte(runDir))
			dataDir = filepath.Join(os.TempDir(), "brain-devstack-"+hex.EncodeToString(sum[:6]), "postgres")
			fmt.Printf("postgres      %s is not reachable by the postgres user; using %s\n", runDir, dataDir)
			cluster, err = pgtest.Start(startCtx, pgtest.Options{DataDir: dataDir, Port: o.pgPort})
		}
		cancel()
		if err != nil {
			return fmt.Errorf("start PostgreSQL: %w", err)
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "stop PostgreSQL: %v\n", err)
			}
		}()
		if _, err := cluster.CreateDatabase(ctx, "brain"); err != nil && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("create database: %w", err)
		}
		fmt.Printf("postgres      127.0.0.1:%d (user brain, database brain, password file %s)\n", cluster.Port(), cluster.PasswordFile())
		memEnv = append(memEnv,
			"POSTGRES_HOST=127.0.0.1", "POSTGRES_PORT="+strconv.Itoa(cluster.Port()),
			"POSTGRES_USER=brain", "POSTGRES_DB=brain", "POSTGRES_SSLMODE=disable",
			"POSTGRES_PASSWORD_FILE="+cluster.PasswordFile())
	}

	exited := make(chan string, 2)
	memory, err := spawn(filepath.Join(o.binDir, "memory"), memEnv, filepath.Join(runDir, "memory.log"), exited)
	if err != nil {
		return err
	}
	defer memory.stop()
	if err := waitServing(ctx, o.memoryGRPC, []string{"", "postgres"}, exited); err != nil {
		return fmt.Errorf("memory: %w (log: %s)", err, memory.logPath)
	}
	fmt.Printf("memory        gRPC %s  HTTP http://%s  (log %s)\n", o.memoryGRPC, o.memoryHTTP, memory.logPath)

	orch, err := spawn(filepath.Join(o.binDir, "orchestrator"), []string{
		"GRPC_ADDR=" + o.orchGRPC, "HTTP_ADDR=" + o.orchHTTP, "MEMORY_ADDR=" + o.memoryGRPC,
	}, filepath.Join(runDir, "orchestrator.log"), exited)
	if err != nil {
		return err
	}
	defer orch.stop()
	if err := waitServing(ctx, o.orchGRPC, []string{"", "memory", "memory/postgres"}, exited); err != nil {
		return fmt.Errorf("orchestrator: %w (log: %s)", err, orch.logPath)
	}
	fmt.Printf("orchestrator  gRPC %s  HTTP http://%s  (log %s)\n", o.orchGRPC, o.orchHTTP, orch.logPath)

	if o.seed {
		n, err := seedDemo(ctx, o.memoryGRPC)
		if err != nil {
			return fmt.Errorf("seed demo memory: %w", err)
		}
		fmt.Printf("seeded        %d demo episodes in namespace \"demo\" (opt out: BRAIN_SEED=false)\n", n)
	}
	printTryThis(o)

	select {
	case <-ctx.Done():
		fmt.Println("\nstopping ...")
		return nil
	case name := <-exited:
		return fmt.Errorf("%s exited unexpectedly", name)
	}
}

// service is memory or the orchestrator, started by devstack.
type service struct {
	name    string
	proc    *child.Process
	logPath string
}

func spawn(bin string, env []string, logPath string, exited chan<- string) (*service, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not built (run `make build`): %w", bin, err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: Ctrl-C reaches devstack, which stops children
	// in order (orchestrator first) instead of all at once. Whatever ends
	// devstack (SIGKILL, a crash, a panic in any goroutine), the kernel then
	// asks the child to stop (SIGTERM).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := child.Start(cmd, syscall.SIGTERM)
	if err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &service{name: filepath.Base(bin), proc: p, logPath: logPath}
	go func() { // owned by s: ends when the process does
		<-p.Done()
		_ = logFile.Close()
		select {
		case exited <- s.name:
		default:
		}
	}()
	return s, nil
}

func (s *service) stop() {
	_ = s.proc.Signal(syscall.SIGTERM)
	select {
	case <-s.proc.Done():
	case <-time.After(15 * time.Second):
		_ = s.proc.Signal(syscall.SIGKILL)
		<-s.proc.Done()
	}
	fmt.Printf("%-13s stopped\n", s.name)
}

// waitServing polls the gRPC health services until all are SERVING.
func waitServing(ctx context.Context, addr string, services []string, exited <-chan string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		last = nil
		for _, s := range services {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			resp, err := client.Check(cctx, &healthpb.HealthCheckRequest{Service: s})
			cancel()
			if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				err = fmt.Errorf("health %q is %s", s, resp.GetStatus())
			}
			if err != nil {
				last = err
				break
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case name := <-exited:
			return fmt.Errorf("%s exited during start-up", name)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.Join(errors.New("not healthy within 60s"), last)
}

func printTryThis(o options) {
	w := io.Writer(os.Stdout)
	fmt.Fprintf(w, `
Brain is up. Try:

  # stream all nine LABs over JSON (one line per LAB, then a summary)
  curl -N -X POST http://%[1]s/v1/orchestrate -d '{"namespace":"demo","query":"how did the deploy go?","goal":"ship the release"}'

  # the same over gRPC (reflection is on)
  grpcurl -plaintext -d '{"namespace":"demo","query":"how did the deploy go?"}' %[2]s brain.orchestrator.v1.OrchestratorService/Orchestrate

  # recall straight from memory, through the front door
  curl -X POST http://%[1]s/v1/memory/episodes:recall -d '{"namespace":"demo","query":"database migration"}'

  # health of everything in one call, and readiness with reasons
  grpcurl -plaintext -d '{"service":"memory/postgres"}' %[2]s grpc.health.v1.Health/Check
  curl http://%[1]s/readyz?verbose

Ctrl-C stops everything.
`, o.orchHTTP, o.orchGRPC)
}
