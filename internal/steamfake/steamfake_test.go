package steamfake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
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
			calls := s.Calls()
			if len(calls) != 1 || calls[0].Endpoint != Sequence || calls[0].StartAt != tt.start || calls[0].Matches != len(got) {
				t.Fatalf("calls = %+v", calls)
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
