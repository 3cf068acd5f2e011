package steamfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/match"
)

type page struct {
	Result struct {
		Status     int `json:"status"`
		NumResults int `json:"num_results"`
		Matches    []struct {
			MatchID   int64 `json:"match_id"`
			SeqNum    int64 `json:"match_seq_num"`
			StartTime int64 `json:"start_time"`
		} `json:"matches"`
	} `json:"result"`
}

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return resp.StatusCode, resp.Header, body
}

func getPage(t *testing.T, url string) page {
	t.Helper()
	code, _, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %s", url, code, body)
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("page is not JSON: %v: %s", err, body)
	}
	return p
}

func seqURL(base string, start int64, n int) string {
	return fmt.Sprintf("%s%s?key=%s&start_at_match_seq_num=%d&matches_requested=%d", base, Sequence, DefaultKey, start, n)
}

func TestSequencePages(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		start     int64
		requested int
		wantSeqs  []int64
	}{
		{"from the first", Options{Count: 5, FirstSeq: 100}, 0, 3, []int64{100, 101, 102}},
		{"from the middle", Options{Count: 5, FirstSeq: 100}, 103, 100, []int64{103, 104}},
		{"past the head", Options{Count: 5, FirstSeq: 100}, 105, 100, nil},
		{"with gaps", Options{Count: 7, FirstSeq: 100, GapEvery: 3, Gap: 10}, 101, 100, []int64{101, 102, 113, 114, 115, 126}},
		{"start inside a gap", Options{Count: 7, FirstSeq: 100, GapEvery: 3, Gap: 10}, 105, 2, []int64{113, 114}},
		{"capped at 100", Options{Count: 250, FirstSeq: 100}, 0, 500, seqs(100, 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, base := Start(t, tt.opts)
			p := getPage(t, seqURL(base, tt.start, tt.requested))
			if p.Result.Status != 1 {
				t.Fatalf("status = %d", p.Result.Status)
			}
			var got []int64
			for i, m := range p.Result.Matches {
				got = append(got, m.SeqNum)
				if m.MatchID <= 0 || m.MatchID == m.SeqNum || m.StartTime < 1_500_000_000 {
					t.Errorf("match %d = %+v, want a plausible match", i, m)
				}
				if i > 0 && m.MatchID <= p.Result.Matches[i-1].MatchID {
					t.Errorf("match_id does not increase at %d", i)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantSeqs) && !(len(got) == 0 && len(tt.wantSeqs) == 0) {
				t.Fatalf("seqs = %v, want %v", got, tt.wantSeqs)
			}
			// Only the API's calls: a stray request to the fake's port
			// (another test's client, looking for a server it has not
			// started yet) is recorded, but is not this test's.
			calls := slices.DeleteFunc(s.Calls(), func(c Call) bool { return c.Endpoint != Sequence })
			if len(calls) != 1 || calls[0].StartAt != tt.start || calls[0].Matches != len(got) {
				t.Fatalf("calls = %+v", s.Calls())
			}
		})
	}
}

func seqs(from int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = from + int64(i)
	}
	return out
}

func TestHistoryNewestFirstAndAdvance(t *testing.T) {
	s, base := Start(t, Options{Count: 3, FirstSeq: 10})
	url := base + "/idota2match_570/getmatchhistory/v001?key=" + DefaultKey
	p := getPage(t, url)
	if len(p.Result.Matches) != 3 || p.Result.Matches[0].SeqNum != 12 || p.Result.NumResults != 3 {
		t.Fatalf("history = %+v", p.Result)
	}
	if head := s.Advance(2); head != 14 || s.Head() != 14 {
		t.Fatalf("head after Advance(2) = %d", head)
	}
	if p := getPage(t, url); p.Result.Matches[0].SeqNum != 14 {
		t.Fatalf("newest after Advance = %d, want 14", p.Result.Matches[0].SeqNum)
	}
	ms := s.Matches()
	if len(ms) != 5 || ms[4].SeqNum != 14 || ms[4].ID != 8_300_000_012 {
		t.Fatalf("Matches = %+v", ms)
	}
}

func TestKeyChecked(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  int
	}{
		{"right key", "key=" + DefaultKey, http.StatusOK},
		{"wrong key", "key=nope", http.StatusForbidden},
		{"empty key", "key=", http.StatusUnauthorized},
		{"no key", "", http.StatusUnauthorized},
	}
	_, base := Start(t, Options{Count: 1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, _ := get(t, base+string(Sequence)+"?"+tt.query); code != tt.want {
				t.Fatalf("HTTP %d, want %d", code, tt.want)
			}
		})
	}
	if code, _, _ := get(t, base+"/ISteamUser/GetPlayerSummaries/v0002/?key="+DefaultKey); code != http.StatusNotFound {
		t.Fatalf("unknown path: HTTP %d, want 404", code)
	}
}

func TestFaults(t *testing.T) {
	s, base := Start(t, Options{Count: 10})
	s.Fail(2, Fault{Endpoint: Sequence, Status: http.StatusTooManyRequests, RetryAfter: "3"})
	s.Fail(1, Fault{Body: `{"result":`})
	histURL := base + string(History) + "?key=" + DefaultKey

	// The history call skips the sequence-only fault and takes the next.
	if code, _, body := get(t, histURL); code != http.StatusOK || string(body) != `{"result":` {
		t.Fatalf("history: HTTP %d %s, want the malformed body", code, body)
	}
	for i := 0; i < 2; i++ {
		code, h, _ := get(t, seqURL(base, 0, 100))
		if code != http.StatusTooManyRequests || h.Get("Retry-After") != "3" {
			t.Fatalf("call %d: HTTP %d Retry-After %q", i, code, h.Get("Retry-After"))
		}
	}
	if p := getPage(t, seqURL(base, 0, 100)); len(p.Result.Matches) != 10 {
		t.Fatalf("after the faults: %d matches, want 10", len(p.Result.Matches))
	}
}

