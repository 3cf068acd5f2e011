package steamseq

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// secretKey has characters that URL encoding changes, so that both of its
// forms must be kept out of sight.
const secretKey = "S3CRET+key/0123456789ABCDEF=="

// assertNoKey fails t if text shows the key in either form.
func assertNoKey(t *testing.T, where, text string) {
	t.Helper()
	for _, k := range []string{secretKey, url.QueryEscape(secretKey), "S3CRET"} {
		if strings.Contains(text, k) {
			t.Fatalf("%s shows the key: %s", where, text)
		}
	}
}

func TestWrongKeyIsReportedAndRetried(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 20, Key: "the-right-key"})
	cfg := testConfig(base)
	cfg.Keys = []string{secretKey}
	cfg.StartSeqNum = 1
	cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 80*time.Millisecond
	rec := newRecorder()
	r := start(t, cfg, noResume, rec)
	calls := waitCalls(t, fake, 4)
	for i, c := range calls[:4] {
		if c.Status != http.StatusForbidden || c.StartAt != 1 {
			t.Fatalf("call %d = %+v, want a 403 from the same start", i, c)
		}
		// Backoff: at least half of 20ms, 40ms, 80ms.
		if i > 0 {
			least := cfg.BackoffMin << (i - 1) / 2
			if gap := c.Time.Sub(calls[i-1].Time); gap < least-5*time.Millisecond {
				t.Fatalf("retry %d came %v after the failure, want at least %v", i, gap, least)
			}
		}
	}
	waitFor(t, "down", func() bool { return strings.Contains(r.s.Status().Detail, "refused API key 1") })
	st := r.s.Status()
	if st.Up || !strings.Contains(st.Detail, "HTTP 403") {
		t.Fatalf("status = %+v, want down with HTTP 403", st)
	}
	assertNoKey(t, "status", st.Detail)

	// Fixing the key (on Steam's side here) lets the scan go on.
	fake.SetKey(secretKey)
	rec.wait(t, 20)
	assertNoKey(t, "logs", r.logs.String())
	if lines := r.logs.Lines(t, "Steam call failed, retrying"); len(lines) < 4 || lines[0]["outcome"] != outcomeClientError {
		t.Fatalf("failure logs = %v", lines)
	}
}

func TestKeyRedacted(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A proxy's error page that repeats the request.
		_, _ = w.Write([]byte("<html>" + r.URL.RawQuery + " " + r.URL.Query().Get("key") + "</html>"))
	}))
	t.Cleanup(echo.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.String(), http.StatusFound) // for ever
	}))
	t.Cleanup(redirect.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)

	tests := []struct {
		name    string
		base    string
		outcome string
		urlErr  bool // whether the error is still a *url.Error
	}{
		{"connection refused", closed.URL, outcomeNetwork, true},
		{"key echoed in the body", echo.URL, outcomeBadResponse, false},
		{"redirect loop", redirect.URL, outcomeNetwork, true},
		{"timeout", slow.URL, outcomeNetwork, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.base)
			cfg.Keys = []string{secretKey}
			cfg.StartSeqNum = 1
			cfg.RequestTimeout = 50 * time.Millisecond
			r := start(t, cfg, noResume, newRecorder())
			waitFor(t, "three failures", func() bool { return r.requests(endpointSequence, tt.outcome) >= 3 })
			r.stop(t, 5*time.Second)
			assertNoKey(t, "logs", r.logs.String())
			lines := r.logs.Lines(t, "Steam call failed, retrying")
			if len(lines) < 3 || !strings.Contains(lines[0]["error"].(string), "GetMatchHistoryBySequenceNum") {
				t.Fatalf("failure logs = %v", lines)
			}
			if tt.outcome == outcomeNetwork && !strings.Contains(lines[0]["error"].(string), "key=REDACTED") {
				t.Errorf("error %q does not show where the key was", lines[0]["error"])
			}

			// The error itself, as Run's callers would see it.
			_, _, err := r.s.cl.fetchPage(context.Background(), r.s.cl.pool.keys[0], 1, 100, MaxSeqJump)
			if err == nil {
				t.Fatal("fetchPage succeeded")
			}
			assertNoKey(t, "error", err.Error())
			var ue *url.Error
			if errors.As(err, &ue) != tt.urlErr {
				t.Errorf("error %v: *url.Error = %v, want %v", err, !tt.urlErr, tt.urlErr)
			}
			if tt.urlErr && tt.name == "timeout" && !ue.Timeout() {
				t.Errorf("timeout error %v does not report Timeout()", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; empty for none
	}{
		{"defaults", Config{Keys: []string{"k"}}, ""},
		{"no key", Config{}, "no Steam API key"},
		{"not http", Config{Keys: []string{"k"}, BaseURL: "ftp://api.steampowered.com"}, "not an http"},
		{"no host", Config{Keys: []string{"k"}, BaseURL: "https://"}, "not an http"},
		{"query in base", Config{Keys: []string{"k"}, BaseURL: "https://x/?key=k"}, "query"},
		{"page too big", Config{Keys: []string{"k"}, MatchesRequested: 101}, "not in 1..100"},
		{"page negative", Config{Keys: []string{"k"}, MatchesRequested: -1}, "not in 1..100"},
		{"negative start", Config{Keys: []string{"k"}, StartSeqNum: -1}, "negative"},
		{"negative idle wait", Config{Keys: []string{"k"}, IdleWait: -time.Second}, "idle wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				c := s.cfg
				if c.BaseURL != DefaultBaseURL || c.MatchesRequested != 100 || c.IdleWait != 5*time.Second ||
					c.MinInterval != time.Second || c.BackoffMin != time.Second || c.BackoffMax != time.Minute ||
					c.RequestTimeout != 30*time.Second || c.HeadInterval != time.Minute {
					t.Fatalf("defaults = %+v", c)
				}
				if st := s.Status(); st.Up || s.Position() != 0 || s.Head() != 0 {
					t.Fatalf("new scanner: status %+v, position %d, head %d", st, s.Position(), s.Head())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error with %q", err, tt.want)
			}
		})
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Keys: []string{"k"}}, slog.New(slog.DiscardHandler), reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Keys: []string{"k"}}, slog.New(slog.DiscardHandler), reg); err == nil {
		t.Fatal("New registered its metrics twice on one registry")
	}
}

