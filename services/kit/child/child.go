// Package child starts child processes that die with the process that
// started them. Linux delivers a parent-death signal (Pdeathsig) when the
// *thread* that forked the child exits, not the process, and the Go runtime
// retires threads freely; so the start runs on a goroutine locked to its OS
// thread that lives until the child has exited. Used by the PostgreSQL test
// harness, `make run`'s devstack and the end-to-end tooling.
package child

import (
	"os/exec"
	"runtime"
	"syscall"
)

// Process is a started child.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts cmd with Pdeathsig set to sig (keeping the rest of
// cmd.SysProcAttr), and waits for it in the background.
func Start(cmd *exec.Cmd, sig syscall.Signal) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
	p := &Process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() { // owned by p: ends when the child does
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Done is closed when the child has exited and been waited for.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the child's exit status (as exec.Cmd.Wait reports it); valid once
// Done is closed.
func (p *Process) Err() error { return p.err }

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the child.
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the child has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