func TestReplace(t *testing.T) {
	s, base := Start(t, Options{Count: 3, FirstSeq: 10})
	s.Replace(11, `{"match_seq_num":11,"match_id":null}`)
	_, _, body := get(t, seqURL(base, 0, 100))
	var raw struct {
		Result struct {
			Matches []json.RawMessage `json:"matches"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if got := string(raw.Result.Matches[1]); got != `{"match_seq_num":11,"match_id":null}` {
		t.Fatalf("entry 1 = %s", got)
	}
	if ms := s.Matches(); len(ms) != 2 || ms[1].SeqNum != 12 {
		t.Fatalf("Matches = %+v, want seqs 10 and 12", ms)
	}
}

func TestWaitCalls(t *testing.T) {
	s, base := Start(t, Options{})
	done := make(chan []Call, 1)
	go func() {
		calls, _ := s.WaitCalls(context.Background(), 2)
		done <- calls
	}()
	get(t, seqURL(base, 5, 1))
	get(t, seqURL(base, 6, 1))
	select {
	case calls := <-done:
		if len(calls) != 2 || calls[1].StartAt != 6 || calls[1].Requested != 1 {
			t.Fatalf("calls = %+v", calls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitCalls did not return")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.WaitCalls(ctx, 3); err == nil {
		t.Fatal("WaitCalls with a cancelled context returned no error")
	}
}

// clock is a settable clock for the rate limit.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startClocked is Start with the rate limit on a clock the test moves.
func startClocked(t *testing.T, opts Options) (*Server, string, *clock) {
	t.Helper()
	s := New(opts)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s.now = c.Now
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL, c
}

func callURL(base string, ep Endpoint, key string) string {
	u := base + string(ep) + "?matches_requested=5"
	if key != "-" {
		u += "&key=" + key
	}
	return u
}

func TestKeys(t *testing.T) {
	abc := []string{"key-a", "key-b", "key-c"}
	tests := []struct {
		name    string
		opts    Options
		key     string // "-": no key parameter
		want    int
		wantKey int
	}{
		{"default key", Options{}, DefaultKey, http.StatusOK, 0},
		{"Key", Options{Key: "k1"}, "k1", http.StatusOK, 0},
		{"default key not accepted with Key", Options{Key: "k1"}, DefaultKey, http.StatusForbidden, -1},
		{"first of Keys", Options{Keys: abc}, "key-a", http.StatusOK, 0},
		{"second of Keys", Options{Keys: abc}, "key-b", http.StatusOK, 1},
		{"third of Keys", Options{Keys: abc}, "key-c", http.StatusOK, 2},
		{"Key ignored with Keys", Options{Key: "k1", Keys: abc}, "k1", http.StatusForbidden, -1},
		{"wrong key", Options{Keys: abc}, "key-d", http.StatusForbidden, -1},
		{"empty key", Options{Keys: abc}, "", http.StatusUnauthorized, -1},
		{"no key", Options{Keys: abc}, "-", http.StatusUnauthorized, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Count = 3
			s, base := Start(t, tt.opts)
			for _, ep := range []Endpoint{Sequence, History} {
				if code, _, body := get(t, callURL(base, ep, tt.key)); code != tt.want {
					t.Fatalf("%s: HTTP %d %s, want %d", ep, code, body, tt.want)
				}
			}
			for _, c := range s.Calls() {
				if c.Key != tt.wantKey {
					t.Errorf("%s: Call.Key = %d, want %d", c.Endpoint, c.Key, tt.wantKey)
				}
			}
		})
	}
}

func TestSetKeyReplacesKeys(t *testing.T) {
	s, base := Start(t, Options{Keys: []string{"key-a", "key-b"}, Count: 1})
	s.SetKey("key-z")
	for _, tt := range []struct {
		key     string
		want    int
		wantKey int
	}{{"key-a", http.StatusForbidden, -1}, {"key-b", http.StatusForbidden, -1}, {"key-z", http.StatusOK, 0}} {
		if code, _, _ := get(t, callURL(base, Sequence, tt.key)); code != tt.want {
			t.Errorf("%s: HTTP %d, want %d", tt.key, code, tt.want)
		}
		if calls := s.Calls(); calls[len(calls)-1].Key != tt.wantKey {
			t.Errorf("%s: Call.Key = %d, want %d", tt.key, calls[len(calls)-1].Key, tt.wantKey)
		}
	}
}

func TestRateLimit(t *testing.T) {
	type step struct {
		after time.Duration // moves the clock before the call
		ep    Endpoint
		key   string
		want  int
	}
	const ok, limited = http.StatusOK, http.StatusTooManyRequests
	ab := []string{"key-a", "key-b"}
	tests := []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"one per interval, refused calls take no token", Options{RateInterval: time.Second}, []step{
			{0, Sequence, DefaultKey, ok},
			{0, Sequence, DefaultKey, limited},
			{500 * time.Millisecond, Sequence, DefaultKey, limited},
			{400 * time.Millisecond, Sequence, DefaultKey, limited},
			{100 * time.Millisecond, Sequence, DefaultKey, ok}, // one second after the first
			{0, Sequence, DefaultKey, limited},
		}},
		{"burst", Options{RateInterval: time.Second, RateBurst: 3}, []step{
			{0, Sequence, DefaultKey, ok}, {0, Sequence, DefaultKey, ok}, {0, Sequence, DefaultKey, ok},
			{0, Sequence, DefaultKey, limited},
			{time.Second, Sequence, DefaultKey, ok},
			{0, Sequence, DefaultKey, limited},
		}},
		{"savings capped at the burst", Options{RateInterval: time.Second, RateBurst: 2}, []step{
			{time.Hour, Sequence, DefaultKey, ok}, {0, Sequence, DefaultKey, ok},
			{0, Sequence, DefaultKey, limited},
			{time.Hour, Sequence, DefaultKey, ok}, {0, Sequence, DefaultKey, ok},
			{0, Sequence, DefaultKey, limited},
		}},
		{"keys independent", Options{Keys: ab, RateInterval: time.Second}, []step{
			{0, Sequence, "key-a", ok},
			{0, Sequence, "key-a", limited},
			{0, Sequence, "key-b", ok},
			{0, Sequence, "key-b", limited},
			{time.Second, Sequence, "key-b", ok},
			{0, Sequence, "key-a", ok},
		}},
		{"endpoints share the budget", Options{RateInterval: time.Second}, []step{
			{0, Sequence, DefaultKey, ok},
			{0, History, DefaultKey, limited},
			{time.Second, History, DefaultKey, ok},
			{0, Sequence, DefaultKey, limited},
		}},
		{"key checked first", Options{Keys: ab, RateInterval: time.Second}, []step{
			{0, Sequence, "key-c", http.StatusForbidden},
			{0, Sequence, "-", http.StatusUnauthorized},
			{0, Sequence, "key-a", ok}, // the refused keys took nothing
			{0, Sequence, "key-c", http.StatusForbidden},
		}},
		{"no limit by default", Options{}, []step{
			{0, Sequence, DefaultKey, ok}, {0, History, DefaultKey, ok}, {0, Sequence, DefaultKey, ok}, {0, Sequence, DefaultKey, ok},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Count = 10
			s, base, clk := startClocked(t, tt.opts)
			for n, st := range tt.steps {
				clk.Add(st.after)
				code, h, body := get(t, callURL(base, st.ep, st.key))
				if code != st.want {
					t.Fatalf("step %d (%s %s): HTTP %d, want %d", n, st.ep, st.key, code, st.want)
				}
				if code == limited {
					if h.Get("Retry-After") != "" || h.Get("Content-Type") != "text/html" || string(body) != tooManyRequests {
						t.Fatalf("step %d: 429 with Retry-After %q, Content-Type %q, body %s", n, h.Get("Retry-After"), h.Get("Content-Type"), body)
					}
				}
				calls := s.Calls()
				if c := calls[len(calls)-1]; c.Status != st.want || c.Matches != 0 && code != ok {
					t.Fatalf("step %d: call recorded as %+v", n, c)
				}
			}
		})
	}
}

func TestRateLimitBeforeFaults(t *testing.T) {
	s, base, clk := startClocked(t, Options{Count: 10, RateInterval: time.Second})
	url := callURL(base, Sequence, DefaultKey)
	if code, _, _ := get(t, url); code != http.StatusOK {
		t.Fatalf("first call: HTTP %d", code)
	}
	s.Fail(1, Fault{Status: http.StatusServiceUnavailable})
	for _, want := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusOK} {
		if code, _, _ := get(t, url); code != want {
			t.Fatalf("HTTP %d, want %d", code, want)
		}
		clk.Add(time.Second)
	}
}

// TestRandomRefusals: a share of calls is refused with HTTP 429 and the
// Retry-After asked for, whatever the pace, taking no token; the choice
// is the same on every run.
func TestRandomRefusals(t *testing.T) {
	refusedOf := func() []bool {
		s, base, clk := startClocked(t, Options{Count: 10, RateInterval: time.Second, RandomRefusals: 0.25, RandomRetryAfter: "1"})
		url := callURL(base, Sequence, DefaultKey)
		var out []bool
		for range 400 {
			code, h, _ := get(t, url)
			switch {
			case code == http.StatusTooManyRequests && h.Get("Retry-After") == "1":
				out = append(out, true)
			case code == http.StatusOK && h.Get("Retry-After") == "":
				out = append(out, false)
			default:
				t.Fatalf("HTTP %d, Retry-After %q: want 200, or 429 with Retry-After 1", code, h.Get("Retry-After"))
			}
			clk.Add(time.Second) // a token for each call: only the random refusals refuse
		}
		calls := s.Calls()
		if calls[0].RetryAfter != map[bool]string{true: "1"}[out[0]] {
			t.Errorf("Call.RetryAfter %q for the first call", calls[0].RetryAfter)
		}
		return out
	}
	first, second := refusedOf(), refusedOf()
	refused := 0
	for i := range first {
		if first[i] {
			refused++
		}
		if first[i] != second[i] {
			t.Fatalf("call %d refused %v, then %v on a second server", i, first[i], second[i])
		}
	}
	if refused < 60 || refused > 140 {
		t.Errorf("%d of 400 calls refused, want about a quarter", refused)
	}
}

func TestSetRateInterval(t *testing.T) {
	s, base, clk := startClocked(t, Options{Count: 10})
	url := callURL(base, Sequence, DefaultKey)
	expect := func(when string, codes ...int) {
		t.Helper()
		for n, want := range codes {
			if code, _, _ := get(t, url); code != want {
				t.Fatalf("%s, call %d: HTTP %d, want %d", when, n, code, want)
			}
		}
	}
	expect("unlimited", 200, 200, 200, 200)
	s.SetRateInterval(time.Hour)
	expect("limited to one an hour: starts full", 200, 429, 429)
	clk.Add(30 * time.Minute)
	s.SetRateInterval(time.Minute) // the half token earned is kept
	clk.Add(30 * time.Second)
	expect("a minute: half earned before, half after", 200, 429)
	s.SetRateInterval(0)
	expect("unlimited again", 200, 200, 200)
	s.SetRateInterval(time.Hour)
	expect("limited again: starts full", 200, 429)
}

func TestRateLimitRefillsInRealTime(t *testing.T) {
	const interval = 50 * time.Millisecond
	_, base := Start(t, Options{Count: 1, RateInterval: interval})
	url := callURL(base, Sequence, DefaultKey)
	began := time.Now()
	oks, refused := 0, 0
	for time.Since(began) < 600*time.Millisecond {
		switch code, _, _ := get(t, url); code {
		case http.StatusOK:
			oks++
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("HTTP %d", code)
		}
		time.Sleep(5 * time.Millisecond) // time passing is what this test is about
	}
	elapsed := time.Since(began)
	// The bucket starts with one token and earns one per interval, so it can
	// never grant more than that; it must grant some refills in 600ms.
	if most := 1 + int(elapsed/interval); oks > most || oks < 3 {
		t.Fatalf("%d calls answered in %v (and %d refused), want 3 to %d", oks, elapsed, refused, most)
	}
}

// rawPage is a page with its entries kept as bytes.
type rawPage struct {
	Result struct {
		Status       int               `json:"status"`
		StatusDetail string            `json:"statusDetail"`
		Matches      []json.RawMessage `json:"matches"`
	} `json:"result"`
}

func getRaw(t *testing.T, url string) (rawPage, []byte) {
	t.Helper()
	code, _, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %s", url, code, body)
	}
	var p rawPage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("page is not JSON: %v", err)
	}
	return p, body
}

// entrySeqs returns match_seq_num of each entry, read from its bytes (the
// page was checked to be JSON; decoding each entry again is slow under the
// race detector).
func entrySeqs(t *testing.T, entries []json.RawMessage) []int64 {
	t.Helper()
	out := make([]int64, 0, len(entries))
	for _, e := range entries {
		seq, err := strconv.ParseInt(literal(string(e), "match_seq_num"), 10, 64)
		if err != nil {
			t.Fatalf("entry %.200s: match_seq_num: %v", e, err)
		}
		out = append(out, seq)
	}
	return out
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func without(seqs []int64, drop ...int64) []int64 {
	return slices.DeleteFunc(seqs, func(s int64) bool { return slices.Contains(drop, s) })
}

func TestHiddenEvery(t *testing.T) {
	hundred := Options{Count: 1000, FirstSeq: 100, HiddenEvery: 100}
	tests := []struct {
		name      string
		opts      Options
		start     int64
		requested int
		want      []int64
	}{
		{"first page holds 99", hundred, 0, 100, seqRange(100, 198)},
		{"start on a hidden match", hundred, 199, 100, seqRange(200, 298)},
		{"hidden in the middle", hundred, 150, 100, without(seqRange(150, 249), 199)},
		{"small page", hundred, 195, 10, without(seqRange(195, 204), 199)},
		{"last page", hundred, 1000, 100, seqRange(1000, 1098)},
		{"page of the hidden one alone", hundred, 199, 1, nil},
		{"with gaps", Options{Count: 6, FirstSeq: 100, GapEvery: 2, Gap: 10, HiddenEvery: 3}, 0, 100, []int64{100, 101, 113, 124}},
		{"with gaps, small page", Options{Count: 6, FirstSeq: 100, GapEvery: 2, Gap: 10, HiddenEvery: 3}, 0, 3, []int64{100, 101}},
		{"all hidden", Options{Count: 50, FirstSeq: 100, HiddenEvery: 1}, 0, 100, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, base := Start(t, tt.opts)
			p, _ := getRaw(t, seqURL(base, tt.start, tt.requested))
			if got := entrySeqs(t, p.Result.Matches); !slices.Equal(got, tt.want) {
				t.Fatalf("seqs = %v, want %v", got, tt.want)
			}
			if calls := s.Calls(); calls[0].Matches != len(tt.want) {
				t.Fatalf("Call.Matches = %d, want %d", calls[0].Matches, len(tt.want))
			}
		})
	}

	t.Run("history and Matches leave them out", func(t *testing.T) {
		s, base := Start(t, Options{Count: 300, FirstSeq: 100, HiddenEvery: 100})
		if s.Head() != 399 {
			t.Fatalf("Head = %d, want 399 (hidden matches exist)", s.Head())
		}
		p, _ := getRaw(t, base+string(History)+"?key="+DefaultKey)
		got := entrySeqs(t, p.Result.Matches)
		if len(got) != 100 || got[0] != 398 || slices.Contains(got, 299) {
			t.Fatalf("history seqs = %v, want 100 from 398 down without 299", got)
		}
		ms := s.Matches()
		if len(ms) != 297 {
			t.Fatalf("Matches holds %d, want 297", len(ms))
		}
		for _, m := range ms {
			if (m.SeqNum-100)%100 == 99 {
				t.Fatalf("Matches holds hidden %+v", m)
			}
		}
	})
}

// scan pages through the whole sequence as a scanner that steps past
// broken matches would, and returns the entries by seq in the order found.
func scan(t *testing.T, s *Server, base string) (seqs []int64, entries map[int64]json.RawMessage) {
	t.Helper()
	entries = map[int64]json.RawMessage{}
	head := s.Head()
	pos, single, retries := int64(0), false, 0
	for steps := 0; ; steps++ {
		if steps > 20_000 {
			t.Fatalf("scan did not end; at %d", pos)
		}
		n := 100
		if single {
			n = 1
		}
		p, _ := getRaw(t, seqURL(base, pos, n))
		switch {
		case p.Result.Status == 2:
			if single {
				if retries++; retries > 5 {
					pos, retries = pos+1, 0
				}
			}
			single = true
		case p.Result.Status != 1:
			t.Fatalf("status %d", p.Result.Status)
		case len(p.Result.Matches) == 0:
			if !single || pos > head {
				return seqs, entries
			}
			pos++
		default:
			got := entrySeqs(t, p.Result.Matches)
			for k, seq := range got {
				if seq < pos || len(seqs) > 0 && seq <= seqs[len(seqs)-1] {
					t.Fatalf("seq %d out of order after %d (start %d)", seq, pos, pos)
				}
				seqs = append(seqs, seq)
				entries[seq] = p.Result.Matches[k]
			}
			pos, single, retries = got[len(got)-1]+1, false, 0
		}
	}
}

func TestLateListing(t *testing.T) {
	const count, lateBy = 1500, 300
	s, base := Start(t, Options{Count: count, FirstSeq: 100, LateFraction: 0.1, LateBy: lateBy})
	late := s.LateMatches()
	if len(late) < 75 || len(late) > 225 {
		t.Fatalf("%d late matches of %d with LateFraction 0.1", len(late), count)
	}
	if late[0].SeqNum == 100 {
		t.Fatal("the first match is late")
	}
	head := s.Head()
	seqs, _ := scan(t, s, base)
	var pending []match.Match
	for _, m := range late {
		listed := m.SeqNum+lateBy <= head
		if !listed {
			pending = append(pending, m)
		}
		if _, found := slices.BinarySearch(seqs, m.SeqNum); found != listed {
			t.Errorf("late %d with head %d: found = %v, want %v", m.SeqNum, head, found, listed)
		}
	}
	if len(pending) == 0 || len(pending) == len(late) {
		t.Fatalf("%d of %d late matches pending: want some of each", len(pending), len(late))
	}
	if want := count - len(pending); len(seqs) != want {
		t.Fatalf("scan found %d, want %d (all but the pending)", len(seqs), want)
	}
	assertSameMatches(t, s, seqs)

	// A pending match takes no place in a page: a page of one from it holds
	// the next match.
	p, _ := getRaw(t, seqURL(base, pending[0].SeqNum, 1))
	if got := entrySeqs(t, p.Result.Matches); len(got) != 1 || got[0] <= pending[0].SeqNum {
		t.Fatalf("page of 1 from pending %d = %v, want the next listed match", pending[0].SeqNum, got)
	}

	s.Advance(lateBy)
	for _, m := range pending {
		p, _ := getRaw(t, seqURL(base, m.SeqNum, 1))
		if got := entrySeqs(t, p.Result.Matches); len(got) != 1 || got[0] != m.SeqNum {
			t.Fatalf("after Advance(%d), page of 1 from %d = %v, want it", lateBy, m.SeqNum, got)
		}
	}
	if got := len(s.Matches()); got < count || got >= count+lateBy {
		t.Fatalf("Matches holds %d after Advance, want the first %d and some new", got, count)
	}

	if got := New(Options{LateFraction: 0.5}).opts.LateBy; got != DefaultLateBy {
		t.Fatalf("default LateBy = %d", got)
	}
	if got := New(Options{Count: 100}).LateMatches(); len(got) != 0 {
		t.Fatalf("LateMatches without LateFraction = %v", got)
	}
}

// assertSameMatches checks that the seqs a scan found are Matches().
func assertSameMatches(t *testing.T, s *Server, seqs []int64) {
	t.Helper()
	ms := s.Matches()
	if len(ms) != len(seqs) {
		t.Fatalf("Matches holds %d, the scan found %d", len(ms), len(seqs))
	}
	for k, m := range ms {
		if m.SeqNum != seqs[k] {
			t.Fatalf("Matches[%d] = %d, the scan found %d", k, m.SeqNum, seqs[k])
		}
	}
}

func TestBreak(t *testing.T) {
	type step struct {
		start      int64
		requested  int
		wantBroken bool
	}
	// FirstSeq 100, Count 300: seqs 100..399; 250 is index 150.
	tests := []struct {
		name        string
		opts        Options
		seq         int64
		n           int
		steps       []step
		wantMatches int // len(Matches()) after the steps
	}{
		{"for ever", Options{}, 250, 0, []step{
			{100, 100, false}, {200, 100, true}, {200, 100, true}, {250, 1, true},
			{200, 50, false}, {251, 100, false}, {240, 20, true},
		}, 299},
		{"for two answers", Options{}, 250, 2, []step{
			{100, 100, false}, {200, 100, true}, {240, 20, true}, {200, 100, false}, {250, 1, false},
		}, 300},
		{"hidden match", Options{HiddenEvery: 10}, 109, 0, []step{{100, 100, false}, {109, 1, false}}, 270},
		{"before the first", Options{}, 99, 0, []step{{0, 100, false}}, 300},
		{"in a gap", Options{GapEvery: 10, Gap: 5}, 112, 0, []step{{100, 100, false}, {110, 100, false}}, 300},
		{"not yet existing", Options{}, 400, 0, []step{{300, 100, false}, {400, 100, false}}, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Count, tt.opts.FirstSeq = 300, 100
			s, base := Start(t, tt.opts)
			s.Break(tt.seq, tt.n)
			for k, st := range tt.steps {
				p, body := getRaw(t, seqURL(base, st.start, st.requested))
				broken := string(body) == brokenPage
				if broken != st.wantBroken || !broken && p.Result.Status != 1 {
					t.Fatalf("step %d (%d, %d): body %.80s, want broken %v", k, st.start, st.requested, body, st.wantBroken)
				}
				calls := s.Calls()
				if c := calls[len(calls)-1]; broken && (c.Status != http.StatusOK || c.Matches != 0) {
					t.Fatalf("step %d: broken answer recorded as %+v", k, c)
				}
			}
			if got := len(s.Matches()); got != tt.wantMatches {
				t.Fatalf("Matches holds %d, want %d", got, tt.wantMatches)
			}
		})
	}

	t.Run("heal and history", func(t *testing.T) {
		s, base := Start(t, Options{Count: 300, FirstSeq: 100})
		s.Break(399, 0)
		p, _ := getRaw(t, base+string(History)+"?key="+DefaultKey)
		if got := entrySeqs(t, p.Result.Matches); len(got) != 100 || got[0] != 399 {
			t.Fatalf("history with the head broken = %v", got)
		}
		if _, body := getRaw(t, seqURL(base, 350, 100)); string(body) != brokenPage {
			t.Fatalf("page with the broken head: %.80s", body)
		}
		s.Heal(399)
		s.Heal(398) // not broken: no effect
		p, _ = getRaw(t, seqURL(base, 350, 100))
		if got := entrySeqs(t, p.Result.Matches); !slices.Equal(got, seqRange(350, 399)) {
			t.Fatalf("after Heal: %v", got)
		}
	})
}

func TestMatchesAgreeWithPaging(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		broken  map[int64]int // index → n
		replace []int64       // indexes
	}{
		{"plain", Options{Count: 250}, nil, nil},
		{"gaps and hidden", Options{Count: 777, GapEvery: 7, Gap: 3, HiddenEvery: 50}, nil, nil},
		{"everything", Options{Count: 1000, GapEvery: 13, Gap: 2, HiddenEvery: 100, LateFraction: 0.1, LateBy: 300},
			map[int64]int{400: 0, 700: 2, 801: 1}, []int64{900}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, base := Start(t, tt.opts)
			for i, n := range tt.broken {
				s.Break(s.seq(i), n)
			}
			replaced := map[int64]bool{}
			for _, i := range tt.replace {
				seq := s.seq(i)
				s.Replace(seq, fmt.Sprintf(`{"match_seq_num":%d,"match_id":1}`, seq))
				replaced[seq] = true
			}
			seqs, entries := scan(t, s, base)
			for seq, e := range entries {
				if body, ok := s.Body(seq); !ok || body != string(e) {
					t.Fatalf("entry %d differs from Body (ok %v)", seq, ok)
				}
			}
			seqs = slices.DeleteFunc(seqs, func(seq int64) bool { return replaced[seq] })
			assertSameMatches(t, s, seqs)
			for _, m := range s.Matches() {
				e := string(entries[m.SeqNum])
				if id, start := literal(e, "match_id"), literal(e, "start_time"); id != strconv.FormatInt(m.ID, 10) || start != strconv.FormatInt(m.StartTime, 10) {
					t.Fatalf("entry %d has match_id %s, start_time %s; Matches says %+v", m.SeqNum, id, start, m)
				}
			}
			for i, n := range tt.broken {
				if _, found := slices.BinarySearch(seqs, s.seq(i)); found != (n > 0) {
					t.Errorf("broken %d (n %d): found = %v", s.seq(i), n, found)
				}
			}
		})
	}
}

// keysOf returns the member names of the JSON object raw, in order.
func keysOf(t *testing.T, raw []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %v %v", tok, err)
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// The member names of json/sequence_api.json in odota/core, in order.
var (
	wantPlayerKeys = strings.Fields(`account_id player_slot team_number team_slot hero_id hero_variant
		item_0 item_1 item_2 item_3 item_4 item_5 backpack_0 backpack_1 backpack_2 item_neutral item_neutral2
		kills deaths assists leaver_status last_hits denies gold_per_min xp_per_min level net_worth
		aghanims_scepter aghanims_shard moonshard hero_damage tower_damage hero_healing gold gold_spent
		scaled_hero_damage scaled_tower_damage scaled_hero_healing ability_upgrades`)
	wantMatchKeys = strings.Fields(`players radiant_win duration pre_game_duration start_time match_id
		match_seq_num tower_status_radiant tower_status_dire barracks_status_radiant barracks_status_dire
		cluster first_blood_time lobby_type human_players leagueid game_mode flags engine radiant_score dire_score`)
	wantLeagueKeys = strings.Fields(`radiant_team_id radiant_name radiant_logo radiant_team_complete
		dire_team_id dire_name dire_logo dire_team_complete radiant_captain dire_captain`)
)

type body struct {
	Players []struct {
		AccountID  int64 `json:"account_id"`
		PlayerSlot int   `json:"player_slot"`
		TeamNumber int   `json:"team_number"`
		HeroID     int   `json:"hero_id"`
		Kills      int64 `json:"kills"`
		Upgrades   []struct {
			Ability, Time, Level int
		} `json:"ability_upgrades"`
	} `json:"players"`
	MatchID      int64       `json:"match_id"`
	SeqNum       int64       `json:"match_seq_num"`
	StartTime    int64       `json:"start_time"`
	LeagueID     int         `json:"leagueid"`
	GameMode     int         `json:"game_mode"`
	RadiantScore int64       `json:"radiant_score"`
	DireScore    int64       `json:"dire_score"`
	RadiantLogo  json.Number `json:"radiant_logo"`
	DireLogo     json.Number `json:"dire_logo"`
	PicksBans    []struct {
		IsPick bool `json:"is_pick"`
		HeroID int  `json:"hero_id"`
		Team   int  `json:"team"`
		Order  int  `json:"order"`
	} `json:"picks_bans"`
}

// literal returns the number literal after "name": in raw.
func literal(raw, name string) string {
	_, after, _ := strings.Cut(raw, `"`+name+`":`)
	end := strings.IndexAny(after, ",}")
	if end < 0 {
		return ""
	}
	return after[:end]
}

func TestBodies(t *testing.T) {
	const n = 300
	opts := Options{Count: n, FirstSeq: 100, GapEvery: 50, Gap: 4}
	s, base := Start(t, opts)
	total, leagues, captains, anonymous := 0, 0, 0, 0
	for i := range int64(n) {
		seq := s.seq(i)
		raw, ok := s.Body(seq)
		if !ok {
			t.Fatalf("Body(%d) not found", seq)
		}
		total += len(raw)
		if len(raw) < 10_000 || len(raw) > 20_000 || !json.Valid([]byte(raw)) {
			t.Fatalf("match %d: %d bytes, valid %v", i, len(raw), json.Valid([]byte(raw)))
		}
		var b body
		d := json.NewDecoder(strings.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&b); err != nil {
			t.Fatalf("match %d: %v", i, err)
		}
		if b.MatchID != 8_300_000_000+3*i || b.SeqNum != seq || b.StartTime != 1_760_000_000+2*i {
			t.Fatalf("match %d: match_id %d, match_seq_num %d, start_time %d", i, b.MatchID, b.SeqNum, b.StartTime)
		}

		wantKeys := slices.Clone(wantMatchKeys)
		if b.LeagueID != 0 {
			leagues++
			wantKeys = append(wantKeys, wantLeagueKeys...)
			for _, logo := range []json.Number{b.RadiantLogo, b.DireLogo} {
				v, err := logo.Int64()
				if err != nil || v <= 1<<53 || int64(float64(v)) == v {
					t.Fatalf("match %d: logo %s (%v) is not an integer a float64 cannot hold", i, logo, err)
				}
			}
			if lit := literal(raw, "radiant_logo"); b.RadiantLogo.String() != lit {
				t.Fatalf("match %d: radiant_logo decoded as %s, written %s", i, b.RadiantLogo, lit)
			}
		}
		if b.GameMode == 2 {
			captains++
			wantKeys = append(wantKeys, "picks_bans")
		}
		if got := keysOf(t, []byte(raw)); !slices.Equal(got, wantKeys) {
			t.Fatalf("match %d: keys %v, want %v", i, got, wantKeys)
		}

		var rawPlayers struct {
			Players []json.RawMessage `json:"players"`
		}
		if err := json.Unmarshal([]byte(raw), &rawPlayers); err != nil || len(b.Players) != 10 || len(rawPlayers.Players) != 10 {
			t.Fatalf("match %d: %d players (%v)", i, len(b.Players), err)
		}
		var score [2]int64
		heroes := map[int]int{} // hero → team
		for p, pl := range b.Players {
			wantSlot := p%5 + p/5*128
			if pl.PlayerSlot != wantSlot || pl.TeamNumber != p/5 || pl.HeroID == 0 {
				t.Fatalf("match %d player %d: slot %d team %d hero %d", i, p, pl.PlayerSlot, pl.TeamNumber, pl.HeroID)
			}
			if _, dup := heroes[pl.HeroID]; dup {
				t.Fatalf("match %d: hero %d twice", i, pl.HeroID)
			}
			heroes[pl.HeroID] = pl.TeamNumber
			score[p/5] += pl.Kills
			if pl.AccountID == 4294967295 {
				anonymous++
			}
			if u := pl.Upgrades; len(u) < 10 || len(u) > 25 {
				t.Fatalf("match %d player %d: %d ability upgrades", i, p, len(u))
			}
			for k, u := range pl.Upgrades {
				if u.Level != k+1 || u.Ability == 0 || k > 0 && u.Time <= pl.Upgrades[k-1].Time {
					t.Fatalf("match %d player %d: upgrade %d = %+v", i, p, k, u)
				}
			}
			if got := keysOf(t, rawPlayers.Players[p]); !slices.Equal(got, wantPlayerKeys) {
				t.Fatalf("match %d player %d: keys %v", i, p, got)
			}
		}
		if score != [2]int64{b.RadiantScore, b.DireScore} {
			t.Fatalf("match %d: score %d-%d, kills %v", i, b.RadiantScore, b.DireScore, score)
		}
		if b.GameMode == 2 {
			picks := 0
			for o, pb := range b.PicksBans {
				team, mine := heroes[pb.HeroID]
				if pb.Order != o || pb.IsPick != mine || mine && team != pb.Team {
					t.Fatalf("match %d: pick/ban %d = %+v", i, o, pb)
				}
				picks += b2i(pb.IsPick)
			}
			if len(b.PicksBans) != 24 || picks != 10 {
				t.Fatalf("match %d: %d picks and bans, %d picks", i, len(b.PicksBans), picks)
			}
		}
	}
	t.Logf("average body %d bytes; %d league, %d captains mode, %d anonymous players of %d matches", total/n, leagues, captains, anonymous, n)
	if leagues < n/20 || leagues > n/5 || captains < leagues || anonymous == 0 {
		t.Fatalf("%d league and %d captains-mode matches, %d anonymous players, in %d", leagues, captains, anonymous, n)
	}

	// The page serves Body byte for byte, and another Server the same.
	p, _ := getRaw(t, seqURL(base, 0, 100))
	other := New(opts)
	for k, e := range p.Result.Matches {
		want, _ := other.Body(s.seq(int64(k)))
		if string(e) != want {
			t.Fatalf("entry %d differs from Body", k)
		}
	}
	if _, body := getRaw(t, seqURL(base, 0, 100)); !bytes.Contains(body, []byte(`"radiant_logo":`)) {
		t.Fatal("no league match in the first page")
	}
}

func TestBodyNotFound(t *testing.T) {
	s := New(Options{Count: 20, FirstSeq: 100, GapEvery: 5, Gap: 3, HiddenEvery: 10})
	tests := []struct {
		name string
		seq  int64
		ok   bool
	}{
		{"first", 100, true},
		{"before the first", 99, false},
		{"in a gap", 106, false},
		{"hidden", 100 + 9 + 3, false}, // index 9
		{"not yet existing", s.seq(20), false},
		{"not hidden", s.seq(18), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if body, ok := s.Body(tt.seq); ok != tt.ok || ok != (body != "") {
				t.Fatalf("Body(%d) = %.40q, %v; want found %v", tt.seq, body, ok, tt.ok)
			}
		})
	}
	s.Replace(100, `{"match_seq_num":100}`)
	if body, _ := s.Body(100); body != `{"match_seq_num":100}` {
		t.Fatalf("Body after Replace = %.40q", body)
	}
	s.Advance(1)
	if _, ok := s.Body(s.seq(20)); !ok {
		t.Fatal("Body not found after Advance")
	}
}

func TestHistoryEntryMatchesBody(t *testing.T) {
	s, base := Start(t, Options{Count: 50})
	p, _ := getRaw(t, base+string(History)+"?key="+DefaultKey)
	for _, e := range p.Result.Matches {
		var h struct {
			SeqNum  int64 `json:"match_seq_num"`
			Players []struct {
				AccountID int64 `json:"account_id"`
				Slot      int   `json:"player_slot"`
				HeroID    int   `json:"hero_id"`
			} `json:"players"`
		}
		if err := json.Unmarshal(e, &h); err != nil {
			t.Fatal(err)
		}
		raw, _ := s.Body(h.SeqNum)
		var b body
		if err := json.Unmarshal([]byte(raw), &b); err != nil {
			t.Fatal(err)
		}
		if len(h.Players) != 2 || h.Players[0].HeroID != b.Players[0].HeroID || h.Players[1].AccountID != b.Players[5].AccountID || h.Players[1].Slot != 128 {
			t.Fatalf("history entry %s disagrees with the body's players", e)
		}
		if len(e) > 400 {
			t.Fatalf("history entry is %d bytes, want a short entry", len(e))
		}
	}
}

func BenchmarkSequencePage(b *testing.B) {
	s := New(Options{Count: 10_000})
	req := httptest.NewRequest(http.MethodGet, seqURL("", 6_500_000_000, 100), nil)
	size := 0
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/page")
}

func BenchmarkBody(b *testing.B) {
	s := New(Options{Count: 10_000})
	var buf []byte
	i := int64(0)
	for b.Loop() {
		buf = s.appendMatch(buf[:0], i%10_000)
		i++
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

// TestCompactBodies: Compact entries are small, valid JSON, with the
// same match_id, match_seq_num and start_time as the real-size ones.
func TestCompactBodies(t *testing.T) {
	full, compact := New(Options{Count: 50}), New(Options{Count: 50, Compact: true})
	for _, seq := range []int64{full.Matches()[0].SeqNum, full.Matches()[49].SeqNum} {
		fb, _ := full.Body(seq)
		cb, ok := compact.Body(seq)
		var f, c struct {
			MatchID   int64 `json:"match_id"`
			SeqNum    int64 `json:"match_seq_num"`
			StartTime int64 `json:"start_time"`
		}
		if !ok || json.Unmarshal([]byte(fb), &f) != nil || json.Unmarshal([]byte(cb), &c) != nil || f != c || c.MatchID == 0 {
			t.Fatalf("seq %d: compact %+v (%s), full %+v", seq, c, cb, f)
		}
		if len(cb) > 500 || len(fb) < 10_000 {
			t.Errorf("seq %d: compact body %d bytes, full %d", seq, len(cb), len(fb))
		}
	}
}
