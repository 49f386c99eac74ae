package stack

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/brainhq/brain/services/kit/child"
)

// Spec describes a process to start.
type Spec struct {
	// Name labels the process in logs and failures ("memory").
	Name string
	Bin  string
	Args []string
	// Env is the whole environment (KEY=VALUE); nothing is inherited, so a
	// DATABASE_URL in the test's own environment cannot leak in.
	Env []string
	// GRPCAddr and HTTPAddr are where the process was told to listen.
	GRPCAddr, HTTPAddr string
}

// Process is a running binary. Its logs (stdout and stderr) are kept in
// memory and printed when the test that started it fails.
type Process struct {
	Spec
	// Started is when the process was launched.
	Started time.Time

	cmd  *exec.Cmd
	logs *logBuffer
	done <-chan struct{} // closed once the process has exited and been waited for
}

// Start launches spec in its own process group and registers a cleanup that
// kills the group and, if the test failed, prints the process's log tail.
// The process also dies with the test binary (parent-death signal), so none
// outlives it even when the binary is killed.
func Start(t testing.TB, spec Spec) *Process {
	t.Helper()
	p, err := launch(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s (pid %d) log, last 16 KiB:\n%s", p.Name, p.Pid(), p.LogTail(16<<10))
		}
	})
	return p
}

func launch(spec Spec) (*Process, error) {
	cmd := exec.Command(spec.Bin, spec.Args...)
	cmd.Env = spec.Env
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	// Its own process group (Kill takes the group), and it dies with the
	// test binary (child.Start's parent-death signal).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &Process{Spec: spec, cmd: cmd, logs: logs, Started: time.Now()}
	proc, err := child.Start(cmd, syscall.SIGKILL)
	if err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Bin, err)
	}
	p.done = proc.Done()
	return p, nil
}

// Pid is the process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	return nil
}

// Kill kills the whole process group and waits for the process to exit.
// Killing an exited process is a no-op.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when killed by a signal); ok is false on timeout.
func (p *Process) Wait(timeout time.Duration) (code int, ok bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), true
	case <-t.C:
		return 0, false
	}
}

// Logs returns everything the process wrote so far.
func (p *Process) Logs() string { return p.logs.String() }

// LogTail returns at most the last n bytes of the log.
func (p *Process) LogTail(n int) string {
	s := p.logs.String()
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}

// logBuffer is an io.Writer safe for the two pipe-copying goroutines of
// exec.Cmd and readers in the test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// maxLog bounds the memory a chatty process can take; older output is
// dropped first.
const maxLog = 8 << 20

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) > maxLog {
		keep := b.buf.Bytes()[b.buf.Len()-min(b.buf.Len(), maxLog/2):]
		rest := append([]byte(nil), keep...)
		b.buf.Reset()
		b.buf.WriteString("[earlier output dropped]\n")
		b.buf.Write(rest)
	}
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
