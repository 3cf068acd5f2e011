// Package wsstream reads the live match stream: a WebSocket server that
// sends one JSON object per frame.
//
// A Source keeps one connection open for as long as it runs. It pings the
// server to find connections that died silently, reconnects on any failure
// with exponential backoff and jitter, and hands each frame to a Handler in
// order. The Handler is called on the reading goroutine, so a Handler that
// blocks stops the reading: that is the backpressure the rest of the
// service relies on.
package wsstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/redact"
	"github.com/dota-data/ingestion-service/internal/redirect"
)

// Handler receives what the Source reads.
type Handler interface {
	// Frame is called with each data frame, text or binary, in the order
	// received. frame is valid only during the call.
	Frame(ctx context.Context, frame []byte)
	// Oversized is called for a frame larger than MaxFrameBytes, with its
	// size and its first bytes; the frame itself is skipped.
	Oversized(ctx context.Context, size int64, head []byte)
}

// Source reads the match stream. Create it with New.
type Source struct {
	cfg     Config
	log     *slog.Logger
	state   *health.State
	metrics *metrics
	shown   string      // the URL as shown: its secrets redacted
	hide    redact.Text // removes the URL's secrets from error texts
	buf     []byte

	// busy is set while the Handler runs, frames counts frames read; the
	// pinger uses both to tell a dead peer from a busy reader.
	busy   atomic.Bool
	frames atomic.Uint64
}

// New returns a Source for cfg. It fails only if the URL is not ws:// or
// wss://, or the metrics cannot be registered on reg. It does not connect.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	cfg = cfg.withDefaults()
	if err := CheckURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("stream source: %w", err)
	}
	if cfg.HTTPClient == nil && cfg.TLSCAFile != "" {
		client, err := clientWithCA(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("stream source: %w", err)
		}
		cfg.HTTPClient = client
	}
	cfg.HTTPClient = capturingClient(redirect.Client(cfg.HTTPClient))
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("stream source: %w", err)
	}
	return &Source{
		cfg:     cfg,
		log:     log,
		state:   health.NewState("not connected yet"),
		metrics: m,
		shown:   redact.URL(cfg.URL),
		hide:    redact.ForURL(cfg.URL),
		buf:     make([]byte, cfg.MaxFrameBytes+1),
	}, nil
}

// clientWithCA returns an HTTP client trusting the system's roots and the
// CAs in file.
func clientWithCA(file string) (*http.Client, error) {
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// CheckURL reports whether raw is a ws:// or wss:// URL with a host.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return redact.ForURL(raw).Error(err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("%q is not a ws:// or wss:// URL", redact.URL(raw))
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", redact.URL(raw))
	}
	return nil
}

// Status reports whether the stream is connected, and since when.
func (s *Source) Status() health.Status { return s.state.Status() }

// Run connects and reads until ctx ends, reconnecting after every failure:
// at once after a connection that delivered frames, else with exponential
// backoff and jitter from BackoffMin. When ctx ends it closes the connection with a close handshake, hands on
// any frame already received, and returns nil. The Handler gets a context
// that is not cancelled with ctx, so that a frame read before shutdown is
// never dropped on the way out.
func (s *Source) Run(ctx context.Context, h Handler) error {
	attempt := 0
	var unreachable struct {
		reported time.Time // when it was last logged at error level
		since    time.Time // when the run of unreachable attempts began
		missed   int       // attempts since
	}
	for {
		framesBefore := s.frames.Load()
		connected, err := s.session(ctx, h)
		s.metrics.connected.Set(0)
		if ctx.Err() != nil {
			s.state.Set(false, "stopped")
			return nil
		}
		if connected > 0 {
			unreachable.reported, unreachable.missed = time.Time{}, 0
		}
		if connected >= s.cfg.HealthyAfter {
			attempt = 0
		}
		reason := classify(err)
		var delay time.Duration
		if s.frames.Load() > framesBefore {
			// The connection delivered frames: the server is fine, and the
			// stream moves on while we wait. Reconnect at once; back off
			// from BackoffMin if that fails.
			attempt = 0
		} else {
			delay = s.backoff(attempt)
			attempt++
		}
		s.metrics.reconnects.WithLabelValues(reason).Inc()
		unreach := isUnreachable(err)
		err = s.hide.Error(err)
		if !unreach {
			s.state.Set(false, fmt.Sprintf("%s: %v", reason, err))
			s.log.Warn("Stream connection lost, reconnecting",
				"reason", reason, "error", err, "attempt", attempt, "retry_in", delay.String(), "url", s.shown)
		} else {
			// Nothing answers there at all: that is said once per
			// UnreachableEvery, not once a retry.
			if unreachable.missed == 0 {
				unreachable.since = time.Now()
			}
			unreachable.missed++
			detail := fmt.Sprintf("%s: %v", reason, err)
			if s.cfg.UnreachableHint != "" {
				detail += "; " + s.cfg.UnreachableHint
			}
			s.state.Set(false, detail)
			if unreachable.reported.IsZero() || time.Since(unreachable.reported) >= s.cfg.UnreachableEvery {
				unreachable.reported = time.Now()
				s.log.Error("Cannot reach the match stream; retrying, and saying so again in "+s.cfg.UnreachableEvery.String()+" if it stays unreachable",
					"error", err, "url", s.shown, "attempts", unreachable.missed,
					"unreachable_for", time.Since(unreachable.since).Round(time.Second).String(), "hint", s.cfg.UnreachableHint)
			} else {
				s.log.Debug("Stream still unreachable, reconnecting",
					"error", err, "attempt", attempt, "retry_in", delay.String(), "url", s.shown)
			}
		}
		if !backoff.Wait(ctx, delay) {
			s.state.Set(false, "stopped")
			return nil
		}
	}
}

