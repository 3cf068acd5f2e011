// Package steamfake is an in-process fake of the two Steam Web API
// endpoints that list Dota 2 matches, GetMatchHistoryBySequenceNum and
// GetMatchHistory, for tests.
//
// A Server is an http.Handler; Start serves one on loopback for the length
// of a test. It generates a deterministic sequence of matches, has a head
// (the last match that exists) that tests move with Advance, checks the key
// parameter as Steam does, injects faults on request (Fail) and records
// every call it answers (Calls, WaitCalls) so that tests can check paging
// and pacing.
package steamfake

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/match"
)

// Endpoint names one of the endpoints the Server answers.
type Endpoint string

// The endpoints, by URL path (matched without regard to case or a trailing
// slash).
const (
	// Sequence is GetMatchHistoryBySequenceNum: the matches from
	// start_at_match_seq_num on, in match_seq_num order, at most
	// matches_requested (default and maximum 100) of them.
	Sequence Endpoint = "/IDOTA2Match_570/GetMatchHistoryBySequenceNum/V001/"
	// History is GetMatchHistory: the newest matches, newest first, at most
	// matches_requested (default and maximum 100) of them.
	History Endpoint = "/IDOTA2Match_570/GetMatchHistory/V001/"
)

// DefaultKey is the key a Server accepts when Options.Key is empty.
const DefaultKey = "steamfake-key"

// Options configures a Server. Zero fields take the default in their comment.
type Options struct {
	// Key is the API key accepted in the key parameter; default DefaultKey.
	Key string
	// Count is how many matches exist at the start; default 0.
	Count int64
	// FirstSeq is the match_seq_num of the first match; default
	// 6,500,000,000.
	FirstSeq int64
	// FirstID is the match_id of the first match; default 8,300,000,000.
	// Match i (from 0) has ID FirstID + 3i, so IDs increase but differ from
	// the sequence numbers.
	FirstID int64
	// GapEvery and Gap leave holes in the sequence: after every GapEvery
	// matches the next match_seq_num skips Gap numbers, as Steam's does for
	// matches it hides. Default 0, no holes.
	GapEvery int64
	// Gap is the size of each hole; default 0.
	Gap int64
	// StartTime is the start_time of the first match, in Unix seconds;
	// default 1,760,000,000. Match i starts 2i seconds later.
	StartTime int64
}

// Fault is an answer the Server gives instead of the real one.
type Fault struct {
	// Endpoint limits the fault to one endpoint; empty means either.
	Endpoint Endpoint
	// Status is the HTTP status code; 0 means 200.
	Status int
	// RetryAfter, when not empty, is sent as the Retry-After header.
	RetryAfter string
	// Body is the response body, sent as is; it may be empty or not JSON.
	Body string
}

// Call is one request the Server answered.
type Call struct {
	// Endpoint is the endpoint called, or the raw path if it is unknown.
	Endpoint Endpoint
	// StartAt is start_at_match_seq_num, or 0 when absent.
	StartAt int64
	// Requested is matches_requested, or 0 when absent.
	Requested int
	// Time is when the request arrived.
	Time time.Time
	// Status is the HTTP status code sent.
	Status int
	// Matches is how many matches the answer held.
	Matches int
}

// Server is the fake Steam Web API. It is safe for concurrent use. Create
// it with New or Start.
type Server struct {
	opts Options

	mu       sync.Mutex
	key      string
	count    int64
	replaced map[int64]string
	faults   []pendingFault
	calls    []Call
	changed  chan struct{} // closed and replaced after every call
}

type pendingFault struct {
	n int
	f Fault
}

// New returns a Server for opts.
func New(opts Options) *Server {
	if opts.Key == "" {
		opts.Key = DefaultKey
	}
	if opts.FirstSeq == 0 {
		opts.FirstSeq = 6_500_000_000
	}
	if opts.FirstID == 0 {
		opts.FirstID = 8_300_000_000
	}
	if opts.StartTime == 0 {
		opts.StartTime = 1_760_000_000
	}
	if opts.GapEvery <= 0 || opts.Gap < 0 {
		opts.GapEvery, opts.Gap = 0, 0
	}
	return &Server{
		opts:     opts,
		key:      opts.Key,
		count:    max(opts.Count, 0),
		replaced: map[int64]string{},
		changed:  make(chan struct{}),
	}
}

