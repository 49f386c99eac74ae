package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procFS reads a /proc tree; tests point it at a fake one.
type procFS struct{ root string }

// rssKB reads VmRSS (kB) of pid from <root>/<pid>/status.
func (p procFS) rssKB(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) (int64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", strings.TrimSpace(line))
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New("no VmRSS line (kernel thread or exited process)")
}

// listenerInodes returns the socket inodes listening on port, from
// <root>/net/tcp and <root>/net/tcp6.
func (p procFS) listenerInodes(port int) (map[string]bool, error) {
	inodes := map[string]bool{}
	read := 0
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join(p.root, "net", f))
		if err != nil {
			continue
		}
		read++
		for line := range strings.Lines(string(b)) {
			if inode, ok := listeningOn(line, port); ok {
				inodes[inode] = true
			}
		}
	}
	if read == 0 {
		return nil, fmt.Errorf("no %s/net/tcp or tcp6", p.root)
	}
	return inodes, nil
}

// listeningOn parses one /proc/net/tcp line: "sl local rem st ... inode".
// It reports the inode when the socket is in LISTEN (0A) on port.
func listeningOn(line string, port int) (string, bool) {
	f := strings.Fields(line)
	if len(f) < 10 || f[3] != "0A" {
		return "", false
	}
	_, hexPort, ok := strings.Cut(f[1], ":")
	if !ok {
		return "", false
	}
	n, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil || int(n) != port {
		return "", false
	}
	return f[9], true
}

// pidListeningOn finds the process that holds the listening socket of addr
// (host:port), by matching socket inodes against every process's open file
// descriptors. It identifies exactly the service under test even when other
// copies of the same binary run on the machine.
func (p procFS) pidListeningOn(addr string) (int, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return 0, fmt.Errorf("address %q: port: %w", addr, err)
	}
	inodes, err := p.listenerInodes(port)
	if err != nil {
		return 0, err
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("nothing listens on port %d", port)
	}
	dirs, err := os.ReadDir(p.root)
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(p.root, d.Name(), "fd"))
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(p.root, d.Name(), "fd", fd.Name()))
			if err != nil {
				continue
			}
			inode, ok := strings.CutPrefix(target, "socket:[")
			if ok && inodes[strings.TrimSuffix(inode, "]")] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no readable process holds the listener on port %d", port)
}

// rssSample is one reading of one service.
type rssSample struct {
	at      time.Time
	service string
	kb      int64
}

// sampler reads VmRSS of some processes every interval until its context
// ends; the caller owns it through run and reads samples after run returns.
type sampler struct {
	proc     procFS
	pids     map[string]int // service name -> pid
	interval time.Duration

	mu      sync.Mutex
	samples []rssSample
}

func newSampler(proc procFS, pids map[string]int, interval time.Duration) *sampler {
	return &sampler{proc: proc, pids: pids, interval: interval}
}

func (s *sampler) sampleOnce() {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, pid := range s.pids {
		kb, err := s.proc.rssKB(pid)
		if err != nil {
			continue // exited: its last samples stand
		}
		s.samples = append(s.samples, rssSample{at: now, service: name, kb: kb})
	}
}

// run samples until ctx ends.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	s.sampleOnce()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sampleOnce()
		}
	}
}

// peak is the largest sample of service within [from, to].
func (s *sampler) peak(service string, from, to time.Time) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best int64
	found := false
	for _, x := range s.samples {
		if x.service == service && !x.at.Before(from) && !x.at.After(to) && x.kb >= best {
			best, found = x.kb, true
		}
	}
	return best, found
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// loadavg reads the 1/5/15-minute load averages.
func loadavg(proc procFS) string {
	f, err := os.Open(filepath.Join(proc.root, "loadavg"))
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return "unknown"
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}
