// Package stack runs Brain's binaries as real processes on loopback for the
// end-to-end, fault and bad-input suites: it builds them once, starts them
// with an explicit environment, captures their logs, kills whatever is left
// at cleanup, and provides the pieces the suites need around them (health
// polling, a TCP proxy that can silently drop traffic, a table of
// measurements).
package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"
)

// Binaries are the built memory and orchestrator executables.
type Binaries struct {
	Memory       string
	Orchestrator string
	// BuildTime is how long `go build` took.
	BuildTime time.Duration
}

// RepoRoot walks up from dir to the directory holding go.work.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.work in %s or any parent", dir)
		}
	}
}

// Build compiles both binaries from the repository at root into outDir.
func Build(ctx context.Context, root, outDir string) (Binaries, error) {
	goBin, err := goCommand()
	if err != nil {
		return Binaries{}, err
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", outDir+string(filepath.Separator),
		"./services/memory/cmd/memory", "./services/orchestrator/cmd/orchestrator")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Binaries{}, fmt.Errorf("go build in %s: %w\n%s", root, err, out)
	}
	b := Binaries{
		Memory:       filepath.Join(outDir, "memory"),
		Orchestrator: filepath.Join(outDir, "orchestrator"),
		BuildTime:    time.Since(start),
	}
	for _, p := range []string{b.Memory, b.Orchestrator} {
		if _, err := os.Stat(p); err != nil {
			return Binaries{}, fmt.Errorf("go build did not produce %s: %w", p, err)
		}
	}
	return b, nil
}

// goCommand finds the go tool: on PATH, else beside the running toolchain.
func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", errors.New("the go command is not on PATH nor in GOROOT/bin")
}