func TestBackoff(t *testing.T) {
	s := &Client{cfg: Config{BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second}}
	tests := []struct {
		attempt    int
		retryAfter time.Duration
		min, max   time.Duration
	}{
		{0, 0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		{5, 0, time.Second, 2 * time.Second},
		{1000, 0, time.Second, 2 * time.Second},
		{0, 3 * time.Second, 3 * time.Second, 3 * time.Second},
		{5, time.Millisecond, time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		for i := 0; i < 200; i++ {
			if d := s.backoff(tt.attempt, tt.retryAfter); d < tt.min || d > tt.max {
				t.Fatalf("backoff(%d, %v) = %v, want in [%v, %v]", tt.attempt, tt.retryAfter, d, tt.min, tt.max)
			}
		}
	}
}

// TestFailureWaitIsShort: after a run of network or server errors the
// wait stays under MaxFailureWait whatever BackoffMax, so that the scan
// goes on within seconds of the link coming back; a Retry-After still
// makes it longer.
func TestFailureWaitIsShort(t *testing.T) {
	s := &Client{cfg: Config{BackoffMin: time.Second, BackoffMax: time.Minute}}
	tests := []struct {
		failures   int
		retryAfter time.Duration
		min, max   time.Duration
	}{
		{0, 0, 500 * time.Millisecond, time.Second},
		{1, 0, time.Second, 2 * time.Second},
		{10, 0, MaxFailureWait / 2, MaxFailureWait},
		{10, 20 * time.Second, 20 * time.Second, 20 * time.Second},
	}
	for _, tt := range tests {
		for range 200 {
			if d := s.failureWait(tt.failures, tt.retryAfter); d < tt.min || d > tt.max {
				t.Fatalf("failureWait(%d, %v) = %v, want in [%v, %v]", tt.failures, tt.retryAfter, d, tt.min, tt.max)
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		header   string
		min, max time.Duration
	}{
		{"", 0, 0},
		{"5", 5 * time.Second, 5 * time.Second},
		{" 2 ", 2 * time.Second, 2 * time.Second},
		{"0", 0, 0},
		{"-3", 0, 0},
		{"soon", 0, 0},
		{"86400", MaxRetryAfter, MaxRetryAfter},
		{time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat), 28 * time.Second, 30 * time.Second},
		{"Mon, 02 Jan 2006 15:04:05 GMT", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Retry-After", tt.header)
			}
			if d := retryAfter(h); d < tt.min || d > tt.max {
				t.Fatalf("retryAfter(%q) = %v, want in [%v, %v]", tt.header, d, tt.min, tt.max)
			}
		})
	}
}

func TestDecodePage(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		start   int64
		want    []match.Match
		reasons []match.Reason
		err     string
	}{
		{"empty page", `{"result":{"status":1,"matches":[]}}`, 5, []match.Match{}, nil, ""},
		{"no matches member", `{"result":{"status":1}}`, 5, []match.Match{}, nil, ""},
		{"two matches", `{"result":{"status":1,"matches":[{"match_id":20,"match_seq_num":7,"start_time":1700000000,"players":[{"match_id":1}]},{"match_seq_num":9,"match_id":10}]}}`, 5,
			[]match.Match{{ID: 20, SeqNum: 7, StartTime: 1700000000}, {ID: 10, SeqNum: 9}}, []match.Reason{"", ""}, ""},
		{"bad start_time ignored", `{"result":{"status":1,"matches":[{"match_id":20,"match_seq_num":7,"start_time":"x"}]}}`, 7,
			[]match.Match{{ID: 20, SeqNum: 7}}, []match.Reason{""}, ""},
		{"rejected entry", `{"result":{"status":1,"matches":[{"match_id":1.5,"match_seq_num":7}]}}`, 5,
			[]match.Match{{SeqNum: 7}}, []match.Reason{match.NotInteger}, ""},
		{"not JSON", `<html>`, 5, nil, nil, "not JSON"},
		{"no status", `{"result":{"matches":[]}}`, 5, nil, nil, "no status"},
		{"status 8", `{"result":{"status":8}}`, 5, nil, nil, "status 8"},
		{"entry not an object", `{"result":{"status":1,"matches":[7]}}`, 5, nil, nil, "not an object"},
		{"seq a string", `{"result":{"status":1,"matches":[{"match_id":1,"match_seq_num":"7"}]}}`, 5, nil, nil, "no valid match_seq_num"},
		{"seq zero", `{"result":{"status":1,"matches":[{"match_id":1,"match_seq_num":0}]}}`, 0, nil, nil, "no valid match_seq_num"},
		{"duplicate seq", `{"result":{"status":1,"matches":[{"match_id":1,"match_seq_num":7},{"match_id":2,"match_seq_num":7}]}}`, 5, nil, nil, "out of order"},
		{"below start", `{"result":{"status":1,"matches":[{"match_id":1,"match_seq_num":4}]}}`, 5, nil, nil, "starts at seq 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, _, err := decodePage([]byte(tt.body), tt.start, tt.start+MaxSeqJump)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("decodePage = %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodePage: %v", err)
			}
			if len(entries) != len(tt.want) {
				t.Fatalf("%d entries, want %d", len(entries), len(tt.want))
			}
			for i, e := range entries {
				if e.m != tt.want[i] || e.reason != tt.reasons[i] {
					t.Errorf("entry %d = %+v %q, want %+v %q", i, e.m, e.reason, tt.want[i], tt.reasons[i])
				}
			}
		})
	}
}

