package odlogs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dota-data/ingestion-service/internal/logtest"
	"github.com/dota-data/ingestion-service/internal/match"
)

// insert returns an "[insert: api]" line for id, as insert.ts writes it.
func insert(id string) string {
	return "[2026-08-21T18:25:36.123Z] [inserter] [insert: api] [ended: a few seconds ago] " + id
}

// parsed returns a successful parse line for id, as parser.ts writes it.
func parsed(id string) string {
	return "\x1b[32m[2026-08-21T18:25:36.123Z] [parser] [success: 5321ms] [api: 102ms] [gcdata: 350ms] [parse: 4801ms] [queued: a minute ago] [pri: 1] [att: 1] " + id + " \x1b[39m"
}

// reject is one call of Handler.Reject.
type reject struct {
	reason match.Reason
	item   string
}

// recorder is a Handler that keeps what it is given and signals each call.
type recorder struct {
	mu      sync.Mutex
	ids     []int64
	rejects []reject
	got     chan struct{}
	onMatch func(match.Match) // when set, called inside Match
	err     error             // returned by Match
}

func newRecorder() *recorder { return &recorder{got: make(chan struct{}, 10000)} }

func (r *recorder) Match(_ context.Context, m match.Match) error {
	if r.onMatch != nil {
		r.onMatch(m)
	}
	r.mu.Lock()
	r.ids = append(r.ids, m.ID)
	r.mu.Unlock()
	r.got <- struct{}{}
	return r.err
}

func (r *recorder) Reject(_ context.Context, reason match.Reason, item []byte) {
	r.mu.Lock()
	r.rejects = append(r.rejects, reject{reason, string(item)})
	r.mu.Unlock()
	r.got <- struct{}{}
}

// wait waits for n more calls.
func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-r.got:
		case <-timeout:
			t.Fatalf("timed out after %d of %d handler calls", i, n)
		}
	}
}

func (r *recorder) snapshot() ([]int64, []reject) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.ids...), append([]reject(nil), r.rejects...)
}

// reconnectLog is a slog.Handler that passes on the reason of every
// reconnect the source logs, so that tests can wait for one.
type reconnectLog struct{ reasons chan string }

func (l *reconnectLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *reconnectLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *reconnectLog) WithGroup(string) slog.Handler            { return l }

func (l *reconnectLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "Log stream connection lost, reconnecting" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			select {
			case l.reasons <- a.Value.String():
			default: // a test that waits for no more does not block the source
			}
		}
		return true
	})
	return nil
}

// request is what the server saw of one request.
type request struct {
	header http.Header
	at     time.Time
	path   string
}

// server is a loopback SSE server whose behaviour per request is given by
// serve; it is told the request number, from 0.
type server struct {
	url      string
	mu       sync.Mutex
	requests []request
	arrived  chan int // receives each request's number as it arrives
}

func newServer(t *testing.T, serve func(w http.ResponseWriter, r *http.Request, n int)) *server {
	t.Helper()
	s := &server{arrived: make(chan int, 1000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := len(s.requests)
		s.requests = append(s.requests, request{r.Header.Clone(), time.Now(), r.URL.Path})
		s.mu.Unlock()
		s.arrived <- n
		serve(w, r, n)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/logs"
	return s
}

func (s *server) request(n int) request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[n]
}

// waitRequest waits for request n to arrive.
func (s *server) waitRequest(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case got := <-s.arrived:
			if got >= n {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for request %d", n)
		}
	}
}

// sse starts an event stream on w and returns a function that writes raw
// stream text and flushes it.
func sse(w http.ResponseWriter) func(string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	return func(text string) {
		_, _ = fmt.Fprint(w, text)
		_ = rc.Flush()
	}
}

// data writes lines as the upstream does, one event per line.
func data(write func(string), lines ...string) {
	for _, l := range lines {
		write("data: " + l + "\n\n")
	}
}

type running struct {
	src     *Source
	cancel  context.CancelFunc
	done    chan error
	reasons chan string
}

// fast makes reconnects quick in tests.
func fast(cfg Config) Config {
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = time.Millisecond
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 5 * time.Millisecond
	}
	return cfg
}

