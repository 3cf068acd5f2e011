package steamfake

import (
	"context"
	"net/http"
	"net/http/httptest"
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
	// matches_requested (default and maximum 100) of them, each the full
	// match object (see Body).
	Sequence Endpoint = "/IDOTA2Match_570/GetMatchHistoryBySequenceNum/V001/"
	// History is GetMatchHistory: the newest matches, newest first, at most
	// matches_requested (default and maximum 100) of them, each a short
	// entry (IDs, start time, lobby type, team IDs, two players).
	History Endpoint = "/IDOTA2Match_570/GetMatchHistory/V001/"
)

// DefaultKey is the key a Server accepts when Options.Key and Options.Keys
// are empty.
const DefaultKey = "steamfake-key"

// DefaultLateBy is Options.LateBy when LateFraction is set and LateBy is
// not.
const DefaultLateBy = 1000

// Options configures a Server. Zero fields take the default in their comment.
type Options struct {
	// Key is the API key accepted in the key parameter when Keys is empty;
	// default DefaultKey.
	Key string
	// Keys are the API keys accepted, in order: Call.Key is a position in
	// this list, and each key has its own rate budget. Default empty: the
	// single Key is accepted. When Keys is set, Key is ignored.
	Keys []string
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

	// RateInterval is the rate limit of each key: a token bucket refilled
	// at one token per RateInterval, holding at most RateBurst tokens and
	// full at the start. A call takes a token; a call that finds none is
	// answered HTTP 429 with an HTML page and no Retry-After header, as
	// Steam does, and takes none. Both endpoints draw on the same budget.
	// The check comes after the key check and before pending Faults.
	// Default 0: no limit. SetRateInterval changes it.
	RateInterval time.Duration
	// RateBurst is the capacity of each key's bucket; default 1.
	RateBurst int
	// RandomRefusals is the share, in 0..1, of calls refused with HTTP 429
	// whatever the pace: a deterministic pseudo-random choice by the
	// call's number (from 0), checked after the key and before the rate
	// limit, taking no token. Steam users report such 429s at random,
	// some on the very first call of a key (Nekonyx/next-auth-steam#28).
	// Default 0, none.
	RandomRefusals float64
	// RandomRetryAfter, when not empty, is the Retry-After header of the
	// random refusals; default none.
	RandomRetryAfter string

	// HiddenEvery hides matches for good, as Valve does: match i with
	// i%HiddenEvery == HiddenEvery-1 is never listed by either endpoint. A
	// hidden match still takes its place in a sequence page: a page is the
	// next matches_requested matches from start_at_match_seq_num with the
	// hidden ones then left out, so with HiddenEvery 100 a page of 100
	// mostly holds 99. It still exists: Head counts it. Default 0, none.
	HiddenEvery int64

	// LateFraction is the share, in 0..1, of matches listed late: a
	// deterministic pseudo-random choice (by a hash of the index; never the
	// first match, never a hidden one). A late match is absent from both
	// endpoints until Head is at least its match_seq_num + LateBy; until
	// then it does not take a place in pages either, as if it were not in
	// the sequence yet. Then it appears at its original match_seq_num, so a
	// single forward pass misses it. Default 0, none. LateMatches lists
	// them.
	LateFraction float64
	// LateBy is how far Head must pass a late match before it is listed;
	// default DefaultLateBy when LateFraction is set.
	LateBy int64
	// Compact serves each sequence entry as a small object (match_id,
	// match_seq_num, start_time and two players, about 300 bytes) instead
	// of a match of real size (about 14 KB), for tests of volume, where
	// the size of real matches costs only time. Off by default.
	Compact bool
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
	// Key is the position of the key used among the accepted keys (from 0),
	// or -1 when the key was missing or not accepted.
	Key int
	// Time is when the request arrived.
	Time time.Time
	// Status is the HTTP status code sent.
	Status int
	// Matches is how many matches the answer held.
	Matches int
	// RetryAfter is the Retry-After header sent, or empty.
	RetryAfter string
}