func TestDecodeHead(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int64
		err  bool
	}{
		{"newest first", `{"result":{"status":1,"num_results":2,"matches":[{"match_id":9,"match_seq_num":50},{"match_id":8,"match_seq_num":49}]}}`, 50, false},
		{"highest wins", `{"result":{"status":1,"matches":[{"match_id":9,"match_seq_num":50},{"match_id":8,"match_seq_num":51}]}}`, 51, false},
		{"no matches", `{"result":{"status":1,"matches":[]}}`, 0, true},
		{"private", `{"result":{"status":15,"statusDetail":"Cannot get match history for a user that hasn't allowed it."}}`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeHead([]byte(tt.body))
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("decodeHead = %d, %v; want %d, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// TestHugeAnswerIsRefusedWithinBounds: a 50 MB answer, declared or not,
// is refused as a bad answer after reading at most maxBodyBytes of it (so
// the buffer holding it stays within twice that), and one that declares
// its size is refused unread.
func TestHugeAnswerIsRefusedWithinBounds(t *testing.T) {
	const huge = 50 << 20
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for _, declared := range []bool{true, false} {
		var written atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if declared {
				w.Header().Set("Content-Length", strconv.Itoa(huge))
			}
			for range huge / len(chunk) {
				n, err := w.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					return
				}
			}
		}))
		cfg := testConfig(srv.URL)
		s, err := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = s.cl.fetchPage(context.Background(), s.cl.pool.keys[0], 1, 100, MaxSeqJump)
		srv.CloseClientConnections()
		srv.Close() // waits for the handler
		if outcomeOf(err) != outcomeBadResponse || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("declared %v: %v, want a bad answer, larger than the bound", declared, err)
		}
		// What the server got written is what the client read (at most
		// 8 MiB), plus the sockets' buffers (a few MiB on loopback).
		limit := int64(20 << 20)
		if declared {
			limit = 8 << 20
		}
		if w := written.Load(); w > limit {
			t.Errorf("declared %v: the server wrote %d MiB before the client stopped, want under %d MiB", declared, w>>20, limit>>20)
		}
	}
}

func TestReadBounded(t *testing.T) {
	const limit = 1 << 20
	for _, tt := range []struct {
		name           string
		size, declared int64
		want           int64
	}{
		{"undeclared, small", 100 << 10, -1, 100 << 10},
		{"declared", 300 << 10, 300 << 10, 300 << 10},
		{"declared too short", 700 << 10, 10, 700 << 10},
		{"at the limit", limit, -1, limit},
		{"past the limit, undeclared", 5 * limit, -1, limit},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := readBounded(io.LimitReader(zeros{}, tt.size), tt.declared, limit)
			if err != nil || int64(len(body)) != tt.want || cap(body) > limit {
				t.Fatalf("read %d bytes (capacity %d), %v; want %d within a capacity of %d", len(body), cap(body), err, tt.want, limit)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