func start(t *testing.T, cfg Config, h Handler) *running {
	t.Helper()
	log := &reconnectLog{reasons: make(chan string, 1000)}
	src, err := New(cfg, slog.New(log), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{src: src, cancel: cancel, done: make(chan error, 1), reasons: log.reasons}
	go func() { r.done <- src.Run(ctx, h) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
		r.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// reconnected waits for the next reconnect and checks its reason.
func (r *running) reconnected(t *testing.T, reason string) {
	t.Helper()
	select {
	case got := <-r.reasons:
		if got != reason {
			t.Fatalf("reconnect reason = %q, want %q", got, reason)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for a %s reconnect", reason)
	}
}

func (r *running) reconnects(reason string) float64 {
	return testutil.ToFloat64(r.src.metrics.reconnects.WithLabelValues(reason))
}

func (r *running) lines(kind string) float64 {
	switch kind {
	case lineInsert:
		return testutil.ToFloat64(r.src.metrics.lines[Insert])
	case lineParsed:
		return testutil.ToFloat64(r.src.metrics.lines[Parsed])
	case lineMalformed:
		return testutil.ToFloat64(r.src.metrics.malformed)
	case lineIgnored:
		return testutil.ToFloat64(r.src.metrics.ignored)
	}
	return testutil.ToFloat64(r.src.metrics.oversized)
}

// noisyStream is a replay of the upstream's stream as it might arrive.
func noisyStream(write func(string)) {
	huge := strings.Repeat("x", 5000)
	data(write,
		insert("8012345678"),
		parsed("8012345601"),
		"[2026-08-21T18:25:36.200Z] [retriever] [insert: gcdata] [ended: 3 days ago] 7912345678",
		"[2026-08-21T18:25:36.201Z] [parser] [insert: parsed] [ended: a day ago] 8012345601",
		"\x1b[35m[2026-08-21T18:25:36.300Z] [web] [queue: parse] [pri: 1] [att: 1] 8012345602\x1b[39m",
		"\x1b[33m[2026-08-21T18:25:36.400Z] [parser] [fail: 12ms] [api: 0ms] [gcdata: 0ms] [parse: 0ms] [queued: now] [pri: 1] [att: 1] 8012345603 Missing API data\x1b[39m",
		"\x1b[1;31m"+insert("8012345679")+"\x1b[0m",
		insert("undefined"),
		insert("0"),
		insert("-5"),
		insert("9223372036854775808"),
		parsed("NaN"),
		huge,
		"[t] [inserter] [insert: api] [ended: "+huge+"] 8012345680",
		"",
	)
	write(": a comment\n\n")
	write("\n\n\n")
	write("event: ping\ndata: " + insert("1") + "\n\n")
	write("data: " + insert("8012345681") + "\r\ndata: " + parsed("8012345604") + "\r\n\r\n")
	write("data: " + insert("8012345682") + "\rdata: noise\r\r")
}

func TestLinesFromANoisyStream(t *testing.T) {
	tests := []struct {
		name     string
		channels []string
		last     string // the stream's last line, which yields a match
		ids      []int64
		rejects  []match.Reason
		kinds    map[string]float64
	}{
		{
			name:    "api only (default)",
			last:    insert("999"),
			ids:     []int64{8012345678, 8012345679, 8012345681, 8012345682, 999},
			rejects: []match.Reason{match.NotInteger, match.NotPositive, match.NotPositive, match.OutOfRange, match.TooLarge},
			kinds:   map[string]float64{lineInsert: 5, lineParsed: 0, lineMalformed: 5, lineIgnored: 10, lineOversized: 1},
		},
		{
			name:     "api and parsed",
			channels: []string{ChannelAPI, ChannelParsed},
			last:     insert("999"),
			ids:      []int64{8012345678, 8012345601, 8012345679, 8012345681, 8012345604, 8012345682, 999},
			rejects:  []match.Reason{match.NotInteger, match.NotPositive, match.NotPositive, match.OutOfRange, match.NotInteger, match.TooLarge},
			kinds:    map[string]float64{lineInsert: 5, lineParsed: 2, lineMalformed: 6, lineIgnored: 7, lineOversized: 1},
		},
		{
			name:     "parsed only",
			channels: []string{ChannelParsed},
			last:     parsed("1000"),
			ids:      []int64{8012345601, 8012345604, 1000},
			rejects:  []match.Reason{match.NotInteger},
			kinds:    map[string]float64{lineInsert: 0, lineParsed: 3, lineMalformed: 1, lineIgnored: 15, lineOversized: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
				write := sse(w)
				noisyStream(write)
				data(write, tt.last)
				<-r.Context().Done()
			})
			rec := newRecorder()
			r := start(t, Config{URL: srv.url, Channels: tt.channels, MaxLineBytes: 1024}, rec)
			rec.wait(t, len(tt.ids)+len(tt.rejects))
			ids, rejects := rec.snapshot()
			if fmt.Sprint(ids) != fmt.Sprint(tt.ids) {
				t.Errorf("IDs = %v, want %v", ids, tt.ids)
			}
			var reasons []match.Reason
			for _, rj := range rejects {
				reasons = append(reasons, rj.reason)
				if rj.reason == match.TooLarge && len(rj.item) != 1024-len("data: ") {
					t.Errorf("too-large item is %d bytes, want the line's first %d", len(rj.item), 1024-len("data: "))
				}
			}
			if fmt.Sprint(reasons) != fmt.Sprint(tt.rejects) {
				t.Errorf("reject reasons = %v, want %v", reasons, tt.rejects)
			}
			for kind, want := range tt.kinds {
				if got := r.lines(kind); got != want {
					t.Errorf("lines_total{kind=%q} = %v, want %v", kind, got, want)
				}
			}
			if got := r.reconnects(reasonClosed) + r.reconnects(reasonLost); got != 0 {
				t.Errorf("noise caused %v reconnects", got)
			}
		})
	}
}

func TestReconnectAfterServerDrop(t *testing.T) {
	tests := []struct {
		name   string
		first  string // what the first connection sends before it ends
		lastID string // the Last-Event-ID the second connection must carry
	}{
		{"server sends ids", "id: 41\ndata: " + insert("1") + "\n\nid: 42\ndata: " + insert("2") + "\n\n", "42"},
		{"server sends no ids", "data: " + insert("1") + "\n\ndata: " + insert("2") + "\n\n", ""},
		{"id without data", "data: " + insert("1") + "\n\ndata: " + insert("2") + "\n\nid: 7\n\n", "7"},
		{"id of an event cut off", "id: 5\ndata: " + insert("1") + "\n\ndata: " + insert("2") + "\n\nid: 6\ndata: " + insert("3"), "5"},
		// WHATWG: an id with NUL is ignored.
		{"id with NUL", "id: 9\ndata: " + insert("1") + "\n\nid: 1\x002\ndata: " + insert("2") + "\n\n", "9"},
		// Not a valid header value, or 60 KB: kept as the last ID, not sent,
		// and the source still reconnects.
		{"id with a control character", "id: a\x01b\ndata: " + insert("1") + "\n\ndata: " + insert("2") + "\n\n", ""},
		{"id of 60 KB", "id: " + strings.Repeat("x", 60_000) + "\ndata: " + insert("1") + "\n\ndata: " + insert("2") + "\n\n", ""},
		{"valid id after a bad one", "id: a\x7fb\ndata: " + insert("1") + "\n\nid: 10\ndata: " + insert("2") + "\n\n", "10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				write := sse(w)
				if n == 0 {
					write(tt.first)
					return // the server drops the stream
				}
				data(write, insert("3"))
				<-r.Context().Done()
			})
			rec := newRecorder()
			r := start(t, fast(Config{URL: srv.url, Header: http.Header{"User-Agent": {"odlogs-test"}}}), rec)
			rec.wait(t, 3)
			if ids, _ := rec.snapshot(); fmt.Sprint(ids) != "[1 2 3]" {
				t.Fatalf("IDs = %v, want [1 2 3]", ids)
			}
			if got := r.reconnects(reasonClosed); got != 1 {
				t.Errorf("reconnects_total{reason=closed_by_server} = %v, want 1", got)
			}
			first, second := srv.request(0).header, srv.request(1).header
			if _, ok := first["Last-Event-Id"]; ok {
				t.Errorf("first request sent Last-Event-ID %q", first.Get("Last-Event-ID"))
			}
			got, sent := second["Last-Event-Id"]
			if sent != (tt.lastID != "") || second.Get("Last-Event-ID") != tt.lastID {
				t.Errorf("second request's Last-Event-ID = %q (sent %v), want %q", got, sent, tt.lastID)
			}
			for _, h := range []http.Header{first, second} {
				if h.Get("Accept") != "text/event-stream" || h.Get("Cache-Control") != "no-cache" || h.Get("User-Agent") != "odlogs-test" {
					t.Errorf("request headers = %v", h)
				}
			}
		})
	}
}