// Server is the fake Steam Web API. It is safe for concurrent use. Create
// it with New or Start.
type Server struct {
	opts Options
	now  func() time.Time // the clock of the rate limit; tests replace it

	mu       sync.Mutex
	keys     []string
	buckets  []bucket // one per key
	rate     time.Duration
	count    int64
	replaced map[int64]string
	broken   map[int64]int // seq → answers left, or <= 0 for ever
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
	if opts.RateBurst <= 0 {
		opts.RateBurst = 1
	}
	opts.HiddenEvery = max(opts.HiddenEvery, 0)
	switch {
	case !(opts.LateFraction > 0): // also NaN
		opts.LateFraction, opts.LateBy = 0, 0
	case opts.LateFraction > 1:
		opts.LateFraction = 1
	}
	if opts.LateFraction > 0 && opts.LateBy <= 0 {
		opts.LateBy = DefaultLateBy
	}
	keys := append([]string(nil), opts.Keys...)
	if len(keys) == 0 {
		keys = []string{opts.Key}
	}
	return &Server{
		opts:     opts,
		now:      time.Now,
		keys:     keys,
		buckets:  make([]bucket, len(keys)),
		rate:     max(opts.RateInterval, 0),
		count:    max(opts.Count, 0),
		replaced: map[int64]string{},
		broken:   map[int64]int{},
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

// index returns the i with seq(i) == seq, existing yet or not, and false if
// seq falls before the first match or in a gap.
func (s *Server) index(seq int64) (int64, bool) {
	off := seq - s.opts.FirstSeq
	if off < 0 {
		return 0, false
	}
	if s.opts.GapEvery == 0 {
		return off, true
	}
	period := s.opts.GapEvery + s.opts.Gap
	block, r := off/period, off%period
	if r >= s.opts.GapEvery {
		return 0, false
	}
	return block*s.opts.GapEvery + r, true
}

// Advance adds n matches after the head and returns the new head.
func (s *Server) Advance(n int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count += max(n, 0)
	return s.headLocked()
}

// Head returns the match_seq_num of the last match that exists, or 0 if
// none does. Hidden and late matches count: Head is where the sequence
// ends, whether or not its last match is listed.
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

// Matches returns the matches a complete scan can collect now, in
// match_seq_num order: those that exist and are listed (not hidden, late
// ones only once listed), leaving out those broken for ever with Break and
// those replaced with Replace. A match broken for n > 0 answers counts: it
// can be served once they are spent.
func (s *Server) Matches() []match.Match {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]match.Match, 0, s.count)
	head := s.headLocked()
	for i := range s.count {
		seq := s.seq(i)
		if !s.listed(i, head) {
			continue
		}
		if _, ok := s.replaced[seq]; ok {
			continue
		}
		if n, ok := s.broken[seq]; ok && n <= 0 {
			continue
		}
		out = append(out, s.match(i))
	}
	return out
}

// LateMatches returns the matches chosen to be listed late (see
// Options.LateFraction) that exist, listed yet or not, in match_seq_num
// order. It is empty unless LateFraction is set.
func (s *Server) LateMatches() []match.Match {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []match.Match
	for i := range s.count {
		if s.late(i) {
			out = append(out, s.match(i))
		}
	}
	return out
}

func (s *Server) match(i int64) match.Match {
	return match.Match{ID: s.opts.FirstID + 3*i, SeqNum: s.seq(i), StartTime: s.opts.StartTime + 2*i}
}

// Replace makes the match with sequence number seq be served as entry, a
// JSON object written as is, for example one without a match_id. The entry
// keeps the place of seq in pages, and is served only while that match is
// listed; it should hold "match_seq_num":seq itself. It has no effect on a
// seq that no match has. Matches leaves a replaced match out.
func (s *Server) Replace(seq int64, entry string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replaced[seq] = entry
}

// Break makes the match with sequence number seq broken: any sequence page
// that would hold it among its entries is answered, instead, HTTP 200 with
// {"result":{"status":2,"statusDetail":"Error retrieving match data."}}.
// With n > 0 only the next n such answers fail, then the match heals; with
// n <= 0 it fails until Heal. GetMatchHistory is not affected. A seq that
// falls before the first match or in a gap is ignored; a match that does
// not exist yet may be broken in advance. Breaking a match again replaces
// its count.
func (s *Server) Break(seq int64, n int) {
	if _, ok := s.index(seq); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broken[seq] = max(n, 0)
}

