package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo is a TCP server on loopback that writes back what it reads, and
// counts its connections and its reads.
type echo struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	conns int
	reads int
	open  []net.Conn
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns++
			e.open = append(e.open, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						e.mu.Lock()
						e.reads++
						e.mu.Unlock()
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for _, c := range e.open {
			c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *echo) counts() (conns, reads int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.conns, e.reads
}

func startProxy(t *testing.T, upstream string) *Proxy {
	t.Helper()
	p, err := New("127.0.0.1:0", upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads as many bytes back, within limit.
func roundTrip(c net.Conn, msg []byte, limit time.Duration) ([]byte, error) {
	if err := c.SetDeadline(time.Now().Add(limit)); err != nil {
		return nil, err
	}
	defer c.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	return got, errors.Join(err, <-errc)
}

func TestPassesBytes(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	msg := bytes.Repeat([]byte("dota"), 100_000)
	got, err := roundTrip(c, msg, 10*time.Second)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("round trip of %d bytes: %v, equal %v", len(msg), err, bytes.Equal(got, msg))
	}
	if s := p.Stats(); s.Accepted != 1 || s.Bytes != 2*int64(len(msg)) {
		t.Errorf("stats %+v, want 1 connection and %d bytes", s, 2*len(msg))
	}
}

// TestFaults checks each fault on a round trip: how long it takes at
// least, or how it fails.
func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fault   Fault
		size    int
		atLeast time.Duration
	}{
		{"latency both ways", Fault{Latency: 150 * time.Millisecond}, 10, 300 * time.Millisecond},
		{"latency with jitter", Fault{Latency: 200 * time.Millisecond, Jitter: 100 * time.Millisecond}, 10, 200 * time.Millisecond},
		{"bandwidth", Fault{Bandwidth: 20_000}, 10_000, 400 * time.Millisecond}, // each way at once: the echo answers as bytes come
		{"slices of one byte", Fault{Slice: 1, SliceDelay: time.Millisecond}, 200, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEcho(t)
			p := startProxy(t, e.ln.Addr().String())
			p.Set(tc.fault)
			c := dial(t, p.Addr())
			msg := bytes.Repeat([]byte{'x'}, tc.size)
			began := time.Now()
			got, err := roundTrip(c, msg, 30*time.Second)
			took := time.Since(began)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("round trip: %v", err)
			}
			if took < tc.atLeast {
				t.Errorf("the round trip took %v, want at least %v", took, tc.atLeast)
			}
			if tc.fault.Slice > 0 {
				if _, reads := e.counts(); reads < tc.size/4 {
					t.Errorf("the server read %d times for %d bytes in slices of 1, want many", reads, tc.size)
				}
			}
			p.Heal()
			began = time.Now()
			if _, err := roundTrip(c, msg[:10], 5*time.Second); err != nil {
				t.Fatalf("after the heal: %v", err)
			}
			if took := time.Since(began); took > time.Second {
				t.Errorf("a round trip after the heal took %v", took)
			}
		})
	}
}

// TestBlackhole: a black hole holds the bytes of an open connection and
// swallows a new one (the client connects, the server never sees it);
// lifted, both go through.
func TestBlackhole(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	old := dial(t, p.Addr())
	if _, err := roundTrip(old, []byte("before"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(Fault{Blackhole: true})
	_, err := roundTrip(old, []byte("during"), 300*time.Millisecond)
	if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a round trip in the black hole: %v, want a timeout", err)
	}
	fresh := dial(t, p.Addr()) // the kernel accepts; nothing more happens
	if _, err := roundTrip(fresh, []byte("hello"), 300*time.Millisecond); err == nil {
		t.Fatal("a new connection went through the black hole")
	}
	if conns, _ := e.counts(); conns != 1 {
		t.Fatalf("the server saw %d connections during the black hole, want only the first", conns)
	}
	p.Heal()
	// What was held arrives: "during" on the old connection, "hello" on
	// the new, each after the bytes the timed-out reads left unread.
	for _, tc := range []struct {
		c    net.Conn
		want string
	}{{old, "during"}, {fresh, "hello"}} {
		if err := tc.c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(tc.want))
		if _, err := io.ReadFull(tc.c, got); err != nil || string(got) != tc.want {
			t.Fatalf("after the heal: %q, %v; want %q", got, err, tc.want)
		}
	}
	if conns, _ := e.counts(); conns != 2 {
		t.Errorf("the server saw %d connections after the heal, want 2", conns)
	}
}

// TestResetAfter: connections are reset (RST, not FIN) after about the
// given number of bytes, each new one again.
func TestResetAfter(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	p.Set(Fault{ResetAfter: 1000})
	for i := range 3 {
		c := dial(t, p.Addr())
		_, err := roundTrip(c, bytes.Repeat([]byte{'y'}, 5000), 5*time.Second)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("connection %d: %v, want a reset", i, err)
		}
	}
	if s := p.Stats(); s.Reset != 3 || s.Bytes > 3*1500 {
		t.Errorf("stats %+v, want 3 resets after at most 1,500 bytes each", s)
	}
	p.Heal()
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, bytes.Repeat([]byte{'y'}, 5000), 5*time.Second); err != nil {
		t.Fatalf("after the heal: %v", err)
	}
}

// TestResetAll resets the open connections at once.
func TestResetAll(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, []byte("hi"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.ResetAll()
	if _, err := roundTrip(c, []byte("hi"), 5*time.Second); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("after ResetAll: %v, want a reset", err)
	}
}

// TestCloseEndsEverything: Close returns with connections open and one
// held in a black hole, and leaves no goroutine behind (TestMain checks).
func TestCloseEndsEverything(t *testing.T) {
	e := startEcho(t)
	p, err := New("127.0.0.1:0", e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, []byte("hi"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(Fault{Blackhole: true, Latency: time.Hour})
	dial(t, p.Addr())
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the proxy still accepts after Close")
	}
}

// TestFront: a server's listener fronted by a proxy gives the proxy's
// address, and what comes to that address reaches the server through the
// proxy's fault.
func TestFront(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	p, ln, err := Front(inner)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if ln.Addr().String() != p.Addr() || p.Upstream() != inner.Addr().String() {
		t.Fatalf("fronted listener at %s, proxy at %s to %s; want the proxy's address, and the proxy to the server", ln.Addr(), p.Addr(), p.Upstream())
	}
	p.Set(Fault{Blackhole: true})
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	dial(t, ln.Addr().String())
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("the server accepted a connection through a black hole")
	case <-time.After(200 * time.Millisecond):
	}
	p.Heal()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not reach the server after the heal")
	}
}
