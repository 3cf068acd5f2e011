package wsstream

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dota-data/ingestion-service/internal/logtest"
)

// recorder is a Handler that keeps what it is given.
type recorder struct {
	mu        sync.Mutex
	frames    []string
	oversized []int64
	heads     []string
	got       chan struct{} // receives after every call
	block     chan struct{} // when non-nil, Frame waits for it
}

func newRecorder() *recorder { return &recorder{got: make(chan struct{}, 10000)} }

func (r *recorder) Frame(_ context.Context, frame []byte) {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	r.frames = append(r.frames, string(frame))
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *recorder) Oversized(_ context.Context, size int64, head []byte) {
	r.mu.Lock()
	r.oversized = append(r.oversized, size)
	r.heads = append(r.heads, string(head))
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-r.got:
		case <-timeout:
			t.Fatalf("timed out after %d of %d frames", i, n)
		}
	}
}

func (r *recorder) snapshot() ([]string, []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.frames...), append([]int64(nil), r.oversized...)
}

// server is a loopback WebSocket server whose behaviour per connection is
// given by serve; it is told the connection number, from 0.
func server(t *testing.T, serve func(ctx context.Context, n int, c *websocket.Conn)) (string, func() int) {
	t.Helper()
	var mu sync.Mutex
	conns := 0
	// A hijacked request's context never ends: serve gets one that ends
	// with the test, before the server closes.
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		mu.Lock()
		n := conns
		conns++
		mu.Unlock()
		serve(ctx, n, c)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(cancel)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), func() int { mu.Lock(); defer mu.Unlock(); return conns }
}

