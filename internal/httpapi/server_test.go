package httpapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startLimited serves the handler with limits on loopback.
func startLimited(t *testing.T, limits Limits) (string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv, err := NewServer(NewHandler(Options{ServiceName: "t"}), limits, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), reg
}

// idleConn opens a keep-alive connection, makes one request on it and
// leaves it idle.
func idleConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c
}

// slowConn opens a connection that sends the start of a request's headers
// and never ends them.
func slowConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedByServer reports whether the server has closed c.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF || (err != nil && !isTimeout(err))
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestConnectionCap: with the cap held by idle and slow clients, a new
// client is still served; the server sheds the idle ones first, then the
// slow ones, and never holds more than the cap.
func TestConnectionCap(t *testing.T) {
	addr, reg := startLimited(t, Limits{MaxConns: 10, ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute})
	var idle, slow []net.Conn
	for range 5 {
		idle = append(idle, idleConn(t, addr))
	}
	for range 5 {
		slow = append(slow, slowConn(t, addr))
	}
	time.Sleep(50 * time.Millisecond) // the server has seen them all
	// New clients are served, each kept open: every one takes a place.
	var later []net.Conn
	for range 8 {
		later = append(later, idleConn(t, addr))
	}
	count := func(cs []net.Conn) (n int) {
		for _, c := range cs {
			if closedByServer(c) {
				n++
			}
		}
		return n
	}
	if i, s, l := count(idle), count(slow), count(later); i != 5 || s != 0 || l != 3 {
		t.Errorf("closed %d of the first idle, %d slow and %d later connections; want the 5 idle longest, then 3 more idle, and no slow one while idle ones remain", i, s, l)
	}
	// With no idle connection left to shed, the slow ones go, oldest first.
	for _, c := range later {
		c.Close()
	}
	time.Sleep(50 * time.Millisecond)
	var more []net.Conn
	for range 5 + 3 {
		more = append(more, slowConn(t, addr))
	}
	time.Sleep(50 * time.Millisecond)
	if s := count(slow); s != 3 {
		t.Errorf("closed %d of the first slow connections, want the 3 oldest", s)
	}
	_ = more
	if got := gathered(t, reg, "ingestion_http_connections_shed_total"); got != 8+3 {
		t.Errorf("shed = %v, want 11", got)
	}
	if got := gathered(t, reg, "ingestion_http_connections"); got > 10 {
		t.Errorf("held = %v, want at most the cap", got)
	}
}

// TestTimeouts: an idle keep-alive connection is closed after
// IdleTimeout, one that never ends its headers after ReadHeaderTimeout,
// and headers over MaxHeaderBytes are refused.
func TestTimeouts(t *testing.T) {
	addr, _ := startLimited(t, Limits{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond, MaxHeaderBytes: 1024})
	idle, slow := idleConn(t, addr), slowConn(t, addr)
	deadline := time.Now().Add(5 * time.Second)
	for !(closedByServer(idle) && closedByServer(slow)) {
		if time.Now().After(deadline) {
			t.Fatal("the idle and slow connections were not closed")
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 8192)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("big headers: %v, %v; want 431", resp, err)
	}
}

// gathered returns the value of the metric name in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestProbeListener: the probe handler serves health, readiness and
// metrics and nothing else, and its server registers its connection
// metrics beside the API server's on one registry, told apart by the
// listener label.
func TestProbeListener(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := Options{ServiceName: "t", Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "m 1\n") })}
	if _, err := NewServer(NewHandler(opts), Limits{}, nil, reg); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(NewProbeHandler(opts), Limits{Listener: "probe", MaxConns: 16}, nil, reg)
	if err != nil {
		t.Fatalf("a probe server beside the API server on one registry: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	for path, want := range map[string]int{
		"/api/v1/health": 200, "/api/v1/ready": 200, "/metrics": 200,
		"/docs": 404, "/openapi.json": 404, "/redoc": 404,
	} {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s on the probe listener = %d, want %d", path, resp.StatusCode, want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	listeners := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() == "ingestion_http_connections" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "listener" {
						listeners[l.GetValue()] = true
					}
				}
			}
		}
	}
	if !listeners["api"] || !listeners["probe"] {
		t.Fatalf("ingestion_http_connections listeners = %v, want api and probe", listeners)
	}
}

// TestServeBoundsAcceptedConnections: Serve's listener accepts no new
// connection while twice MaxConns are open, those being shed included, and
// accepts again when one has wound down (its state Closed).
func TestServeBoundsAcceptedConnections(t *testing.T) {
	srv, err := NewServer(http.NotFoundHandler(), Limits{MaxConns: 1}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	ln := &slotListener{Listener: inner, slots: srv.table.slots}
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var accepted []net.Conn
	for range 2 {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		srv.table.track(c, http.StateNew)
		accepted = append(accepted, c)
	}
	third := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			third <- c
		}
	}()
	select {
	case <-third:
		t.Fatal("a third connection accepted with two open and MaxConns 1")
	case <-time.After(200 * time.Millisecond):
	}
	srv.table.track(accepted[0], http.StateClosed)
	select {
	case c := <-third:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted after one closed")
	}
}
