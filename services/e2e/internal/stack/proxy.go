package stack

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP proxy to one target that can be switched to drop traffic
// silently: while dropping it accepts connections and reads what arrives
// but forwards nothing, in either direction, and closes nothing, so both
// ends see a peer that simply stops answering (the prototype's failure, a
// firewall dropping packets). Switched back, held data flows again.
type Proxy struct {
	addr   string // fixed at the first listen: Up listens on it again
	target string

	mu       sync.Mutex
	ln       net.Listener  // nil while down
	open     chan struct{} // closed while forwarding
	conns    map[net.Conn]struct{}
	accepted int

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // every goroutine the proxy started
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	p := &Proxy{
		addr:   ln.Addr().String(),
		ln:     ln,
		target: target,
		open:   make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
		closed: make(chan struct{}),
	}
	close(p.open)
	p.wg.Add(1)
	go p.accept(ln)
	return p, nil
}

// NewBlackhole listens on a free loopback port, accepts every connection and
// never answers nor closes one: a server that takes the TCP handshake and
// then says nothing.
func NewBlackhole() (*Proxy, error) {
	p, err := NewProxy("127.0.0.1:1") // never dialled: the gate never opens
	if err != nil {
		return nil, err
	}
	p.Drop()
	return p, nil
}

// Addr is the proxy's listen address.
func (p *Proxy) Addr() string { return p.addr }

// Down closes the listener and every connection, as a dead server would:
// connects are refused until Up.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
}

// Up listens again on the same address after Down.
func (p *Proxy) Up() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		return errors.New("proxy closed")
	default:
	}
	if p.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("proxy listen %s: %w", p.addr, err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// Drop stops forwarding without closing anything.
func (p *Proxy) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default: // already dropping
	}
}

// Forward resumes forwarding.
func (p *Proxy) Forward() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// Dropping reports whether the proxy is dropping traffic.
func (p *Proxy) Dropping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		return false
	default:
		return true
	}
}

// Accepted is the number of connections accepted so far: each is a
// client's connection attempt.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Close stops the proxy, closes every connection and waits for its
// goroutines.
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.mu.Lock()
		close(p.closed)
		if p.ln != nil {
			err = p.ln.Close()
			p.ln = nil
		}
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return err
}

// gate blocks while the proxy drops traffic; false means it was closed.
func (p *Proxy) gate() bool {
	p.mu.Lock()
	open := p.open
	p.mu.Unlock()
	select {
	case <-open:
		return true
	case <-p.closed:
		return false
	}
}

// track registers c to be closed by Close; false when already closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		_ = c.Close()
		return false
	default:
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				select {
				case <-p.closed:
				case <-time.After(10 * time.Millisecond): // transient (EMFILE): back off
					continue
				}
			}
			return
		}
		if !p.track(c) {
			return
		}
		p.mu.Lock()
		p.accepted++
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve connects a client to the target once traffic flows and pipes both
// ways; a connection accepted while dropping waits, as a SYN would.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	if !p.gate() {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.pipe(server, client)
	}()
	go func() {
		defer wg.Done()
		p.pipe(client, server)
	}()
	wg.Wait()
}

// pipe copies src to dst, holding every chunk (and the end of the stream)
// while dropping. When either side ends, both connections are closed.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer func() {
		_ = dst.Close()
		_ = src.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if !p.gate() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF included: the close is passed on as a close
			return
		}
	}
}