type running struct {
	src    *Source
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config, h Handler) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	src, err := New(cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{src: src, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- src.Run(ctx, h) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
		r.done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func (r *running) reconnects(reason string) float64 {
	return testutil.ToFloat64(r.src.metrics.reconnects.WithLabelValues(reason))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFramesInOrderAndOversizedSkipped(t *testing.T) {
	big := strings.Repeat("x", 5000)
	url, _ := server(t, func(ctx context.Context, _ int, c *websocket.Conn) {
		_ = c.Write(ctx, websocket.MessageText, []byte(`{"match_id":1}`))
		_ = c.Write(ctx, websocket.MessageBinary, []byte(`{"match_id":2}`))
		_ = c.Write(ctx, websocket.MessageText, []byte(big))
		_ = c.Write(ctx, websocket.MessageText, []byte(``))
		_ = c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("y", 1024))) // exactly the limit
		_ = c.Write(ctx, websocket.MessageText, []byte(`{"match_id":3}`))
		_, _, _ = c.Read(ctx) // until the client closes
	})
	rec := newRecorder()
	r := start(t, Config{URL: url, MaxFrameBytes: 1024}, rec)
	rec.wait(t, 6)
	frames, oversized := rec.snapshot()
	want := []string{`{"match_id":1}`, `{"match_id":2}`, ``, strings.Repeat("y", 1024), `{"match_id":3}`}
	if strings.Join(frames, "|") != strings.Join(want, "|") {
		t.Fatalf("frames = %q, want %q", frames, want)
	}
	if len(oversized) != 1 || oversized[0] != 5000 {
		t.Fatalf("oversized = %v, want [5000]", oversized)
	}
	if rec.heads[0] != big[:256] {
		t.Fatalf("oversized head is %d bytes, want the first 256", len(rec.heads[0]))
	}
	if !r.src.Status().Up {
		t.Fatalf("status after an oversized frame = %+v, want up", r.src.Status())
	}
	if got := r.reconnects("read_error") + r.reconnects("closed_by_server"); got != 0 {
		t.Fatalf("an oversized frame caused %v reconnects", got)
	}
}

func TestReconnectsAfterServerClose(t *testing.T) {
	url, conns := server(t, func(ctx context.Context, n int, c *websocket.Conn) {
		for i := 0; i < 3; i++ {
			_ = c.Write(ctx, websocket.MessageText, []byte{byte('a' + n*3 + i)})
		}
		if n < 2 {
			_ = c.Close(websocket.StatusNormalClosure, "rotating")
			return
		}
		_, _, _ = c.Read(ctx) // until the client closes
	})
	rec := newRecorder()
	r := start(t, Config{URL: url, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond}, rec)
	rec.wait(t, 9)
	frames, _ := rec.snapshot()
	if got := strings.Join(frames, ""); got != "abcdefghi" {
		t.Fatalf("frames across reconnects = %q, want abcdefghi", got)
	}
	if conns() != 3 {
		t.Fatalf("server saw %d connections, want 3", conns())
	}
	if got := r.reconnects("closed_by_server"); got != 2 {
		t.Fatalf("reconnects{closed_by_server} = %v, want 2", got)
	}
	waitFor(t, "up after reconnect", func() bool { return r.src.Status().Up })
}

func TestPingTimeoutReplacesSilentConnection(t *testing.T) {
	url, conns := server(t, func(ctx context.Context, n int, c *websocket.Conn) {
		if n == 0 {
			// Never read: pings go unanswered, like a peer that vanished.
			<-ctx.Done()
			return
		}
		// The second connection is healthy: it reads (and so answers pings).
		go func() { _, _, _ = c.Read(ctx) }()
		_ = c.Write(ctx, websocket.MessageText, []byte(`after`))
		<-ctx.Done()
	})
	rec := newRecorder()
	r := start(t, Config{URL: url, PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond, BackoffMin: time.Millisecond}, rec)
	rec.wait(t, 1)
	if got := r.reconnects("ping_timeout"); got != 1 {
		t.Fatalf("reconnects{ping_timeout} = %v, want 1", got)
	}
	if conns() != 2 {
		t.Fatalf("server saw %d connections, want 2", conns())
	}
}

func TestBusyHandlerIsNotMistakenForDeadPeer(t *testing.T) {
	url, conns := server(t, func(ctx context.Context, _ int, c *websocket.Conn) {
		read := make(chan struct{})
		go func() { defer close(read); _, _, _ = c.Read(ctx) }()
		_ = c.Write(ctx, websocket.MessageText, []byte(`1`))
		_ = c.Write(ctx, websocket.MessageText, []byte(`2`))
		<-read // until the client goes
	})
	rec := newRecorder()
	rec.block = make(chan struct{})
	r := start(t, Config{URL: url, PingInterval: 20 * time.Millisecond, PongTimeout: 30 * time.Millisecond}, rec)
	// Hold the reader in the Handler for many pong timeouts.
	time.Sleep(400 * time.Millisecond)
	close(rec.block)
	rec.wait(t, 2)
	if got := r.reconnects("ping_timeout"); got != 0 {
		t.Fatalf("a busy handler caused %v ping-timeout reconnects", got)
	}
	if conns() != 1 {
		t.Fatalf("server saw %d connections, want 1", conns())
	}
}

func TestConnectFailureIsRetriedAndReported(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	srv.Close() // nothing listens there now
	r := start(t, Config{URL: url, BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond}, newRecorder())
	waitFor(t, "three failed connects", func() bool { return r.reconnects("connect_failed") >= 3 })
	st := r.src.Status()
	if st.Up || !strings.Contains(st.Detail, "connect_failed") {
		t.Fatalf("status = %+v, want down with connect_failed", st)
	}
}

func TestShutdownClosesCleanly(t *testing.T) {
	closed := make(chan websocket.StatusCode, 1)
	url, _ := server(t, func(ctx context.Context, _ int, c *websocket.Conn) {
		_ = c.Write(ctx, websocket.MessageText, []byte(`x`))
		_, _, err := c.Read(ctx)
		closed <- websocket.CloseStatus(err)
	})
	rec := newRecorder()
	r := start(t, Config{URL: url}, rec)
	rec.wait(t, 1)
	r.stop(t)
	select {
	case code := <-closed:
		if code != websocket.StatusGoingAway {
			t.Fatalf("server saw close status %v, want going away", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server never saw the close")
	}
	if st := r.src.Status(); st.Up {
		t.Fatalf("status after stop = %+v", st)
	}
}

func TestBackoffGrowsWithinBounds(t *testing.T) {
	s := &Source{cfg: Config{BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second}}
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, time.Second, 2 * time.Second},
		{62, time.Second, 2 * time.Second},
		{1000, time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		for i := 0; i < 200; i++ {
			if d := s.backoff(tt.attempt); d < tt.min || d > tt.max {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"ws://localhost:8080/matches", true},
		{"wss://stream.opendota.com/matches", true},
		{"http://example.com", false},
		{"localhost:8080", false},
		{"ws://", false},
		{"::", false},
	} {
		if err := CheckURL(tt.url); (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
	}
}

// TestURLSecretsNeverShow: a stream URL with user info and a token in its
// query is dialled as given, but neither shows in a log line, the status
// detail or an error: not while connected, not when the connection is
// lost, not when the host refuses.
func TestURLSecretsNeverShow(t *testing.T) {
	gotQuery := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery <- r.URL.RawQuery
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_ = c.Write(r.Context(), websocket.MessageText, []byte(`{"match_id":1}`))
		time.Sleep(50 * time.Millisecond)
	}))
	host := strings.TrimPrefix(srv.URL, "http://")
	raw := "ws://user:pw-S3CRET@" + host + "/matches?token=T0KEN-S3CRET"
	logs := &logtest.Buffer{}
	src, err := New(Config{URL: raw, BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond},
		slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	rec := newRecorder()
	go func() { done <- src.Run(ctx, rec) }()
	rec.wait(t, 1)
	if q := <-gotQuery; q != "token=T0KEN-S3CRET" {
		t.Errorf("the server got query %q, want the token as configured", q)
	}
	statuses := []string{src.Status().Detail}
	srv.Close() // from now on the host refuses
	waitFor(t, "refused dials", func() bool {
		statuses = append(statuses, src.Status().Detail)
		return strings.Count(logs.String(), "Cannot reach the match stream")+strings.Count(logs.String(), "Stream still unreachable") >= 3
	})
	cancel()
	<-done
	text := logs.String() + strings.Join(statuses, "\n")
	if strings.Contains(text, "S3CRET") || strings.Contains(text, "user:") {
		t.Fatalf("a secret of the URL shows:\n%s", text)
	}
	if !strings.Contains(text, "ws://REDACTED@"+host+"/matches?REDACTED") {
		t.Errorf("the redacted URL is not shown:\n%s", text)
	}
}

// TestRedirects: a wss:// stream that redirects to plain ws://, or to
// another host, is refused (the other server never sees a request); a
// redirect on the same host is followed, and readiness names where the
// stream really is.
func TestRedirects(t *testing.T) {
	var plainHits sync.Map
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Store(r.URL.Path, true)
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_ = c.Write(r.Context(), websocket.MessageText, []byte(`{"match_id":7}`))
		<-r.Context().Done()
	}))
	t.Cleanup(plain.Close)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/downgraded", http.StatusFound)
	}))
	t.Cleanup(tlsSrv.Close)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(other.Close)

	for _, tt := range []struct {
		name, url, refused string
		client             *http.Client
		hit                string // the plain server's path that must (or must not) be reached
	}{
		{"TLS to plaintext", "wss" + strings.TrimPrefix(tlsSrv.URL, "https") + "/matches", "redirect from TLS to plaintext refused", tlsSrv.Client(), "/downgraded"},
		{"another host", "ws" + strings.TrimPrefix(other.URL, "http") + "/matches", "redirect to another host refused", nil, "/elsewhere"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, Config{URL: tt.url, HTTPClient: tt.client, BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}, newRecorder())
			waitFor(t, "the refusal reported", func() bool { return strings.Contains(r.src.Status().Detail, tt.refused) })
			if _, ok := plainHits.Load(tt.hit); ok {
				t.Errorf("the redirect target %s was requested", tt.hit)
			}
		})
	}

	t.Run("same host", func(t *testing.T) {
		moved := httptest.NewServer(nil)
		t.Cleanup(moved.Close)
		moved.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/old" {
				http.Redirect(w, r, "/new?x=1", http.StatusMovedPermanently)
				return
			}
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_ = c.Write(r.Context(), websocket.MessageText, []byte(`{"match_id":8}`))
			_, _, _ = c.Read(context.Background()) // until the client closes
		})
		base := "ws" + strings.TrimPrefix(moved.URL, "http")
		rec := newRecorder()
		r := start(t, Config{URL: base + "/old"}, rec)
		rec.wait(t, 1)
		if got := r.src.Status().Detail; got != "connected to "+base+"/new?REDACTED" {
			t.Errorf("status %q, want it to name where the stream is", got)
		}
	})
}