// Start serves a new Server on loopback until the test ends, and returns it
// with its base URL (scheme and host, no trailing slash).
func Start(tb testing.TB, opts Options) (*Server, string) {
	tb.Helper()
	s := New(opts)
	hs := httptest.NewServer(s)
	tb.Cleanup(hs.Close)
	return s, hs.URL
}

// seq returns the match_seq_num of match i.
func (s *Server) seq(i int64) int64 {
	seq := s.opts.FirstSeq + i
	if s.opts.GapEvery > 0 {
		seq += i / s.opts.GapEvery * s.opts.Gap
	}
	return seq
}

// Advance adds n matches after the head and returns the new head.
func (s *Server) Advance(n int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count += max(n, 0)
	return s.headLocked()
}

// Head returns the match_seq_num of the last match that exists, or 0 if
// none does.
func (s *Server) Head() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headLocked()
}

func (s *Server) headLocked() int64 {
	if s.count == 0 {
		return 0
	}
	return s.seq(s.count - 1)
}

// Matches returns the matches that exist, in match_seq_num order, leaving
// out those replaced with Replace.
func (s *Server) Matches() []match.Match {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]match.Match, 0, s.count)
	for i := range s.count {
		if _, ok := s.replaced[s.seq(i)]; ok {
			continue
		}
		out = append(out, s.match(i))
	}
	return out
}

func (s *Server) match(i int64) match.Match {
	return match.Match{ID: s.opts.FirstID + 3*i, SeqNum: s.seq(i), StartTime: s.opts.StartTime + 2*i}
}

// Replace makes the match with sequence number seq be served as entry, a
// JSON object written as is, for example one without a match_id. The entry
// keeps the place of seq in pages; it should hold "match_seq_num":seq
// itself. It has no effect on a seq that no match has.
func (s *Server) Replace(seq int64, entry string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replaced[seq] = entry
}

// SetKey changes the key the Server accepts.
func (s *Server) SetKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = key
}

// Fail makes the next n calls to f.Endpoint (or to any endpoint) answer
// with f. Faults queue up in the order given; the key is checked before
// any fault applies.
func (s *Server) Fail(n int, f Fault) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, pendingFault{n: n, f: f})
}

// Calls returns the calls answered so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// WaitCalls waits until at least n calls were answered and returns them
// all. It returns ctx's error, with the calls so far, if ctx ends first.
func (s *Server) WaitCalls(ctx context.Context, n int) ([]Call, error) {
	for {
		s.mu.Lock()
		if len(s.calls) >= n {
			calls := append([]Call(nil), s.calls...)
			s.mu.Unlock()
			return calls, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return s.Calls(), ctx.Err()
		case <-changed:
		}
	}
}

// ServeHTTP answers one request like the Steam Web API: 404 for another
// path, 405 for another method, 401 without a key, 403 with a wrong key,
// then the next pending Fault if any, else the page asked for.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	call := Call{Endpoint: endpointOf(r.URL.Path), Time: time.Now()}
	call.StartAt, _ = strconv.ParseInt(q.Get("start_at_match_seq_num"), 10, 64)
	call.Requested, _ = strconv.Atoi(q.Get("matches_requested"))

	s.mu.Lock()
	status, header, body, n := s.answerLocked(r.Method, call, q.Get("key"), q.Has("key"))
	call.Status, call.Matches = status, n
	s.calls = append(s.calls, call)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func endpointOf(path string) Endpoint {
	p := strings.TrimSuffix(path, "/") + "/"
	for _, e := range []Endpoint{Sequence, History} {
		if strings.EqualFold(p, string(e)) {
			return e
		}
	}
	return Endpoint(path)
}

// forbidden is the page Steam sends for a wrong key.
const forbidden = `<html><head><title>Forbidden</title></head><body><h1>Forbidden</h1>Access is denied. Retrying will not help. Please verify your <pre>key=</pre> parameter.</body></html>`

