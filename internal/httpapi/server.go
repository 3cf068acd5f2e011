package httpapi

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits bound what clients can make the HTTP server hold. Zero fields
// take the default in their comment.
type Limits struct {
	// MaxConns caps the connections held at once; default 512. When a new
	// connection would pass it, the one idle longest (a keep-alive
	// connection between requests) is closed, else the one that has waited
	// longest for its first request's headers, else the new one: so that
	// idle or slow clients cannot keep a probe out, and memory stays
	// bounded (a connection holds about 10 KB of buffers and stack).
	MaxConns int
	// ReadHeaderTimeout bounds reading a request's headers; default 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request; default 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response; default 60s, above the 30 s
	// of a default CPU profile.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long; default
	// 30s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers; default 16 KiB.
	MaxHeaderBytes int
	// Listener names the server in its metrics' listener label; default
	// "api". Servers on one registry need names of their own.
	Listener string
}

// The defaults of Limits.
const (
	DefaultMaxConns          = 512
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 30 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
)

func (l Limits) withDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.Listener == "" {
		l.Listener = "api"
	}
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.ReadTimeout, DefaultReadTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	return l
}

// Server is an *http.Server that keeps within its Limits. Serve through
// its Serve method, which bounds the connections accepted as well as
// those held.
type Server struct {
	*http.Server
	table *connTable
}

// Serve accepts connections on ln and serves them, as http.Server.Serve
// does, but accepts no new connection while twice Limits.MaxConns are
// open, those being shed included: a connection closed to stay within
// MaxConns keeps its goroutine and buffers until it has wound down, and
// clients that reconnect as fast as they are shed would otherwise pile
// those up faster than they go.
func (s *Server) Serve(ln net.Listener) error {
	return s.Server.Serve(&slotListener{Listener: ln, slots: s.table.slots})
}

// slotListener takes a slot for each connection it accepts; connTable
// gives it back when the connection's goroutine ends.
type slotListener struct {
	net.Listener
	slots chan struct{}
}

func (l *slotListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
	}
	return c, err
}

// NewServer returns a Server for h within limits. It registers on
// reg ingestion_http_connections (the connections held) and
// ingestion_http_connections_shed_total (those closed to stay within
// MaxConns), labelled with the Listener's name, and fails if it cannot.
// The server's own errors go to errorLog at warn level, or are dropped if
// it is nil.
func NewServer(h http.Handler, limits Limits, errorLog *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	limits = limits.withDefaults()
	label := prometheus.Labels{"listener": limits.Listener}
	t := &connTable{max: limits.MaxConns, conns: map[net.Conn]*connEntry{}, slots: make(chan struct{}, 2*limits.MaxConns),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "ingestion_http_connections_shed_total",
			Help:        "HTTP connections closed to keep within the listener's cap (API_MAX_CONNECTIONS for the API): the idle longest first, then the slowest to send headers.",
			ConstLabels: label,
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "ingestion_http_connections",
			Help:        "HTTP connections the listener holds.",
			ConstLabels: label,
		}),
	}
	for _, c := range []prometheus.Collector{t.shed, t.held} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register HTTP metrics: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		ReadTimeout:       limits.ReadTimeout,
		WriteTimeout:      limits.WriteTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    limits.MaxHeaderBytes,
		ConnState:         t.track,
	}
	if errorLog != nil {
		srv.ErrorLog = slog.NewLogLogger(errorLog.Handler(), slog.LevelWarn)
	}
	return &Server{Server: srv, table: t}, nil
}

// connTable keeps the server's connections within max.
type connTable struct {
	max   int
	slots chan struct{} // a token for each connection accepted and not yet closed (Server.Serve)
	shed  prometheus.Counter
	held  prometheus.Gauge

	mu    sync.Mutex
	conns map[net.Conn]*connEntry
}

type connEntry struct {
	state http.ConnState
	since time.Time
}

// track follows a connection's state; a new one over the cap makes it
// close another.
func (t *connTable) track(c net.Conn, state http.ConnState) {
	t.mu.Lock()
	var victim net.Conn
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(t.conns, c)
		select {
		case <-t.slots:
		default: // served without Server.Serve: no slot was taken
		}
	case http.StateNew:
		t.conns[c] = &connEntry{state: state, since: time.Now()}
		if len(t.conns) > t.max {
			victim = t.victimLocked(c)
			delete(t.conns, victim)
		}
	default:
		if e, ok := t.conns[c]; ok {
			e.state, e.since = state, time.Now()
		}
	}
	n := len(t.conns)
	t.mu.Unlock()
	t.held.Set(float64(n))
	if victim != nil {
		_ = victim.Close() // the client sees the connection end
		t.shed.Inc()
	}
}

// victimLocked picks the connection to close for newcomer: the one idle
// longest, else the one waiting longest for its first request, else the
// newcomer itself (every other one is serving a request).
func (t *connTable) victimLocked(newcomer net.Conn) net.Conn {
	var idle, waiting net.Conn
	var idleSince, waitingSince time.Time
	for c, e := range t.conns {
		switch {
		case c == newcomer:
		case e.state == http.StateIdle && (idle == nil || e.since.Before(idleSince)):
			idle, idleSince = c, e.since
		case e.state == http.StateNew && (waiting == nil || e.since.Before(waitingSince)):
			waiting, waitingSince = c, e.since
		}
	}
	switch {
	case idle != nil:
		return idle
	case waiting != nil:
		return waiting
	}
	return newcomer
}
