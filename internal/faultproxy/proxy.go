// Package faultproxy is a TCP proxy for tests that degrades the link
// between a client and a server while both ends live: latency with
// jitter, a bandwidth cap, a black hole (bytes neither passed nor
// refused: the half-open connection a dropped route or a silent firewall
// leaves), connections reset mid-stream, and every write cut into slices
// of a few bytes. Start one in front of each server a test talks to (a
// Kafka broker must then advertise the proxy's address), and change its
// Fault while the test runs.
//
// It is written here rather than taken from toxiproxy because a black
// hole must also swallow new connections (toxiproxy dials the server for
// each one whatever its toxics say, so the server sees connections a
// black hole would never let through) and because the newest toxiproxy
// the module proxy serves is from 2022.
package faultproxy

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Fault is how the proxy degrades the link. The zero Fault passes bytes
// as they come. Each field applies to both directions.
type Fault struct {
	// Latency delays every chunk of bytes by this long, plus or minus
	// Jitter, keeping their order.
	Latency time.Duration
	// Jitter is the most a chunk's delay differs from Latency, drawn
	// uniformly.
	Jitter time.Duration
	// Bandwidth caps the bytes a second each connection passes each way; 0
	// is no cap.
	Bandwidth int
	// Blackhole holds every byte, and every new connection, until it is
	// lifted: nothing is passed, nothing is refused, no connection is
	// closed. Lifted, the bytes held flow again, as TCP's retransmissions
	// would deliver them after a route comes back.
	Blackhole bool
	// ResetAfter resets each connection (an RST to both ends) after it
	// has passed about this many bytes, in either direction: between half
	// and one and a half times it, drawn for each connection. 0 is never.
	ResetAfter int
	// Slice, when above 0, passes bytes in writes of at most this many,
	// each followed by SliceDelay: TCP segments of a few bytes.
	Slice int
	// SliceDelay is the pause after each slice.
	SliceDelay time.Duration
}

// Stats counts what the proxy did.
type Stats struct {
	// Accepted is the connections accepted from clients.
	Accepted int
	// Reset is the connections reset because of ResetAfter.
	Reset int
	// Bytes is the bytes passed, both directions together.
	Bytes int64
}

// Proxy passes TCP connections from its address to an upstream one,
// through the current Fault. It is safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	fault   Fault
	changed chan struct{} // closed and replaced when fault changes or the proxy closes
	closed  bool
	links   map[*link]struct{}
	stats   Stats
	wg      sync.WaitGroup
}

// New starts a proxy listening on listen (host:port; port 0 picks one)
// that passes connections to upstream. Close it when done.
func New(listen, upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen on %s: %w", listen, err)
	}
	p := &Proxy{ln: ln, upstream: upstream, changed: make(chan struct{}), links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Upstream is the address the proxy passes connections to.
func (p *Proxy) Upstream() string { return p.upstream }

// Set replaces the fault from now on, for the connections open and those
// to come.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
	p.notifyLocked()
}

// Heal is Set(Fault{}).
func (p *Proxy) Heal() { p.Set(Fault{}) }

// Fault returns the fault in force.
func (p *Proxy) Fault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// Stats returns what the proxy has done so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// ResetAll resets every open connection now, as a middlebox that lost its
// state would.
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.reset()
	}
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.notifyLocked()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// current returns the fault in force, a channel closed when it changes,
// and whether the proxy is closed.
func (p *Proxy) current() (Fault, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault, p.changed, p.closed
}

// waitOpen waits while a black hole holds; it reports false if the proxy
// closed or done was closed first.
func (p *Proxy) waitOpen(done <-chan struct{}) bool {
	for {
		f, changed, closed := p.current()
		switch {
		case closed:
			return false
		case !f.Blackhole:
			return true
		}
		select {
		case <-changed:
		case <-done:
			return false
		}
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.stats.Accepted++
		l := &link{p: p, client: c, done: make(chan struct{})}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go l.run()
	}
}

// link is one proxied connection.
type link struct {
	p      *Proxy
	client net.Conn
	done   chan struct{} // closed when the link ends

	mu       sync.Mutex
	server   net.Conn
	ended    bool
	passed   int64
	resetAt  int64 // 0: not drawn yet
	resetFor int   // the ResetAfter resetAt was drawn for
}

func (l *link) run() {
	defer l.p.wg.Done()
	defer l.forget()
	// A black hole swallows the connection too: the server is not dialled
	// until it lifts.
	if !l.p.waitOpen(l.done) {
		l.close()
		return
	}
	server, err := net.DialTimeout("tcp", l.p.upstream, 10*time.Second)
	if err != nil {
		l.close()
		return
	}
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		server.Close()
		return
	}
	l.server = server
	l.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pump(server, l.client) }()
	go func() { defer wg.Done(); l.pump(l.client, server) }()
	wg.Wait()
	l.close()
}

func (l *link) forget() {
	l.p.mu.Lock()
	delete(l.p.links, l)
	l.p.mu.Unlock()
}

