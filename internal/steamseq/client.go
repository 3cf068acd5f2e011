package steamseq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/match"
)

// The paths of the endpoints, below Config.BaseURL.
const (
	sequencePath = "/IDOTA2Match_570/GetMatchHistoryBySequenceNum/V001/"
	historyPath  = "/IDOTA2Match_570/GetMatchHistory/V001/"
)

// maxBodyBytes bounds an answer: a page of 100 real matches is about
// 1.4 MB (14 KB each, odota/core json/sequence_api.json), 2 MB at most, so
// 8 MiB leaves room and keeps a hostile answer from costing more memory
// than that (a declared Content-Length over it is refused unread).
const maxBodyBytes = 8 << 20

// Client calls Steam's match sequence for every cursor of a process: the
// forward scan's two and each backfill shard's. It holds the process's
// keys, paced on their own (see keys.go) and shared by priority: the
// forward scan's primary cursor first, its rescan when the primary has
// caught up, backfill shards with what is left. Create one with NewClient;
// it is safe for concurrent use. No key ever appears in its logs, errors
// or metrics.
type Client struct {
	cfg      Config
	base     string // BaseURL without a trailing slash
	log      *slog.Logger
	redactor *strings.Replacer
	pool     *keyPool
	m        *clientMetrics
}

// NewClient returns a Client for cfg's keys and pacing (BaseURL, Keys,
// KeyInterval, MinInterval, DailyCalls, MatchesRequested, SkipAfter,
// BackoffMin, BackoffMax, RequestTimeout, HTTPClient). It fails if cfg
// has no key, an empty or repeated key, a BaseURL that is not http(s),
// MatchesRequested outside 1..100, or if its metrics cannot be registered
// on reg. It makes no call.
func NewClient(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("steam client: %w", err)
	}
	m, err := newClientMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("steam client: %w", err)
	}
	var pairs []string
	for _, k := range cfg.Keys {
		pairs = append(pairs, k, "REDACTED")
		if q := url.QueryEscape(k); q != k {
			pairs = append(pairs, q, "REDACTED")
		}
	}
	return &Client{
		cfg:      cfg,
		base:     strings.TrimSuffix(cfg.BaseURL, "/"),
		log:      log,
		redactor: strings.NewReplacer(pairs...),
		pool:     newKeyPool(cfg, m, log),
		m:        m,
	}, nil
}

// KeyIntervals returns the interval each key has learnt, in the order of
// Config.Keys.
func (s *Client) KeyIntervals() []time.Duration { return s.pool.intervals() }

// ExhaustedKeys returns the positions in Config.Keys (from 1) of the keys
// resting until 00:00 UTC because they made Config.DailyCalls calls today.
func (s *Client) ExhaustedKeys() []string { return s.pool.exhausted() }

// fetchPage asks for the page of n matches from start on, with key k.
// Entries above ceiling come apart, as implausible (see decodePage).
func (s *Client) fetchPage(ctx context.Context, k *apiKey, start int64, n int, ceiling int64) (entries, implausible []entry, err error) {
	began := time.Now()
	body, err := s.get(ctx, k, "GetMatchHistoryBySequenceNum", sequencePath, url.Values{
		"start_at_match_seq_num": {strconv.FormatInt(start, 10)},
		"matches_requested":      {strconv.Itoa(n)},
	})
	if err == nil {
		entries, implausible, err = decodePage(body, start, ceiling)
		if err != nil {
			err = s.badResponse("GetMatchHistoryBySequenceNum", err)
		}
	}
	s.observe(ctx, endpointSequence, began, err)
	if err != nil {
		return nil, nil, err
	}
	return entries, implausible, nil
}

// fetchHead asks GetMatchHistory for the newest match_seq_num, with key k.
func (s *Client) fetchHead(ctx context.Context, k *apiKey) (int64, error) {
	began := time.Now()
	body, err := s.get(ctx, k, "GetMatchHistory", historyPath, nil)
	var head int64
	if err == nil {
		head, err = decodeHead(body)
		if err != nil {
			err = s.badResponse("GetMatchHistory", err)
		}
	}
	s.observe(ctx, endpointHistory, began, err)
	return head, err
}

