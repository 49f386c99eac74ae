package child

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The child gets the parent-death signal and keeps the other process
// attributes it was given; Done and Err report its exit.
func TestStart(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := Start(cmd, syscall.SIGTERM)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.SysProcAttr.Pdeathsig != syscall.SIGTERM || !cmd.SysProcAttr.Setpgid {
		t.Fatalf("attributes %+v", cmd.SysProcAttr)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("child did not exit")
	}
	var exit *exec.ExitError
	if !errors.As(p.Err(), &exit) || exit.ExitCode() != 3 || !p.Exited() {
		t.Fatalf("exit %v, exited %v", p.Err(), p.Exited())
	}
}

func TestStartFails(t *testing.T) {
	if _, err := Start(exec.Command("/nonexistent/binary"), syscall.SIGKILL); err == nil {
		t.Fatal("started a binary that does not exist")
	}
}

// The effect, not just the attribute: a child whose parent (this test
// binary, run again as a helper) is killed with SIGKILL dies too, although
// the parent had no chance to stop it.
func TestChildDiesWithItsParent(t *testing.T) {
	if os.Getenv("CHILD_HELPER") == "1" {
		p, err := Start(exec.Command("sleep", "60"), syscall.SIGKILL)
		if err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString(strconv.Itoa(p.cmd.Process.Pid) + "\n")
		time.Sleep(time.Minute)
		return
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithItsParent$")
	parent.Env = append(os.Environ(), "CHILD_HELPER=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		_ = parent.Process.Kill()
		t.Fatalf("helper said %q", buf[:n])
	}
	_ = parent.Process.Kill()
	_ = parent.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d outlived its parent", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