// TestShutdownDoesNotWaitForADeafPeer: a peer that never answers the close
// frame (it stops reading) holds the shutdown for CloseTimeout, not for
// the library's 5 s.
//
// It holds for both ways the connection is seen: the TCP connection the
// dial opened (an *http.Transport, the usual client), and the body of the
// upgraded answer (any other RoundTripper, whose dials cannot be seen).
// Ending the read by its context alone lost a race now and then: the
// library's close handshake could take the read lock first, for 5 s.
func TestShutdownDoesNotWaitForADeafPeer(t *testing.T) {
	for _, tt := range []struct {
		name   string
		client *http.Client
	}{
		{"an http.Transport", nil},
		{"another RoundTripper", &http.Client{Transport: roundTripper{http.DefaultTransport.(*http.Transport).Clone()}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			url, _ := server(t, func(ctx context.Context, _ int, c *websocket.Conn) {
				_ = c.Write(ctx, websocket.MessageText, []byte(`x`))
				<-release // never reads, so never answers the close
			})
			rec := newRecorder()
			r := start(t, Config{URL: url, CloseTimeout: 300 * time.Millisecond, HTTPClient: tt.client}, rec)
			rec.wait(t, 1)
			began := time.Now()
			r.stop(t)
			if took := time.Since(began); took > 2*time.Second {
				t.Fatalf("Run took %v to return with a deaf peer, want about the 300 ms CloseTimeout", took)
			}
		})
	}
}