// backoff returns the delay before reconnect attempt n (from 0): between
// half and all of min(BackoffMax, BackoffMin * 2^n).
func (s *Source) backoff(n int) time.Duration {
	return backoff.Delay(n, s.cfg.BackoffMin, s.cfg.BackoffMax)
}

// isUnreachable reports whether err says nothing answers at the stream's
// address: its host name does not resolve, or it refuses the connection.
func isUnreachable(err error) bool {
	var de *dialError
	if !errors.As(err, &de) {
		return false
	}
	var dns *net.DNSError
	return errors.As(err, &dns) || errors.Is(err, syscall.ECONNREFUSED)
}

// errPingTimeout marks a connection closed because pings went unanswered.
var errPingTimeout = errors.New("no pong within the pong timeout")

// dialError marks a failure to connect.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func classify(err error) string {
	var de *dialError
	switch {
	case errors.As(err, &de):
		return "connect_failed"
	case errors.Is(err, errPingTimeout):
		return "ping_timeout"
	case websocket.CloseStatus(err) != -1:
		return "closed_by_server"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_lost"
	}
	return "read_error"
}

// session runs one connection: it returns how long it was connected and
// why it ended.
func (s *Source) session(ctx context.Context, h Handler) (time.Duration, error) {
	dialCtx, cancelDial := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	raw := &rawConn{}
	dialCtx = context.WithValue(dialCtx, rawConnKey{}, raw)
	conn, resp, err := websocket.Dial(dialCtx, s.cfg.URL, &websocket.DialOptions{
		HTTPClient: s.cfg.HTTPClient,
		HTTPHeader: s.cfg.Header,
	})
	cancelDial()
	if err != nil {
		return 0, &dialError{err}
	}
	// The library's own limit would close the connection; ours skips the
	// frame instead.
	conn.SetReadLimit(-1)
	start := time.Now()
	s.metrics.connected.Set(1)
	// Readiness names where the stream really is: a redirect on the same
	// host may have moved it (others are refused, see internal/redirect).
	where := redact.URL(redirect.Final(resp, s.cfg.URL))
	s.state.Set(true, "connected to "+where)
	if where != s.shown {
		s.log.Info("Connected to match stream", "url", where, "configured_url", s.shown)
	} else {
		s.log.Info("Connected to match stream", "url", where)
	}

	connCtx, cancelConn := context.WithCancel(context.Background())
	defer cancelConn()
	// The read goes on through shutdown (the handshake ends it) unless the
	// peer does not answer the close within CloseTimeout; then closing the
	// TCP connection under the handshake ends it. Reads take a context
	// that never ends, which spares the library registering a callback on
	// it at every frame. Only a client whose connection could not be seen
	// (an upgraded answer whose body cannot be closed) reads with one that
	// CloseTimeout cancels instead.
	readCtx, endRead := context.Background(), raw.close
	if !raw.seen() {
		var cancelRead context.CancelFunc
		readCtx, cancelRead = context.WithCancel(context.WithoutCancel(ctx))
		defer cancelRead()
		endRead = cancelRead
	}
	var pingDead atomic.Bool
	pingerDone := make(chan struct{})
	go func() {
		defer close(pingerDone)
		if s.pinger(connCtx, conn) {
			pingDead.Store(true)
			_ = conn.CloseNow()
		}
	}()
	closerDone := make(chan struct{})
	go func() {
		defer close(closerDone)
		select {
		case <-ctx.Done():
			// Stop reading: the close handshake makes the read loop end
			// once the server answers, or CloseTimeout has passed.
			closed := make(chan struct{})
			go func() {
				defer close(closed)
				_ = conn.Close(websocket.StatusGoingAway, "service shutting down")
			}()
			select {
			case <-closed:
			case <-time.After(s.cfg.CloseTimeout):
				endRead()
			}
		case <-connCtx.Done():
		}
	}()

	err = s.readLoop(conn, readCtx, context.WithoutCancel(ctx), h)
	cancelConn()
	<-pingerDone
	<-closerDone
	_ = conn.CloseNow()
	if pingDead.Load() {
		err = errPingTimeout
	}
	return time.Since(start), err
}

