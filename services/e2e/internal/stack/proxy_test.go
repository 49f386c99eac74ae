package stack

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, msg string, timeout time.Duration) (string, error) {
	t.Helper()
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	return r.ReadString('\n')
}

func TestProxyDropsSilentlyAndResumes(t *testing.T) {
	p, err := NewProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)

	if got, err := roundTrip(t, c, r, "one", time.Second); err != nil || got != "one\n" {
		t.Fatalf("forwarding: got %q, %v", got, err)
	}
	if n := p.Accepted(); n != 1 {
		t.Errorf("Accepted() = %d, want 1", n)
	}
	p.Drop()
	if !p.Dropping() {
		t.Fatal("Dropping() = false after Drop")
	}
	// Nothing comes back, and the connection is not closed: a timeout, not EOF.
	got, err := roundTrip(t, c, r, "two", 200*time.Millisecond)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("dropping: got %q, %v; want a read timeout", got, err)
	}
	// A new connection is accepted but gets no answer either.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("dropping proxy refused a connection: %v", err)
	}
	defer c2.Close()
	r2 := bufio.NewReader(c2)
	if got, err := roundTrip(t, c2, r2, "three", 200*time.Millisecond); err == nil {
		t.Fatalf("new connection answered while dropping: %q", got)
	}

	p.Forward()
	// The held line arrives once traffic flows again.
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "two\n" {
		t.Fatalf("after Forward: got %q, %v; want the held line", got, err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(time.Second))
	if got, err := r2.ReadString('\n'); err != nil || got != "three\n" {
		t.Fatalf("after Forward, second connection: got %q, %v", got, err)
	}
}

func TestBlackholeAcceptsAndNeverAnswers(t *testing.T) {
	p, err := NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatalf("blackhole refused: %v", err)
	}
	defer c.Close()
	if got, err := roundTrip(t, c, bufio.NewReader(c), "hello", 150*time.Millisecond); err == nil {
		t.Fatalf("blackhole answered %q", got)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Close ends the held connection (EOF, or a reset since "hello" was
	// never read), rather than leaving it to time out.
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); err == nil || (ok && ne.Timeout()) {
		t.Fatalf("after Close: read error %v, want the connection closed", err)
	}
}

// Down is a dead server: connections close and connects are refused; Up
// listens on the same address again.
func TestProxyDownAndUp(t *testing.T) {
	p, err := NewProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if got, err := roundTrip(t, c, r, "one", time.Second); err != nil || got != "one\n" {
		t.Fatalf("pass-through: %q %v", got, err)
	}
	p.Down()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection survived Down")
	}
	if c, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Fatal("connect succeeded while down")
	}
	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(t, c2, bufio.NewReader(c2), "two", time.Second); err != nil || got != "two\n" {
		t.Fatalf("after Up: %q %v", got, err)
	}
}

// FreeAddr's ports stay out of the ephemeral range, where outgoing
// connections could take them.
func TestFreeAddrBelowEphemeralRange(t *testing.T) {
	lo := ephemeralStart()
	if lo <= lowestPort+1000 {
		t.Skipf("ephemeral range starts at %d", lo)
	}
	for range 20 {
		a, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if p := Port(a); p < lowestPort || p >= lo {
			t.Fatalf("port %d outside [%d, %d)", p, lowestPort, lo)
		}
	}
}