// roundTripper hides the *http.Transport it wraps.
type roundTripper struct{ rt http.RoundTripper }

func (r roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.rt.RoundTrip(req)
}

// TestUnreachableStreamIsReportedOncePerInterval: a stream whose host
// does not resolve, or that refuses every connection, is retried with
// backoff as always, but logged at error level once per
// UnreachableEvery with the hint, not once a retry; readiness carries
// the hint too. Once it connects, the next outage is reported at once.
func TestUnreachableStreamIsReportedOncePerInterval(t *testing.T) {
	refusing := func() string { // a port nothing listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	for _, tt := range []struct{ name, url string }{
		{"does not resolve", "wss://stream.nothing.invalid/matches"},
		{"refuses every connection", "ws://" + refusing + "/matches"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const every = 400 * time.Millisecond
			logs := &logtest.Buffer{}
			reg := prometheus.NewRegistry()
			src, err := New(Config{URL: tt.url, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond,
				UnreachableEvery: every, UnreachableHint: "HINT: try SOURCE=opendota-logs"},
				slog.New(slog.NewJSONHandler(logs, nil)), reg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			began := time.Now()
			go func() { done <- src.Run(ctx, newRecorder()) }()
			attempts := func() float64 { return testutil.ToFloat64(src.metrics.reconnects.WithLabelValues("connect_failed")) }
			waitFor(t, "many failed attempts over two intervals", func() bool {
				return attempts() >= 30 && time.Since(began) > 2*every+every/2
			})
			if st := src.Status(); st.Up || !strings.Contains(st.Detail, "HINT: try SOURCE=opendota-logs") {
				t.Fatalf("readiness %+v, want down with the hint", st)
			}
			cancel()
			<-done
			elapsed := time.Since(began)
			lines := logs.Lines(t, "Cannot reach the match stream; retrying, and saying so again in 400ms if it stays unreachable")
			t.Logf("%v attempts in %v, %d logged at error level", attempts(), elapsed.Round(time.Millisecond), len(lines))
			most := int(elapsed/every) + 1
			if len(lines) < 2 || len(lines) > most {
				t.Fatalf("%d error lines over %v and %v attempts; want one per %v (2 to %d)", len(lines), elapsed, attempts(), every, most)
			}
			for _, l := range lines {
				if l["level"] != "ERROR" || l["hint"] != "HINT: try SOURCE=opendota-logs" {
					t.Fatalf("line %v: want level ERROR and the hint", l)
				}
			}
			if n := strings.Count(logs.String(), "Stream connection lost"); n != 0 {
				t.Fatalf("%d warnings a retry; want none", n)
			}
		})
	}
}

// TestReconnectsAtOnceAfterFrames: a link that resets each connection
// after a frame, as a middlebox losing its state does. The source resumes
// at once after each connection that delivered a frame (a live stream
// moves on while it waits), where a connection that delivered nothing
// still backs off.
func TestReconnectsAtOnceAfterFrames(t *testing.T) {
	url, conns := server(t, func(ctx context.Context, n int, c *websocket.Conn) {
		if n < 5 {
			_ = c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"match_id":%d}`, n+1)))
		}
		// Then drop the connection without a close frame.
	})
	rec := newRecorder()
	began := time.Now()
	start(t, Config{URL: url, BackoffMin: 2 * time.Second, BackoffMax: 4 * time.Second}, rec)
	rec.wait(t, 5)
	if took := time.Since(began); took > time.Second {
		t.Errorf("5 connections of one frame each took %v, want no backoff between them (BackoffMin 2s)", took)
	}
	// The sixth connection delivers nothing: the seventh waits at least
	// half of BackoffMin.
	deadline := time.Now().Add(5 * time.Second)
	for conns() < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	sixth := time.Now()
	time.Sleep(700 * time.Millisecond)
	if n := conns(); n != 6 {
		t.Errorf("%d connections %v after the sixth, which delivered nothing; want no seventh before the backoff", n, time.Since(sixth))
	}
}
