package main

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"
)

// echoServer answers each line with the same line; closed at cleanup.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// roundTrip sends a line through conn and waits at most wait for the echo.
func roundTrip(conn net.Conn, r *bufio.Reader, wait time.Duration) error {
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	_, err := r.ReadString('\n')
	return err
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func TestFaultProxy(t *testing.T) {
	px, err := newFaultProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()

	c, r := dial(t, px.Addr())
	if err := roundTrip(c, r, time.Second); err != nil {
		t.Fatalf("pass-through: %v", err)
	}

	// Frozen: nothing comes back, but nothing is closed either.
	px.Freeze()
	if err := roundTrip(c, r, 150*time.Millisecond); err == nil {
		t.Fatal("an answer came through a frozen proxy")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("frozen: %v, want a timeout (silence, not a reset)", err)
	}
	fresh, freshR := dial(t, px.Addr()) // accepted, never answered
	if err := roundTrip(fresh, freshR, 150*time.Millisecond); err == nil {
		t.Fatal("a new connection was answered while frozen")
	}
	// Thawed: the held bytes go through, like a retransmission.
	px.Thaw()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("held echo after thaw: %v", err)
	}

	// Down: connections close and connects are refused.
	px.Down()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection survived Down")
	}
	if c, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp", px.Addr()); err == nil {
		c.Close()
		t.Fatal("connect succeeded while down")
	}
	// Up: the same address works again.
	if err := px.Up(); err != nil {
		t.Fatal(err)
	}
	c2, r2 := dial(t, px.Addr())
	if err := roundTrip(c2, r2, time.Second); err != nil {
		t.Fatalf("after Up: %v", err)
	}
}

func TestFaultProxyCloseEndsFrozenConnections(t *testing.T) {
	px, err := newFaultProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c, r := dial(t, px.Addr())
	px.Freeze()
	_ = roundTrip(c, r, 50*time.Millisecond)
	done := make(chan struct{})
	go func() { px.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close hung on a frozen connection")
	}
}