// Heal undoes Break for seq; it has no effect on a match that is not
// broken.
func (s *Server) Heal(seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.broken, seq)
}

// Body returns the exact JSON object the sequence endpoint serves for the
// match with sequence number seq (its Replace entry if it has one), and
// true; or "" and false if no match that exists has seq, or it is hidden.
// A late match has its body before it is listed, and a broken one has its
// body too.
func (s *Server) Body(seq int64) (string, bool) {
	i, ok := s.index(seq)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || i >= s.count || s.hidden(i) {
		return "", false
	}
	if e, ok := s.replaced[seq]; ok {
		return e, true
	}
	return string(s.appendMatch(nil, i)), true
}

// SetKey makes key the only key the Server accepts, at position 0, with a
// full rate budget.
func (s *Server) SetKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = []string{key}
	s.buckets = make([]bucket, 1)
}

// Fail makes the next n calls to f.Endpoint (or to any endpoint) answer
// with f. Faults queue up in the order given; the key and the rate limit
// are checked before any fault applies.
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
// 429 when the key's rate budget is spent, then the next pending Fault if
// any, else the page asked for (or status 2 if it holds a broken match).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	call := Call{Endpoint: endpointOf(r.URL.Path), Time: time.Now()}
	call.StartAt, _ = strconv.ParseInt(q.Get("start_at_match_seq_num"), 10, 64)
	call.Requested, _ = strconv.Atoi(q.Get("matches_requested"))

	s.mu.Lock()
	status, header, body := s.answerLocked(r.Method, &call, q.Get("key"), q.Has("key"))
	call.Status, call.RetryAfter = status, header["Retry-After"]
	s.calls = append(s.calls, call)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
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

// The pages Steam sends for a wrong key, a spent rate budget and a page
// holding a broken match.
const (
	forbidden       = `<html><head><title>Forbidden</title></head><body><h1>Forbidden</h1>Access is denied. Retrying will not help. Please verify your <pre>key=</pre> parameter.</body></html>`
	tooManyRequests = `<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>`
	brokenPage      = `{"result":{"status":2,"statusDetail":"Error retrieving match data."}}`
)

// answerLocked answers c, setting c.Key and c.Matches.
func (s *Server) answerLocked(method string, c *Call, key string, hasKey bool) (int, map[string]string, []byte) {
	c.Key = -1
	if key != "" {
		for i, k := range s.keys {
			if k == key {
				c.Key = i
				break
			}
		}
	}
	html := map[string]string{"Content-Type": "text/html"}
	switch {
	case c.Endpoint != Sequence && c.Endpoint != History:
		return http.StatusNotFound, html, []byte("<html><body><h1>Not Found</h1></body></html>")
	case method != http.MethodGet:
		return http.StatusMethodNotAllowed, html, []byte("<html><body><h1>Method Not Allowed</h1></body></html>")
	case !hasKey || key == "":
		return http.StatusUnauthorized, html, []byte("<html><body><h1>Unauthorized</h1></body></html>")
	case c.Key < 0:
		return http.StatusForbidden, html, []byte(forbidden)
	case s.randomRefusalLocked():
		h := map[string]string{"Content-Type": "text/html"}
		if s.opts.RandomRetryAfter != "" {
			h["Retry-After"] = s.opts.RandomRetryAfter
		}
		return http.StatusTooManyRequests, h, []byte(tooManyRequests)
	case !s.takeLocked(c.Key, s.now()):
		return http.StatusTooManyRequests, html, []byte(tooManyRequests)
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
		return orDefault(f.Status, http.StatusOK), h, []byte(f.Body)
	}
	limit := c.Requested
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	ok := map[string]string{"Content-Type": "application/json; charset=UTF-8"}
	var body []byte
	if c.Endpoint == Sequence {
		body, c.Matches = s.sequenceLocked(c.StartAt, limit)
	} else {
		body, c.Matches = s.historyLocked(limit)
	}
	return http.StatusOK, ok, body
}

// orDefault returns v, or def if v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