func TestFailedResponsesAreRetriedWithBackoff(t *testing.T) {
	tests := []struct {
		name   string
		fail   func(w http.ResponseWriter)
		reason string
	}{
		{"503", func(w http.ResponseWriter) { http.Error(w, "busy", http.StatusServiceUnavailable) }, reasonBadStatus},
		{"404", func(w http.ResponseWriter) { http.NotFound(w, nil) }, reasonBadStatus},
		{"plain text", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = fmt.Fprint(w, "data: "+insert("66")+"\n\n")
		}, reasonBadContentType},
		{"no content type", func(w http.ResponseWriter) {
			w.Header()["Content-Type"] = nil
			_, _ = fmt.Fprint(w, "\x00\x01")
		}, reasonBadContentType},
	}
	const backoffMin = 40 * time.Millisecond
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n < 2 {
					tt.fail(w)
					return
				}
				data(sse(w), insert("7"))
				<-r.Context().Done()
			})
			rec := newRecorder()
			// Both channels: the route of all of them, so that a 404 is
			// the server's and not the api channel's missing route.
			r := start(t, Config{URL: srv.url, Channels: []string{ChannelAPI, ChannelParsed}, BackoffMin: backoffMin, BackoffMax: 4 * backoffMin}, rec)
			r.reconnected(t, tt.reason)
			if st := r.src.Status(); st.Up || !strings.Contains(st.Detail, tt.reason) {
				t.Errorf("status after a failed response = %+v, want down with %s", st, tt.reason)
			}
			r.reconnected(t, tt.reason)
			rec.wait(t, 1)
			if ids, _ := rec.snapshot(); fmt.Sprint(ids) != "[7]" {
				t.Fatalf("IDs = %v, want [7]", ids)
			}
			if got := r.reconnects(tt.reason); got != 2 {
				t.Errorf("reconnects_total{reason=%s} = %v, want 2", tt.reason, got)
			}
			// The delays: at least half of BackoffMin, then of twice it.
			for n, min := range []time.Duration{backoffMin / 2, backoffMin} {
				if gap := srv.request(n + 1).at.Sub(srv.request(n).at); gap < min {
					t.Errorf("reconnect %d came after %v, want at least %v", n+1, gap, min)
				}
			}
		})
	}
}