func (s *Server) answerLocked(method string, c Call, key string, hasKey bool) (int, map[string]string, string, int) {
	html := map[string]string{"Content-Type": "text/html"}
	switch {
	case c.Endpoint != Sequence && c.Endpoint != History:
		return http.StatusNotFound, html, "<html><body><h1>Not Found</h1></body></html>", 0
	case method != http.MethodGet:
		return http.StatusMethodNotAllowed, html, "<html><body><h1>Method Not Allowed</h1></body></html>", 0
	case !hasKey || key == "":
		return http.StatusUnauthorized, html, "<html><body><h1>Unauthorized</h1></body></html>", 0
	case key != s.key:
		return http.StatusForbidden, html, forbidden, 0
	}
	for i := range s.faults {
		pf := &s.faults[i]
		if pf.f.Endpoint != "" && pf.f.Endpoint != c.Endpoint {
			continue
		}
		f := pf.f
		if pf.n--; pf.n == 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		h := map[string]string{"Content-Type": "application/json"}
		if f.RetryAfter != "" {
			h["Retry-After"] = f.RetryAfter
		}
		return orDefault(f.Status, http.StatusOK), h, f.Body, 0
	}
	limit := c.Requested
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	ok := map[string]string{"Content-Type": "application/json; charset=UTF-8"}
	if c.Endpoint == Sequence {
		body, n := s.sequenceLocked(c.StartAt, limit)
		return http.StatusOK, ok, body, n
	}
	body, n := s.historyLocked(limit)
	return http.StatusOK, ok, body, n
}

// orDefault returns v, or def if v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// sequenceLocked returns the page of up to limit matches from startAt on.
func (s *Server) sequenceLocked(startAt int64, limit int) (string, int) {
	first := int64(sort.Search(int(s.count), func(i int) bool { return s.seq(int64(i)) >= startAt }))
	var b strings.Builder
	b.WriteString(`{"result":{"status":1,"matches":[`)
	n := 0
	for i := first; i < s.count && n < limit; i++ {
		if n > 0 {
			b.WriteByte(',')
		}
		s.writeEntry(&b, i, true)
		n++
	}
	b.WriteString("]}}")
	return b.String(), n
}

// historyLocked returns the newest limit matches, newest first, in
// GetMatchHistory's shape.
func (s *Server) historyLocked(limit int) (string, int) {
	var b strings.Builder
	n := 0
	for i := s.count - 1; i >= 0 && n < limit; i-- {
		if n > 0 {
			b.WriteByte(',')
		}
		s.writeEntry(&b, i, false)
		n++
	}
	total := s.count
	return fmt.Sprintf(`{"result":{"status":1,"num_results":%d,"total_results":%d,"results_remaining":%d,"matches":[%s]}}`,
		n, total, total-int64(n), b.String()), n
}

// writeEntry writes match i as GetMatchHistoryBySequenceNum (full) or
// GetMatchHistory (!full) shows it.
func (s *Server) writeEntry(b *strings.Builder, i int64, full bool) {
	m := s.match(i)
	if e, ok := s.replaced[m.SeqNum]; ok {
		b.WriteString(e)
		return
	}
	players := fmt.Sprintf(`[{"account_id":%d,"player_slot":0,"hero_id":%d},{"account_id":4294967295,"player_slot":128,"hero_id":%d}]`,
		100_000+i%50_000, 1+i%120, 1+(i+7)%120)
	if !full {
		fmt.Fprintf(b, `{"match_id":%d,"match_seq_num":%d,"start_time":%d,"lobby_type":%d,"radiant_team_id":0,"dire_team_id":0,"players":%s}`,
			m.ID, m.SeqNum, m.StartTime, i%2*7, players)
		return
	}
	fmt.Fprintf(b, `{"players":%s,"radiant_win":%t,"duration":%d,"pre_game_duration":90,"start_time":%d,"match_id":%d,"match_seq_num":%d,"tower_status_radiant":1974,"tower_status_dire":0,"cluster":%d,"first_blood_time":%d,"lobby_type":%d,"human_players":10,"leagueid":0,"game_mode":22,"flags":1,"engine":1,"radiant_score":%d,"dire_score":%d}`,
		players, i%2 == 0, 1200+i*37%2400, m.StartTime, m.ID, m.SeqNum, 120+i%80, 60+i%200, i%2*7, 20+i%30, 15+i%35)
}