// readLoop reads frames with readCtx until the connection fails or is
// closed (by the pinger, or the closer on shutdown).
func (s *Source) readLoop(conn *websocket.Conn, readCtx, hctx context.Context, h Handler) error {
	for {
		_, r, err := conn.Reader(readCtx)
		if err != nil {
			return err
		}
		n, err := io.ReadFull(r, s.buf)
		switch {
		case err == nil: // the frame fills the buffer: it is over the limit
			rest, err := io.Copy(io.Discard, r)
			if err != nil {
				return err
			}
			s.frames.Add(1)
			s.busy.Store(true)
			h.Oversized(hctx, int64(n)+rest, s.buf[:min(n, 256)])
			s.busy.Store(false)
			continue
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		default:
			return err
		}
		s.frames.Add(1)
		s.busy.Store(true)
		h.Frame(hctx, s.buf[:n])
		s.busy.Store(false)
	}
}

// pinger pings every PingInterval until connCtx ends. It returns true if a
// ping went unanswered while the reader sat idle on the socket, which
// means the peer is gone. A reader that is busy in the Handler cannot read
// pongs, so a timeout then proves nothing and the connection is kept.
func (s *Source) pinger(connCtx context.Context, conn *websocket.Conn) bool {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-connCtx.Done():
			return false
		case <-t.C:
		}
		before := s.frames.Load()
		pingCtx, cancel := context.WithTimeout(connCtx, s.cfg.PongTimeout)
		err := conn.Ping(pingCtx)
		cancel()
		if err == nil || connCtx.Err() != nil {
			continue
		}
		if s.busy.Load() || s.frames.Load() != before {
			continue
		}
		s.log.Warn("Stream ping unanswered, replacing the connection", "pong_timeout", s.cfg.PongTimeout.String())
		return true
	}
}

// rawConnKey keys the *rawConn of a dial in its context.
type rawConnKey struct{}

// rawConn is the connection a dial opened (the last, after redirects), so
// that a shutdown can close it under a close handshake the peer does not
// answer.
type rawConn struct {
	mu   sync.Mutex
	conn io.Closer
}

func (r *rawConn) set(c io.Closer) {
	r.mu.Lock()
	r.conn = c
	r.mu.Unlock()
}

// seen reports whether the dial's connection was captured.
func (r *rawConn) seen() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn != nil
}

func (r *rawConn) close() {
	r.mu.Lock()
	c := r.conn
	r.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// capturingClient returns a copy of c whose Transport records the
// connection of each dial in the *rawConn of the dial's context: an
// *http.Transport each connection it dials, any other the body of a
// "101 Switching Protocols" answer, which is the connection.
func capturingClient(c *http.Client) *http.Client {
	tr, ok := c.Transport.(*http.Transport)
	if c.Transport == nil {
		tr, ok = http.DefaultTransport.(*http.Transport), true
	}
	if !ok {
		cp := *c
		cp.Transport = upgradeCapture{c.Transport}
		return &cp
	}
	tr = tr.Clone()
	capture := func(dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if r, ok := ctx.Value(rawConnKey{}).(*rawConn); ok && err == nil {
				r.set(conn)
			}
			return conn, err
		}
	}
	if tr.DialTLSContext != nil {
		tr.DialTLSContext = capture(tr.DialTLSContext)
	}
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr.DialContext = capture(dial)
	cp := *c
	cp.Transport = tr
	return &cp
}

// upgradeCapture records the connection of an upgraded answer of the
// RoundTripper it wraps.
type upgradeCapture struct{ rt http.RoundTripper }

func (u upgradeCapture) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := u.rt.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		if r, ok := req.Context().Value(rawConnKey{}).(*rawConn); ok {
			if conn, ok := resp.Body.(io.Closer); ok {
				r.set(conn)
			}
		}
	}
	return resp, err
}