func TestRetryFieldSetsTheMinimumDelay(t *testing.T) {
	tests := []struct {
		name       string
		retry      string
		backoffMax time.Duration
		atLeast    time.Duration
	}{
		{"retry above the backoff", "300", time.Minute, 300 * time.Millisecond},
		{"retry capped by BackoffMax", "3600000", 100 * time.Millisecond, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ended := make(chan time.Time, 1)
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				write := sse(w)
				if n == 0 {
					write("retry: " + tt.retry + "\n\n")
					data(write, insert("1"))
					ended <- time.Now()
					return
				}
				data(write, insert("2"))
				<-r.Context().Done()
			})
			rec := newRecorder()
			start(t, Config{URL: srv.url, BackoffMin: time.Millisecond, BackoffMax: tt.backoffMax}, rec)
			rec.wait(t, 2)
			if gap := srv.request(1).at.Sub(<-ended); gap < tt.atLeast {
				t.Errorf("reconnected after %v, want at least %v", gap, tt.atLeast)
			}
		})
	}
}

func TestIdleConnectionIsReplaced(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		data(sse(w), insert(fmt.Sprint(n+1)))
		<-r.Context().Done() // then silence
	})
	rec := newRecorder()
	r := start(t, fast(Config{URL: srv.url, IdleTimeout: 300 * time.Millisecond}), rec)
	rec.wait(t, 1)
	r.reconnected(t, reasonIdleTimeout)
	rec.wait(t, 1)
	if ids, _ := rec.snapshot(); fmt.Sprint(ids) != "[1 2]" {
		t.Fatalf("IDs = %v, want [1 2]", ids)
	}
}

func TestCommentsKeepAQuietConnection(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		write := sse(w)
		data(write, insert("1"))
		// Keep-alive comments every 10ms for two idle timeouts.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 100; i++ {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				write(":\n")
			}
		}
		data(write, insert("2"))
		<-r.Context().Done()
	})
	rec := newRecorder()
	r := start(t, fast(Config{URL: srv.url, IdleTimeout: 500 * time.Millisecond}), rec)
	rec.wait(t, 2)
	if got := r.reconnects(reasonIdleTimeout); got != 0 {
		t.Fatalf("a connection kept alive by comments was replaced %v times", got)
	}
}

func TestConnectTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			select { // no headers until the client gives up
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		data(sse(w), insert("5"))
		<-r.Context().Done()
	})
	t.Cleanup(func() { close(release) })
	rec := newRecorder()
	r := start(t, fast(Config{URL: srv.url, ConnectTimeout: 500 * time.Millisecond}), rec)
	r.reconnected(t, reasonConnectFailed)
	rec.wait(t, 1)
	if got := r.reconnects(reasonConnectFailed); got != 1 {
		t.Errorf("reconnects_total{reason=connect_failed} = %v, want 1", got)
	}
}

func TestConnectRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	r := start(t, fast(Config{URL: url}), newRecorder())
	for i := 0; i < 3; i++ {
		r.reconnected(t, reasonConnectFailed)
	}
	if st := r.src.Status(); st.Up || !strings.Contains(st.Detail, reasonConnectFailed) {
		t.Fatalf("status = %+v, want down with %s", st, reasonConnectFailed)
	}
}

func TestStatusFollowsTheConnection(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			<-release // hold the second request before its headers
		}
		data(sse(w), insert(fmt.Sprint(n+1)))
		if n == 0 {
			return
		}
		<-r.Context().Done()
	})
	rec := newRecorder()
	type seen struct {
		up        bool
		connected float64
	}
	during := make(chan seen, 2)
	var src *Source
	rec.onMatch = func(match.Match) {
		during <- seen{src.Status().Up, testutil.ToFloat64(src.metrics.connected)}
	}
	log := &reconnectLog{reasons: make(chan string, 100)}
	src, err := New(fast(Config{URL: srv.url}), slog.New(log), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if st := src.Status(); st.Up || st.Detail != "not connected yet" {
		t.Fatalf("status before Run = %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, rec) }()
	defer func() {
		cancel()
		<-done
	}()

	for i := 0; i < 2; i++ {
		if i == 1 {
			srv.waitRequest(t, 1)
			st := src.Status()
			if st.Up || !strings.Contains(st.Detail, reasonClosed) {
				t.Errorf("status between connections = %+v, want down with %s", st, reasonClosed)
			}
			if got := testutil.ToFloat64(src.metrics.connected); got != 0 {
				t.Errorf("connected between connections = %v, want 0", got)
			}
			close(release)
		}
		rec.wait(t, 1)
		if s := <-during; !s.up || s.connected != 1 {
			t.Errorf("while reading connection %d: up=%v connected=%v, want up and 1", i, s.up, s.connected)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	done <- nil
	if st := src.Status(); st.Up || st.Detail != "stopped" {
		t.Errorf("status after Run = %+v, want down, stopped", st)
	}
	if got := testutil.ToFloat64(src.metrics.connected); got != 0 {
		t.Errorf("connected after Run = %v, want 0", got)
	}
}

func TestCancelEndsRunPromptly(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		serve func(w http.ResponseWriter, r *http.Request)
	}{
		{"while reading a quiet stream", Config{}, func(w http.ResponseWriter, r *http.Request) {
			sse(w)
			<-r.Context().Done()
		}},
		{"while waiting for headers", Config{ConnectTimeout: time.Hour}, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}},
		{"while backing off", Config{BackoffMin: time.Hour}, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { tt.serve(w, r) })
			cfg := tt.cfg
			cfg.URL = srv.url
			r := start(t, cfg, newRecorder())
			srv.waitRequest(t, 0)
			began := time.Now()
			r.stop(t)
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("Run took %v to return after cancel", took)
			}
			if st := r.src.Status(); st.Up {
				t.Errorf("status after stop = %+v", st)
			}
		})
	}
}

func TestLineReadBeforeCancelIsHandedOn(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		data(sse(w), insert("1"), insert("2"))
		<-r.Context().Done()
	})
	rec := newRecorder()
	entered, release := make(chan struct{}), make(chan struct{})
	rec.onMatch = func(m match.Match) {
		if m.ID == 1 {
			close(entered)
			<-release // hold the reader while Run is cancelled
		}
	}
	r := start(t, Config{URL: srv.url}, rec)
	select {
	case <-entered:
	case <-time.After(15 * time.Second):
		t.Fatal("the first match never reached the handler")
	}
	r.cancel()
	close(release)
	rec.wait(t, 1)
	r.stop(t)
	if ids, _ := rec.snapshot(); len(ids) == 0 || ids[0] != 1 {
		t.Fatalf("IDs = %v, want 1 first", ids)
	}
}