// chunk is bytes read, with when they are due to be written.
type chunk struct {
	b   []byte
	due time.Time
}

// pump copies src to dst through the fault: a reader that stamps each
// chunk with its due time, and a writer that holds it until then, so that
// latency delays bytes without limiting throughput.
func (l *link) pump(dst, src net.Conn) {
	queue := make(chan chunk, 64)
	go func() {
		defer close(queue)
		var last time.Time
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				f, _, _ := l.p.current()
				due := time.Now().Add(delay(f))
				if due.Before(last) {
					due = last // jitter must not reorder bytes
				}
				last = due
				select {
				case queue <- chunk{b: buf[:n], due: due}:
				case <-l.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		if !l.write(dst, c) {
			l.close()
			for range queue {
			}
			return
		}
	}
	// src ended: pass the half-close on, as TCP would.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		l.close()
	}
}

// delay draws a chunk's delay under f.
func delay(f Fault) time.Duration {
	d := f.Latency
	if f.Jitter > 0 {
		d += time.Duration(rand.Int64N(int64(2*f.Jitter))) - f.Jitter
	}
	return max(d, 0)
}

// write writes c to dst when it is due, through the fault in force at
// each step. It reports false when the link must end.
func (l *link) write(dst net.Conn, c chunk) bool {
	if !sleepUntil(c.due, l.done) {
		return false
	}
	b := c.b
	for len(b) > 0 {
		if !l.p.waitOpen(l.done) {
			return false
		}
		f, _, _ := l.p.current()
		n := len(b)
		if f.Slice > 0 {
			n = min(n, f.Slice)
		}
		if f.Bandwidth > 0 {
			n = min(n, max(f.Bandwidth/20, 1)) // about 20 writes a second
		}
		if !l.count(n, f.ResetAfter) {
			l.reset()
			return false
		}
		if _, err := dst.Write(b[:n]); err != nil {
			return false
		}
		b = b[n:]
		pause := time.Duration(0)
		if f.Bandwidth > 0 {
			pause = time.Duration(n) * time.Second / time.Duration(f.Bandwidth)
		}
		if f.Slice > 0 {
			pause = max(pause, f.SliceDelay)
		}
		if pause > 0 && !sleepUntil(time.Now().Add(pause), l.done) {
			return false
		}
	}
	return true
}

// count adds n bytes to the link's tally and reports whether they may
// pass before a reset is due under resetAfter.
func (l *link) count(n, resetAfter int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if resetAfter <= 0 {
		l.resetAt, l.resetFor = 0, 0
	} else if l.resetFor != resetAfter {
		l.resetFor = resetAfter
		l.resetAt = l.passed + int64(resetAfter/2) + rand.Int64N(int64(resetAfter)+1)
	}
	if l.resetAt > 0 && l.passed+int64(n) > l.resetAt {
		return false
	}
	l.passed += int64(n)
	l.p.mu.Lock()
	l.p.stats.Bytes += int64(n)
	l.p.mu.Unlock()
	return true
}

// reset ends the link with an RST to both ends.
func (l *link) reset() {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.p.mu.Lock()
	l.p.stats.Reset++
	l.p.mu.Unlock()
	for _, c := range l.conns() {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends an RST
		}
	}
	l.close()
}

func (l *link) conns() []net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []net.Conn{l.client}
	if l.server != nil {
		out = append(out, l.server)
	}
	return out
}

// close ends the link: both connections closed, its goroutines told.
func (l *link) close() {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return
	}
	l.ended = true
	close(l.done)
	conns := []net.Conn{l.client}
	if l.server != nil {
		conns = append(conns, l.server)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close() // a connection already closed by its peer has nothing to tell
	}
}

// sleepUntil waits until t; it reports false if done closed first.
func sleepUntil(t time.Time, done <-chan struct{}) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-done:
		return false
	}
}

// Front starts a proxy on loopback in front of ln, a server's listener, and
// returns it with a listener that is ln but gives the proxy's address as
// its own: for a server that advertises the address it listens on, as a
// Kafka broker does, so that its clients come through the proxy. Closing
// the proxy does not close ln.
func Front(ln net.Listener) (*Proxy, net.Listener, error) {
	p, err := New("127.0.0.1:0", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	return p, &fronted{Listener: ln, p: p}, nil
}

// fronted is a listener whose address is its proxy's.
type fronted struct {
	net.Listener
	p *Proxy
}

func (f *fronted) Addr() net.Addr { return f.p.ln.Addr() }

// FrontedListen returns a listen function that listens as net.Listen does
// and fronts each listener with a proxy (see Front), handing each proxy to
// add: for a server that takes a listen function, such as kfake's
// ListenFn. add may be called from any goroutine.
func FrontedListen(add func(*Proxy)) func(network, address string) (net.Listener, error) {
	return func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		p, fronted, err := Front(ln)
		if err != nil {
			ln.Close()
			return nil, err
		}
		add(p)
		return fronted, nil
	}
}
