package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/brainhq/brain/services/e2e/internal/stack"
	"github.com/brainhq/brain/services/kit/child"
)

// TestDevstackStopsEverythingOnEveryExit runs `make run`'s devstack (the
// built binary, its own PostgreSQL under a run directory) and ends it each
// way a developer does: Ctrl-C under `make run | tee log` (tee is gone, so
// devstack's stdout is a closed pipe when it prints "stopping"), a closed
// terminal (SIGHUP), SIGTERM, and devstack itself killed. Each time,
// PostgreSQL, memory and the orchestrator must be gone and their ports free.
// The cases share the run directory, so only the first pays for initdb; the
// kill comes last because it leaves PostgreSQL to crash recovery.
func TestDevstackStopsEverythingOnEveryExit(t *testing.T) {
	skipShort(t)
	devstack := buildDevstack(t)
	// Not t.TempDir: that is 0700, and as root PostgreSQL runs as another
	// user that must reach its data directory.
	runDir, err := os.MkdirTemp("", "brain-devstack-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(runDir) })
	if err := os.Chmod(runDir, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		closeOut   bool // the reader of devstack's stdout goes away first
		sig        syscall.Signal
		wantStatus string // how devstack itself ends
	}{
		{"ctrl-c with stdout a closed pipe", true, syscall.SIGINT, "exit status 0"},
		{"terminal closed", false, syscall.SIGHUP, "exit status 0"},
		{"sigterm", false, syscall.SIGTERM, "exit status 0"},
		{"devstack killed", false, syscall.SIGKILL, "signal: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := startDevstack(t, devstack, runDir)
			kids := ds.children(t)
			if len(kids) != 3 {
				t.Fatalf("devstack's children %v; want postgres, memory and orchestrator", kids)
			}
			if tt.closeOut {
				ds.closeStdout()
			}
			start := time.Now()
			if err := ds.cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			const bound = 20 * time.Second // children drain for at most DRAIN_TIMEOUT (10 s)
			select {
			case <-ds.proc.Done():
			case <-time.After(bound):
				t.Fatalf("devstack still running %s after %v", bound, tt.sig)
			}
			if got := ds.status(); got != tt.wantStatus {
				t.Errorf("devstack ended with %q, want %q; stderr:\n%s", got, tt.wantStatus, ds.stderr.String())
			}
			deadline := start.Add(bound)
			for pid, name := range kids {
				for alive(pid) {
					if time.Now().After(deadline) {
						t.Fatalf("%s (pid %d) still running %s after devstack got %v", name, pid, bound, tt.sig)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			for _, addr := range ds.addrs {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					t.Errorf("%s still accepts connections", addr)
				}
			}
			t.Logf("%v: everything stopped within %s", tt.sig, time.Since(start).Round(time.Millisecond))
		})
	}
}

func buildDevstack(t *testing.T) string {
	t.Helper()
	root, err := stack.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), "devstack")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "./services/kit/cmd/devstack")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build devstack: %v\n%s", err, b)
	}
	return out
}

type devstackProc struct {
	cmd    *exec.Cmd
	addrs  []string
	stdout *os.File // read end of devstack's stdout
	stderr *bytes.Buffer
	proc   *child.Process

	closeOnce sync.Once
	readDone  chan struct{}
	leftovers map[int]string // children seen, to end if they outlive the test
}

// startDevstack launches devstack with its stdout on a pipe and waits until
// it says the stack is up.
func startDevstack(t *testing.T, bin, runDir string) *devstackProc {
	t.Helper()
	addrs := make([]string, 5)
	for i := range addrs {
		a, err := stack.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = a
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--bin-dir", filepath.Dir(bins.Memory), "--run-dir", runDir,
		"--pg-port", strconv.Itoa(stack.Port(addrs[4])),
		"--memory-grpc", addrs[0], "--memory-http", addrs[1],
		"--orchestrator-grpc", addrs[2], "--orchestrator-http", addrs[3])
	cmd.Env = []string{"BRAIN_SEED=false"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	ds := &devstackProc{cmd: cmd, addrs: addrs[:4], stdout: r, stderr: &bytes.Buffer{}, readDone: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = w, ds.stderr
	// If the test binary dies, devstack dies too (and, fixed, takes its
	// children along).
	proc, err := child.Start(cmd, syscall.SIGKILL)
	if err != nil {
		t.Fatal(err)
	}
	ds.proc = proc
	w.Close() // devstack holds the only write end now

	up := make(chan struct{})
	var mu sync.Mutex
	var out strings.Builder
	go func() {
		defer close(ds.readDone)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.HasPrefix(sc.Text(), "Brain is up") {
				close(up)
			}
		}
	}()
	t.Cleanup(func() {
		_ = ds.cmd.Process.Kill()
		<-ds.proc.Done()
		ds.closeStdout()
		// Whatever the test found left over (devstack's orphans) is ours
		// to end.
		for pid, name := range ds.leftovers {
			if alive(pid) && comm(pid) == name {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("devstack stdout:\n%s\nstderr:\n%s", out.String(), ds.stderr.String())
			mu.Unlock()
		}
	})
	select {
	case <-up:
	case <-ds.proc.Done():
		t.Fatalf("devstack exited during start-up: %v", ds.proc.Err())
	case <-time.After(90 * time.Second):
		t.Fatal("devstack not up within 90s")
	}
	return ds
}

// closeStdout closes the reading end: devstack's next write gets EPIPE.
func (ds *devstackProc) closeStdout() {
	ds.closeOnce.Do(func() {
		ds.stdout.Close()
		<-ds.readDone
	})
}

func (ds *devstackProc) status() string {
	if ds.proc.Err() == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(ds.proc.Err(), &ee) {
		return ee.String()
	}
	return ds.proc.Err().Error()
}

// children lists devstack's child processes (pid -> command name), found
// through /proc, and remembers them for cleanup.
func (ds *devstackProc) children(t *testing.T) map[int]string {
	t.Helper()
	kids := map[int]string{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		j := strings.IndexByte(s, '(')
		if i < 0 || j < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == ds.cmd.Process.Pid {
			kids[pid] = s[j+1 : i]
		}
	}
	ds.leftovers = kids
	return kids
}

// alive reports whether pid still runs (a zombie does not count).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}