func TestHandlerErrorDoesNotStopTheStream(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		data(sse(w), insert("1"), insert("2"))
		<-r.Context().Done()
	})
	rec := newRecorder()
	rec.err = errors.New("buffer full: match dropped")
	r := start(t, Config{URL: srv.url}, rec)
	rec.wait(t, 2)
	if got := r.lines(lineInsert); got != 2 {
		t.Errorf("lines_total{kind=insert} = %v, want 2", got)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; empty for none
	}{
		{"zero config", Config{}, ""},
		{"both channels", Config{Channels: []string{"parsed", "api"}}, ""},
		{"ws URL", Config{URL: "ws://localhost/logs"}, "not http:// or https://"},
		{"no host", Config{URL: "https:///logs"}, "has no host"},
		{"unparsable URL", Config{URL: "::"}, "url"},
		{"unknown channel", Config{Channels: []string{"api", "gcdata"}}, `unknown channel "gcdata"`},
		{"negative idle timeout", Config{IdleTimeout: -time.Second}, "idle timeout is negative"},
		{"negative backoff", Config{BackoffMin: -1}, "backoff min is negative"},
		{"tiny lines", Config{MaxLineBytes: 100}, "below 256"},
		{"events smaller than lines", Config{MaxLineBytes: 4096, MaxEventBytes: 1024}, "below max line bytes"},
		{"client with a timeout", Config{HTTPClient: &http.Client{Timeout: time.Minute}}, "would cut the stream"},
		{"client without a timeout", Config{HTTPClient: &http.Client{}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestNewFailsIfMetricsCannotRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Config{}, slog.New(slog.DiscardHandler), reg); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{}, slog.New(slog.DiscardHandler), reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("second New on one registry = %v, want AlreadyRegisteredError", err)
	}
}

func TestDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.URL != "https://api.opendota.com/logs" || fmt.Sprint(c.Channels) != "[api]" ||
		c.IdleTimeout != 5*time.Minute || c.MaxLineBytes != 64<<10 || c.MaxEventBytes != 1<<20 {
		t.Fatalf("defaults = %+v", c)
	}
	if c := (Config{MaxLineBytes: 4 << 20}).withDefaults(); c.MaxEventBytes != 4<<20 {
		t.Errorf("MaxEventBytes with large lines = %d, want %d", c.MaxEventBytes, 4<<20)
	}
	if c := (Config{BackoffMin: 2 * time.Minute}).withDefaults(); c.BackoffMax != 2*time.Minute {
		t.Errorf("BackoffMax below BackoffMin = %v, want raised to it", c.BackoffMax)
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

// TestURLSecretsNeverShow: a log URL with user info and a token in its
// query is requested as given, but neither shows in a log line, the
// status detail or an error: not while reading, not when the stream
// ends, not when the host refuses.
func TestURLSecretsNeverShow(t *testing.T) {
	gotQuery := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery <- r.URL.RawQuery
		write := sse(w)
		data(write, insert("1"))
	}))
	host := strings.TrimPrefix(srv.URL, "http://")
	raw := "http://user:pw-S3CRET@" + host + "/logs?token=T0KEN-S3CRET"
	logs := &logtest.Buffer{}
	src, err := New(fast(Config{URL: raw}), slog.New(slog.NewJSONHandler(logs, nil)), prometheus.NewRegistry())
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
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(logs.String(), "Log stream connection lost") < 3 && time.Now().Before(deadline) {
		statuses = append(statuses, src.Status().Detail)
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	<-done
	text := logs.String() + strings.Join(statuses, "\n")
	if strings.Contains(text, "S3CRET") || strings.Contains(text, "user:") {
		t.Fatalf("a secret of the URL shows:\n%s", text)
	}
	if !strings.Contains(text, "http://REDACTED@"+host+"/logs?REDACTED") || strings.Count(text, "Log stream connection lost") < 3 {
		t.Errorf("the redacted URL is not shown, or the source did not retry:\n%s", text)
	}
	if _, err := New(Config{URL: "ftp://user:pw-S3CRET@host/logs?token=T0KEN-S3CRET"}, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err == nil || strings.Contains(err.Error(), "S3CRET") {
		t.Errorf("New's error %v shows a secret", err)
	}
}

// TestRedirects: an https:// log stream that redirects to plain http://,
// or to another host, is refused (the target never sees a request); a
// redirect on the same host is followed, and readiness names where the
// stream really is.
func TestRedirects(t *testing.T) {
	var hits sync.Map
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, true)
		data(sse(w), insert("1"))
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
		name, url, refused, hit string
		client                  *http.Client
	}{
		{"TLS to plaintext", tlsSrv.URL + "/logs", "redirect from TLS to plaintext refused", "/downgraded", tlsSrv.Client()},
		{"another host", other.URL + "/logs", "redirect to another host refused", "/elsewhere", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, fast(Config{URL: tt.url, HTTPClient: tt.client}), newRecorder())
			deadline := time.Now().Add(15 * time.Second)
			for !strings.Contains(r.src.Status().Detail, tt.refused) {
				if time.Now().After(deadline) {
					t.Fatalf("status %q, want the refusal", r.src.Status().Detail)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if _, ok := hits.Load(tt.hit); ok {
				t.Errorf("the redirect target %s was requested", tt.hit)
			}
		})
	}
	t.Run("same host", func(t *testing.T) {
		moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/logs" {
				http.Redirect(w, r, "/logs/api", http.StatusFound)
				return
			}
			data(sse(w), insert("2"))
			<-r.Context().Done()
		}))
		t.Cleanup(moved.Close)
		rec := newRecorder()
		r := start(t, fast(Config{URL: moved.URL + "/logs"}), rec)
		rec.wait(t, 1)
		if got := r.src.Status().Detail; got != "reading "+moved.URL+"/logs/api" {
			t.Errorf("status %q, want it to name where the stream is", got)
		}
	})
}