// observe records a call, unless it was cut short by ctx.
func (s *Client) observe(ctx context.Context, endpoint string, began time.Time, err error) {
	if err != nil && ctx.Err() != nil {
		return
	}
	s.m.duration.WithLabelValues(endpoint).Observe(time.Since(began).Seconds())
	s.m.requests.WithLabelValues(endpoint, outcomeOf(err)).Inc()
}

// callError is a failed call to Steam. Its text never holds the key.
type callError struct {
	outcome    string        // a metric outcome
	retryAfter time.Duration // from a Retry-After header, 0 if none
	keyRefused bool          // HTTP 401 or 403: Steam refused the key
	err        error
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// outcomeOf returns the metric outcome of a call that ended with err.
func outcomeOf(err error) string {
	if err == nil {
		return outcomeOK
	}
	var ce *callError
	if errors.As(err, &ce) {
		return ce.outcome
	}
	return outcomeNetwork
}

// get calls one endpoint with params and key k, and returns the body of
// a 200 answer. It returns ctx's error, unwrapped, when ctx ends first;
// any other error is a *callError with every key redacted.
func (s *Client) get(ctx context.Context, k *apiKey, name, path string, params url.Values) ([]byte, error) {
	q := url.Values{"key": {k.value}}
	for k, v := range params {
		q[k] = v
	}
	target := s.base + path + "?" + q.Encode()
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, &callError{outcome: outcomeClientError, err: errors.New(s.redact(err.Error()))}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &callError{outcome: outcomeNetwork, err: fmt.Errorf("%s: %w", name, s.redactError(err))}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && resp.ContentLength > maxBodyBytes {
		return nil, s.badResponse(name, fmt.Errorf("answer of %d bytes declared, larger than %d", resp.ContentLength, maxBodyBytes))
	}
	body, err := readBounded(resp.Body, resp.ContentLength, maxBodyBytes+1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &callError{outcome: outcomeNetwork, err: fmt.Errorf("%s: read answer: %w", name, s.redactError(err))}
	}
	status := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests:
		return nil, &callError{outcome: outcomeRateLimited, retryAfter: retryAfter(resp.Header), err: fmt.Errorf("%s: %s", name, status)}
	case c >= 500:
		return nil, &callError{outcome: outcomeServerError, retryAfter: retryAfter(resp.Header), err: fmt.Errorf("%s: %s", name, status)}
	case c == http.StatusUnauthorized || c == http.StatusForbidden:
		return nil, &callError{outcome: outcomeClientError, keyRefused: true, err: fmt.Errorf("%s: %s: Steam refused API key %s", name, status, k.label)}
	case c != http.StatusOK:
		return nil, &callError{outcome: outcomeClientError, err: fmt.Errorf("%s: %s", name, status)}
	}
	if len(body) > maxBodyBytes {
		return nil, s.badResponse(name, fmt.Errorf("answer larger than %d bytes", maxBodyBytes))
	}
	return body, nil
}

// redact removes every key, raw and URL-encoded, from text.
func (s *Client) redact(text string) string { return s.redactor.Replace(text) }

// redactError returns err with the keys removed from its text. A
// *url.Error, which net/http returns with the request's URL in it, keeps
// its type and its cause when the cause does not show the key.
func (s *Client) redactError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && s.redact(ue.Err.Error()) == ue.Err.Error() {
		return &url.Error{Op: ue.Op, URL: s.redact(ue.URL), Err: ue.Err}
	}
	return errors.New(s.redact(err.Error()))
}

func (s *Client) badResponse(name string, err error) error {
	return &callError{outcome: outcomeBadResponse, err: errors.New(s.redact(name + ": bad answer: " + err.Error()))}
}

// retryAfter reads a Retry-After header, in seconds or as an HTTP date; 0
// if there is none or it makes no sense.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), MaxRetryAfter)
	}
	return 0
}

// result is the part of an answer both endpoints share.
type result struct {
	Result *struct {
		Status       *int              `json:"status"`
		StatusDetail string            `json:"statusDetail"`
		Matches      []json.RawMessage `json:"matches"`
	} `json:"result"`
}

// decodeResult returns the match entries of an answer whose status is 1.
func decodeResult(body []byte) ([]json.RawMessage, error) {
	var r result
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("not JSON of the expected shape: %w (starts %s)", err, excerpt(body, 64))
	}
	switch {
	case r.Result == nil:
		return nil, fmt.Errorf("no result (starts %s)", excerpt(body, 64))
	case r.Result.Status == nil:
		return nil, errors.New("result has no status")
	case *r.Result.Status != 1 && r.Result.StatusDetail != "":
		return nil, fmt.Errorf("status %d: %s", *r.Result.Status, excerpt([]byte(r.Result.StatusDetail), 200))
	case *r.Result.Status != 1:
		return nil, fmt.Errorf("status %d", *r.Result.Status)
	}
	return r.Result.Matches, nil
}

