package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// faultProxy sits between a service and PostgreSQL on loopback and plays
// the two failures docs/design.md budgets for, without root or firewall rules:
//
//   - down: the listener and every connection close, so connects are
//     refused (PostgreSQL died);
//   - freeze: connections stay open but no byte moves in either direction
//     and new connections are accepted but never answered, the way a
//     network that silently drops packets looks to the client; thaw lets
//     the held bytes through, like TCP retransmission after the path heals.
//
// It owns every goroutine it starts; close ends them all.
type faultProxy struct {
	target string
	addr   string // fixed after the first listen, so "up" reuses the port

	mu     sync.Mutex
	cond   *sync.Cond
	ln     net.Listener
	frozen bool
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newFaultProxy(target string) (*faultProxy, error) {
	p := &faultProxy{target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	if err := p.up("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return p, nil
}

// Addr is where clients connect.
func (p *faultProxy) Addr() string { return p.addr }

func (p *faultProxy) up(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("proxy listen %s: %w", addr, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = ln.Close()
		return errors.New("proxy closed")
	}
	p.ln, p.addr = ln, ln.Addr().String()
	p.wg.Go(func() { p.accept(ln) })
	return nil
}

// Up listens again on the same port after Down.
func (p *faultProxy) Up() error {
	p.mu.Lock()
	running := p.ln != nil
	p.mu.Unlock()
	if running {
		return nil
	}
	var err error
	// The port was just ours; a few retries cover a slow release.
	for range 50 {
		if err = p.up(p.addr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Down closes the listener and all connections.
func (p *faultProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropAllLocked()
}

func (p *faultProxy) dropAllLocked() {
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
	p.frozen = false
	p.cond.Broadcast()
}

// Freeze stops all traffic without closing anything; Thaw resumes it.
func (p *faultProxy) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

func (p *faultProxy) Thaw() {
	p.mu.Lock()
	p.frozen = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Close ends the proxy and waits for its goroutines.
func (p *faultProxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.dropAllLocked()
	p.mu.Unlock()
	p.wg.Wait()
}

// waitThawed blocks while frozen; it reports false when conn was closed
// meanwhile (Down or Close).
func (p *faultProxy) waitThawed(conn net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.frozen && !p.closed {
		if _, open := p.conns[conn]; !open {
			return false
		}
		p.cond.Wait()
	}
	_, open := p.conns[conn]
	return open && !p.closed
}

func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *faultProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.cond.Broadcast()
	p.mu.Unlock()
	_ = c.Close()
}

func (p *faultProxy) accept(ln net.Listener) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return // closed by Down or Close
		}
		if !p.track(client) {
			_ = client.Close()
			return
		}
		p.wg.Go(func() { p.serve(client) })
	}
}

func (p *faultProxy) serve(client net.Conn) {
	defer p.untrack(client)
	// A frozen network answers nothing, not even the connect upstream.
	if !p.waitThawed(client) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	server, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		return
	}
	if !p.track(server) {
		_ = server.Close()
		return
	}
	defer p.untrack(server)
	var pair sync.WaitGroup
	pair.Go(func() { p.pipe(server, client) })
	pair.Go(func() { p.pipe(client, server) })
	pair.Wait()
}

// pipe copies src to dst, holding each chunk while frozen; it closes both
// ends when either fails so its partner returns too.
func (p *faultProxy) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitThawed(src) || !p.waitThawed(dst) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