// TestTheAPIChannelHasItsOwnRoute: with only the api channel listed, the
// source asks for /logs/api, which carries that channel alone; a server
// that answers 404 there is read at /logs instead, from then on, logged
// once. With both channels it asks for /logs.
func TestTheAPIChannelHasItsOwnRoute(t *testing.T) {
	for _, tt := range []struct {
		name     string
		channels []string
		has404   bool // the server has no /logs/api
		want     []string
	}{
		{"api alone", nil, false, []string{"/logs/api", "/logs/api"}},
		{"api alone, an older server", nil, true, []string{"/logs/api", "/logs", "/logs"}},
		{"api and parsed", []string{ChannelAPI, ChannelParsed}, false, []string{"/logs", "/logs"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if tt.has404 && r.URL.Path == "/logs/api" {
					http.NotFound(w, r)
					return
				}
				data(sse(w), insert(strconv.Itoa(100+n)))
				// End the stream: the source reconnects, to the same route.
			})
			src, rec, logged := startLogged(t, fast(Config{URL: srv.url, Channels: tt.channels}))
			rec.wait(t, 2)
			src.stop(t)
			var paths []string
			for n := range len(tt.want) {
				paths = append(paths, srv.request(n).path)
			}
			if !slices.Equal(paths, tt.want) {
				t.Fatalf("requested %v, want %v", paths, tt.want)
			}
			if n := strings.Count(logged.String(), "no route for the api channel alone"); n != btoi(tt.has404) {
				t.Fatalf("the fallback was logged %d times, want %d:\n%s", n, btoi(tt.has404), logged.String())
			}
		})
	}
}

