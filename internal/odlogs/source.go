package odlogs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/redact"
	"github.com/dota-data/ingestion-service/internal/redirect"
)

// Handler receives what the source reads.
type Handler interface {
	// Match publishes one match ID the source found. An error means it was not accepted (the service is shutting down or the buffer dropped it).
	Match(ctx context.Context, m match.Match) error
	// Reject counts and logs an item that should have held a match but did not.
	Reject(ctx context.Context, reason match.Reason, item []byte)
}

// Source reads the log stream. Create it with New.
type Source struct {
	cfg     Config
	client  *http.Client
	log     *slog.Logger
	state   *health.State
	metrics *metrics
	shown   string           // the URL as shown: its secrets redacted
	hide    redact.Text      // removes the URL's secrets from error texts
	enabled [Parsed + 1]bool // by Kind
	stream  *eventStream

	url       string       // requested: the channel's own route, or cfg.URL once that is missing
	lastMatch atomic.Int64 // Unix nanoseconds of the last match, or of Run's start
	stale     atomic.Bool  // the last check found no match within StaleAfter
}

// New returns a Source for cfg, its zero fields set to their defaults. It
// fails if cfg does not pass Validate or the metrics cannot be registered
// on reg. It does not connect.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("log source: %w", err)
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("log source: %w", err)
	}
	client := redirect.Client(cfg.HTTPClient)
	s := &Source{
		cfg:     cfg,
		client:  client,
		log:     log,
		state:   health.NewState("not connected yet"),
		metrics: m,
		shown:   redact.URL(cfg.URL),
		hide:    redact.ForURL(cfg.URL),
		stream:  newEventStream(cfg.MaxLineBytes, cfg.MaxEventBytes),
		url:     channelURL(cfg),
	}
	for _, ch := range cfg.Channels {
		switch ch {
		case ChannelAPI:
			s.enabled[Insert] = true
		case ChannelParsed:
			s.enabled[Parsed] = true
		}
	}
	return s, nil
}

// Status reports whether the stream is connected and being read, and
// since when. Connected, it is down all the same while no match of the
// listed channels has come for StaleAfter: the detail says since when.
func (s *Source) Status() health.Status {
	st := s.state.Status()
	if !st.Up {
		return st
	}
	if last, silent := s.silence(); silent {
		return health.Status{Since: last.Add(s.cfg.StaleAfter), Detail: s.staleDetail(last)}
	}
	return st
}

// silence returns when the last match came (or Run started), and whether
// that is longer ago than StaleAfter.
func (s *Source) silence() (time.Time, bool) {
	ns := s.lastMatch.Load()
	if s.cfg.StaleAfter < 0 || ns == 0 {
		return time.Time{}, false
	}
	last := time.Unix(0, ns)
	return last, time.Since(last) > s.cfg.StaleAfter
}

func (s *Source) staleDetail(last time.Time) string {
	return fmt.Sprintf("connected, but no match announced since %s (%s ago, more than %s): OpenDota's inserter may be stalled",
		last.UTC().Format(time.RFC3339), time.Since(last).Round(time.Second), s.cfg.StaleAfter)
}