// entry is one match entry of a page.
type entry struct {
	m      match.Match  // SeqNum always set; ID 0 if rejected
	reason match.Reason // why the entry holds no match, if it does not
	raw    []byte       // the entry, for Reject
}

// seqFields are the members of an entry besides match_id that are read.
type seqFields struct {
	SeqNum    json.RawMessage `json:"match_seq_num"`
	StartTime json.RawMessage `json:"start_time"`
}

// MaxSeqJump is how far past the newest match_seq_num known (the head,
// or the page's start when that is beyond it) an entry's match_seq_num
// may lie. Steam's sequence is dense: a page from one seq holds the next
// ones, and Dota adds about a million a day, so a seq further on is bogus
// (2^63-1 would make the next page start at -2^63; 10^15 would skip every
// match in between). Such an entry, and every one after it in the page,
// is rejected (match.ImplausibleSeq), never handed on and never moves the
// position.
const MaxSeqJump = 10_000_000

// decodePage returns the entries of a GetMatchHistoryBySequenceNum answer
// asked from start. Every entry must have a match_seq_num, at least start
// and above the one before; an entry whose match_id is not valid is kept,
// with its reason, for the handler to reject. Entries whose seq is above
// ceiling are returned apart, as implausible; being in seq order, they end
// the page.
func decodePage(body []byte, start, ceiling int64) (entries, implausible []entry, err error) {
	raws, err := decodeResult(body)
	if err != nil {
		return nil, nil, err
	}
	entries = make([]entry, 0, len(raws))
	prev := start - 1
	for i, raw := range raws {
		var f seqFields
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, nil, fmt.Errorf("match %d of the page is not an object: %s", i, excerpt(raw, 64))
		}
		seq, ok := positive(f.SeqNum)
		if !ok {
			return nil, nil, fmt.Errorf("match %d of the page has no valid match_seq_num: %s", i, excerpt(raw, 64))
		}
		if seq <= prev {
			if i == 0 {
				return nil, nil, fmt.Errorf("page asked from seq %d starts at seq %d", start, seq)
			}
			return nil, nil, fmt.Errorf("seqs out of order: %d follows %d", seq, prev)
		}
		prev = seq
		if seq > ceiling {
			implausible = append(implausible, entry{m: match.Match{SeqNum: seq}, reason: match.ImplausibleSeq, raw: raw})
			continue
		}
		e := entry{raw: raw}
		e.m, err = match.Parse(raw)
		if err != nil {
			e.reason, _ = match.ReasonOf(err)
		}
		e.m.SeqNum = seq
		if t, ok := positive(f.StartTime); ok && e.reason == "" {
			e.m.StartTime = t
		}
		entries = append(entries, e)
	}
	return entries, implausible, nil
}

// decodeHead returns the highest match_seq_num in a GetMatchHistory answer.
func decodeHead(body []byte) (int64, error) {
	raws, err := decodeResult(body)
	if err != nil {
		return 0, err
	}
	var head int64
	for _, raw := range raws {
		var f seqFields
		if json.Unmarshal(raw, &f) != nil {
			continue
		}
		if seq, ok := positive(f.SeqNum); ok && seq > head {
			head = seq
		}
	}
	if head == 0 {
		return 0, errors.New("no match with a match_seq_num")
	}
	return head, nil
}

// positive parses a JSON integer literal above 0.
func positive(raw json.RawMessage) (int64, bool) {
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	return n, err == nil && n > 0
}

// excerpt returns the first n bytes of b, marked when cut, for messages.
func excerpt(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

// readBounded reads r to its end, or to limit bytes, into a buffer sized
// by the declared length (when known) that grows by doubling but never
// past limit: an answer that does not say how long it is, or says it
// wrongly, costs at most limit bytes, not the next power of two.
func readBounded(r io.Reader, declared, limit int64) ([]byte, error) {
	buf := make([]byte, 0, min(max(declared, 64<<10), limit))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= limit {
				return buf, nil
			}
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), limit))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
