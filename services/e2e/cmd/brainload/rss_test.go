package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    int64
		wantErr bool
	}{
		{"typical", "Name:\tmemory\nVmPeak:\t  900 kB\nVmRSS:\t   22624 kB\nRssAnon:\t 1 kB\n", 22624, false},
		{"missing (kernel thread)", "Name:\tkthreadd\nState:\tS\n", 0, true},
		{"odd unit", "VmRSS:\t 12 MB\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmRSS(tt.status)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parseVmRSS = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestListeningOn(t *testing.T) {
	const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
	tests := []struct {
		name, line string
		port       int
		inode      string
		ok         bool
	}{
		{"listen v4", "   0: 0100007F:4A93 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0", 0x4A93, "123456", true},
		{"listen v6", "   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0", 8081, "777", true},
		{"established", "   2: 0100007F:4A93 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 20 4 30 10 -1", 0x4A93, "", false},
		{"other port", "   0: 0100007F:4A93 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1", 9091, "", false},
		{"header", header, 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inode, ok := listeningOn(tt.line, tt.port)
			if ok != tt.ok || inode != tt.inode {
				t.Fatalf("listeningOn = %q, %v; want %q, %v", inode, ok, tt.inode, tt.ok)
			}
		})
	}
}

// TestPidListeningOnFindsThisProcess: the real /proc, a listener of ours.
func TestPidListeningOnFindsThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp on this system")
	}
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	proc := procFS{root: "/proc"}
	pid, err := proc.pidListeningOn(l.Addr().String())
	if err != nil || pid != os.Getpid() {
		t.Fatalf("pidListeningOn = %d, %v; want %d", pid, err, os.Getpid())
	}
	if kb, err := proc.rssKB(pid); err != nil || kb <= 0 {
		t.Fatalf("rssKB = %d, %v", kb, err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := proc.pidListeningOn(addr); err == nil {
		t.Fatal("found a listener on a closed port")
	}
}

func TestSamplerPeakPerWindow(t *testing.T) {
	root := t.TempDir()
	write := func(kb string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, "42"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "42", "status"), []byte("Name:\tx\nVmRSS:\t"+kb+" kB\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := newSampler(procFS{root: root}, map[string]int{"svc": 42, "gone": 43}, time.Millisecond)
	write("1000")
	s.sampleOnce()
	mid := time.Now()
	time.Sleep(2 * time.Millisecond)
	write("5000")
	s.sampleOnce()
	write("3000")
	s.sampleOnce()
	if kb, ok := s.peak("svc", time.Time{}, mid); !ok || kb != 1000 {
		t.Fatalf("peak before mid = %d, %v; want 1000", kb, ok)
	}
	if kb, ok := s.peak("svc", mid, time.Now()); !ok || kb != 5000 {
		t.Fatalf("peak after mid = %d, %v; want 5000", kb, ok)
	}
	if _, ok := s.peak("gone", time.Time{}, time.Now()); ok {
		t.Fatal("a process without status has a peak")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	before := len(s.samples)
	s.run(ctx) // returns when ctx ends
	if len(s.samples) <= before {
		t.Fatal("run took no samples")
	}
}