// watchSilence logs, until ctx ends, when the stream goes StaleAfter
// without a match while connected (once, at error level), and line logs
// when matches come again.
func (s *Source) watchSilence(ctx context.Context) {
	if s.cfg.StaleAfter < 0 {
		return
	}
	t := time.NewTicker(max(s.cfg.StaleAfter/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		last, silent := s.silence()
		if silent && s.state.Status().Up && !s.stale.Swap(true) {
			s.log.Error("No match announced on the log stream, though it is connected; readiness reports the source down until one comes",
				"last_match", last.UTC().Format(time.RFC3339), "silent_for", time.Since(last).Round(time.Second).String(),
				"stale_after", s.cfg.StaleAfter.String(), "hint", "OpenDota's inserter may be stalled: its other channels go on while no match is inserted")
		}
	}
}

// channelURL returns the URL to read: OpenDota's route of the api
// channel alone ("/logs/api") when that is the only channel listed and
// the URL is the "/logs" route, else the URL itself.
func channelURL(cfg Config) string {
	if len(cfg.Channels) != 1 || cfg.Channels[0] != ChannelAPI {
		return cfg.URL
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || !strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/logs") {
		return cfg.URL
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + ChannelAPI
	u.RawPath = ""
	return u.String()
}

// Run connects and reads until ctx ends, reconnecting after every failure
// (no response, a status other than 200, a body that is not an event
// stream, an idle or broken connection) with exponential backoff and
// jitter, never sooner than a retry: field asked for; after a connection
// that announced matches, at once. A reconnect sends
// Last-Event-ID if the server gave events an ID. When ctx ends Run stops
// reading, hands on the lines it already read, and returns nil. The
// Handler is called on Run's goroutine, in stream order, with a context
// that is not cancelled with ctx; a Handler that blocks stops the
// reading. Run must not be called again before it returns.
func (s *Source) Run(ctx context.Context, h Handler) error {
	hctx := context.WithoutCancel(ctx)
	s.lastMatch.Store(time.Now().UnixNano())
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go s.watchSilence(watchCtx)
	attempt := 0
	for {
		before := s.lastMatch.Load()
		connected, reason, err := s.session(ctx, hctx, h)
		s.metrics.connected.Set(0)
		if ctx.Err() != nil {
			s.state.Set(false, "stopped")
			return nil
		}
		if connected >= s.cfg.HealthyAfter {
			attempt = 0
		}
		var delay time.Duration
		if s.lastMatch.Load() != before {
			// The connection announced matches: the server is fine, and
			// the feed moves on while we wait. Reconnect at once (or when
			// the server's retry: field says); back off from BackoffMin if
			// that fails.
			attempt = 0
		} else {
			delay = s.backoff(attempt)
			attempt++
		}
		if r := min(s.stream.retry, s.cfg.BackoffMax); r > delay {
			delay = r
		}
		s.metrics.reconnects.WithLabelValues(reason).Inc()
		err = s.hide.Error(err)
		s.state.Set(false, fmt.Sprintf("%s: %v", reason, err))
		s.log.Warn("Log stream connection lost, reconnecting",
			"reason", reason, "error", err, "attempt", attempt, "retry_in", delay.String(), "url", s.shown)
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

// errIdle marks a connection on which nothing arrived for IdleTimeout.
var errIdle = errors.New("nothing received within the idle timeout")

// session makes one request and reads its response: it returns how long
// the stream was read and why it ended.
func (s *Source) session(ctx, hctx context.Context, h Handler) (time.Duration, string, error) {
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := s.connect(reqCtx, cancel)
	if err == nil && resp.StatusCode == http.StatusNotFound && s.url != s.cfg.URL {
		// A server without the route of one channel: read them all, and
		// keep the api channel's lines, from now on.
		_ = resp.Body.Close()
		s.log.Warn("The log stream has no route for the api channel alone; reading every channel and keeping the api channel's lines",
			"missing", redact.URL(s.url), "url", s.shown)
		s.url = s.cfg.URL
		resp, err = s.connect(reqCtx, cancel)
	}
	if err != nil {
		return 0, reasonConnectFailed, err
	}
	// A response body's Close error says nothing about the stream read.
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		// The start of the body, for the log, which often says why.
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return 0, reasonBadStatus, fmt.Errorf("unexpected status %s: %q", resp.Status, bytes.TrimSpace(head))
	}
	if ct := resp.Header.Get("Content-Type"); !isEventStream(ct) {
		return 0, reasonBadContentType, fmt.Errorf("content type %q is not text/event-stream", ct)
	}

	start := time.Now()
	s.metrics.connected.Set(1)
	// Readiness names where the stream really is: a redirect on the same
	// host may have moved it (others are refused, see internal/redirect).
	where := redact.URL(redirect.Final(resp, s.url))
	s.state.Set(true, "reading "+where)
	if where != s.shown {
		s.log.Info("Connected to log stream", "url", where, "configured_url", s.shown, "last_event_id", shownID(s.stream.lastID))
	} else {
		s.log.Info("Connected to log stream", "url", where, "last_event_id", shownID(s.stream.lastID))
	}
	body := &idleReader{r: resp.Body, d: s.cfg.IdleTimeout}
	body.timer = time.AfterFunc(body.d, func() { body.fired.Store(true); cancel() })
	s.stream.reset(body)
	err = s.read(hctx, h)
	body.timer.Stop()
	d := time.Since(start)
	switch {
	case body.fired.Load():
		return d, reasonIdleTimeout, errIdle
	case errors.Is(err, io.EOF):
		return d, reasonClosed, errors.New("the server ended the stream")
	}
	return d, reasonLost, fmt.Errorf("read: %w", err)
}

// connect sends the request and waits for the response headers, for
// ConnectTimeout at most; cancel cancels reqCtx.
func (s *Source) connect(reqCtx context.Context, cancel context.CancelFunc) (*http.Response, error) {
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	for k, v := range s.cfg.Header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if id := s.stream.lastID; id != "" && sendableID(id) {
		req.Header.Set("Last-Event-ID", id)
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(s.cfg.ConnectTimeout, func() { timedOut.Store(true); cancel() })
	resp, err := s.client.Do(req)
	if !timer.Stop() || timedOut.Load() {
		if err == nil {
			_ = resp.Body.Close() // the request is cancelled already
		}
		return nil, fmt.Errorf("no response within %v", s.cfg.ConnectTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return resp, nil
}

func isEventStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "text/event-stream"
}

// read hands on the lines of each event until the body ends.
func (s *Source) read(hctx context.Context, h Handler) error {
	for {
		ev, err := s.stream.next()
		if err != nil {
			return err
		}
		if ev.long {
			s.longLine(hctx, ev.data, h)
			continue
		}
		if ev.dropped > 0 {
			s.metrics.oversized.Add(float64(ev.dropped))
		}
		for data := ev.data; len(data) > 0; {
			i := bytes.IndexByte(data, '\n') // every data line ends in LF
			line := data[:i]
			data = data[i+1:]
			if !ev.message {
				s.metrics.ignored.Inc()
				continue
			}
			s.line(hctx, line, h)
		}
	}
}

// line hands on one data line.
func (s *Source) line(ctx context.Context, line []byte, h Handler) {
	kind, m, err := ParseLine(line)
	if !s.enabled[kind] {
		s.metrics.ignored.Inc()
		return
	}
	if err != nil {
		reason, _ := match.ReasonOf(err)
		s.metrics.malformed.Inc()
		h.Reject(ctx, reason, line)
		return
	}
	s.metrics.lines[kind].Inc()
	now := time.Now()
	s.lastMatch.Store(now.UnixNano())
	s.metrics.lastMatch.Set(float64(now.UnixNano()) / 1e9)
	if s.stale.Load() && s.stale.Swap(false) { // a read, not a write, per match
		s.log.Info("Matches announced on the log stream again", "match_id", m.ID)
	}
	// An error means the Handler did not take m; it has counted and logged
	// that, and the stream goes on.
	_ = h.Match(ctx, m)
}

// longLine reports a data line too long to read whole, given its start.
func (s *Source) longLine(ctx context.Context, head []byte, h Handler) {
	if !s.enabled[headKind(head)] {
		s.metrics.oversized.Inc()
		return
	}
	s.metrics.malformed.Inc()
	h.Reject(ctx, match.TooLarge, head)
}

// idleReader calls off its timer's alarm for another d whenever a read
// returns bytes.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	timer *time.Timer
	fired atomic.Bool
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.d)
	}
	return n, err
}

// maxEventIDBytes bounds the Last-Event-ID sent back: a longer id (the
// WHATWG rules set no bound) would be resent in full on every reconnect.
const maxEventIDBytes = 1024

// sendableID reports whether id can go back in the Last-Event-ID header:
// at most maxEventIDBytes, and a valid header field value (RFC 9110: no
// control character but tab). The WHATWG rules keep any id without NUL as
// the stream's last event ID; one that cannot be sent is left out of the
// request, rather than make every reconnect fail.
func sendableID(id string) bool {
	if len(id) > maxEventIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// shownID is id for a log line: as is when it can be sent, else how long
// it is and that it is not sent.
func shownID(id string) string {
	if sendableID(id) {
		return id
	}
	return fmt.Sprintf("(%d bytes, not a valid header value: not sent)", len(id))
}