// startLogged runs a Source for cfg, stopped when t ends, logging JSON
// into the buffer it returns.
func startLogged(t *testing.T, cfg Config) (*running, *recorder, *logtest.Buffer) {
	t.Helper()
	logged := &logtest.Buffer{}
	src, err := New(cfg, slog.New(slog.NewJSONHandler(logged, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{src: src, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- src.Run(ctx, rec) }()
	t.Cleanup(func() { r.stop(t) })
	return r, rec, logged
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSilenceIsAFailure: a stream that stays connected and busy with
// other channels' lines but announces no match is reported down after
// StaleAfter, with the time of the last match, logged once; the next
// match brings it back up.
func TestSilenceIsAFailure(t *testing.T) {
	resume := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		write := sse(w)
		data(write, insert("501"))
		// Other channels go on: a queue line and a gcdata insert every
		// 10 ms, no insert: api.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-resume:
				data(write, insert("502"))
				<-r.Context().Done()
				return
			case <-tick.C:
				data(write, "\x1b[35m[2026-12-01T15:00:00.000Z] [scanner] [queue: parse] [pri: 5] [att: 0] 8100000001\x1b[39m",
					"[2026-12-01T15:00:00.000Z] [retriever] [insert: gcdata] [ended: 3 minutes ago] 8100000002")
			}
		}
	})
	const staleAfter = 300 * time.Millisecond
	r, rec, logged := startLogged(t, fast(Config{URL: srv.url, StaleAfter: staleAfter}))
	src := r.src
	rec.wait(t, 1)
	tookAt := time.Now()
	if st := src.Status(); !st.Up {
		t.Fatalf("status right after a match = %+v, want up", st)
	}
	lastMatch := testutil.ToFloat64(src.metrics.lastMatch)
	if d := time.Since(time.Unix(0, int64(lastMatch*1e9))); lastMatch == 0 || d < 0 || d > time.Second {
		t.Fatalf("ingestion_logs_last_match_timestamp_seconds = %v, want the match's time", lastMatch)
	}
	deadline := time.Now().Add(10 * time.Second)
	for src.Status().Up && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := src.Status()
	if st.Up || time.Since(tookAt) < staleAfter || !strings.Contains(st.Detail, "no match announced since") ||
		!strings.Contains(st.Detail, time.Unix(0, int64(lastMatch*1e9)).UTC().Format(time.RFC3339)) {
		t.Fatalf("status %+v after %v of silence; want down after %v, naming the last match's time", st, time.Since(tookAt), staleAfter)
	}
	if got := testutil.ToFloat64(src.metrics.connected); got != 1 {
		t.Fatalf("ingestion_logs_connected = %v: the connection should be up all along", got)
	}
	time.Sleep(2 * staleAfter) // the watcher logs once, not at every check
	if n := strings.Count(logged.String(), "No match announced on the log stream"); n != 1 {
		t.Fatalf("the silence was logged %d times, want once:\n%s", n, logged.String())
	}
	close(resume)
	rec.wait(t, 1)
	if st := src.Status(); !st.Up {
		t.Fatalf("status after the next match = %+v, want up", st)
	}
	if !strings.Contains(logged.String(), "Matches announced on the log stream again") {
		t.Fatalf("the recovery was not logged:\n%s", logged.String())
	}
}

// TestProbe: one connection, the api channel's route with the 404
// fallback, done at the first line; a server that is not an event stream
// fails the probe.
func TestProbe(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/logs/api":
			http.NotFound(w, r)
		case "/logs":
			data(sse(w), insert("77"))
			<-r.Context().Done()
		default:
			w.Header().Set("Content-Type", "text/html")
			_, _ = fmt.Fprint(w, "<html>")
		}
	})
	src, err := New(Config{URL: srv.url}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	where, seen, err := src.Probe(ctx)
	if err != nil || !seen || !strings.HasSuffix(where, "/logs") {
		t.Fatalf("probe: %q, line %v, %v; want /logs after the 404, a line seen", where, seen, err)
	}
	other, _ := New(Config{URL: strings.TrimSuffix(srv.url, "/logs") + "/status"}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if _, _, err := other.Probe(ctx); err == nil || !strings.Contains(err.Error(), "text/event-stream") {
		t.Fatalf("a page that is not an event stream: %v", err)
	}
}

// TestReconnectsAtOnceAfterMatches: a link that resets each connection
// after a line, as a middlebox losing its state does. The source resumes
// at once after each connection that announced a match (the feed moves
// on while it waits), where one that announced nothing still backs off.
func TestReconnectsAtOnceAfterMatches(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		write := sse(w)
		if n < 5 {
			data(write, insert(fmt.Sprint(8000000001+n)))
		}
	})
	rec := newRecorder()
	began := time.Now()
	start(t, Config{URL: s.url, BackoffMin: 2 * time.Second, BackoffMax: 4 * time.Second}, rec)
	rec.wait(t, 5)
	if took := time.Since(began); took > time.Second {
		t.Errorf("5 connections of one match each took %v, want no backoff between them (BackoffMin 2s)", took)
	}
	s.waitRequest(t, 5)
	sixth := time.Now()
	time.Sleep(700 * time.Millisecond)
	s.mu.Lock()
	n := len(s.requests)
	s.mu.Unlock()
	if n != 6 {
		t.Errorf("%d requests %v after the sixth, which announced nothing; want no seventh before the backoff", n, time.Since(sixth))
	}
}
