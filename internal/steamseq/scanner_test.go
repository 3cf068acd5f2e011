package steamseq

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

func TestPagesThroughTheSequence(t *testing.T) {
	tests := []struct {
		name      string
		opts      steamfake.Options
		requested int
	}{
		{"contiguous", steamfake.Options{Count: 1000}, 100},
		{"with gaps", steamfake.Options{Count: 1050, GapEvery: 7, Gap: 3}, 100},
		{"small pages", steamfake.Options{Count: 95, GapEvery: 10, Gap: 1}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, base := steamfake.Start(t, tt.opts)
			want := fake.Matches()
			cfg := testConfig(base)
			cfg.StartSeqNum = want[0].SeqNum
			cfg.MatchesRequested = tt.requested
			rec := newRecorder()
			r := start(t, cfg, noResume, rec)
			rec.wait(t, len(want))
			got, _ := rec.snapshot()
			sameMatches(t, got, want)

			// One call per page, each starting just after the last seq of
			// the one before, and a last call that finds nothing new.
			// After a page that is not full the scanner waits an hour.
			nCalls := len(want)/tt.requested + 1
			calls := waitCalls(t, fake, nCalls)
			if len(calls) != nCalls {
				t.Fatalf("%d calls, want %d", len(calls), nCalls)
			}
			for k, c := range calls {
				wantStart := want[0].SeqNum
				if k > 0 {
					wantStart = want[min(k*tt.requested, len(want))-1].SeqNum + 1
				}
				if c.Endpoint != steamfake.Sequence || c.StartAt != wantStart || c.Requested != tt.requested {
					t.Fatalf("call %d = %+v, want start_at %d", k, c, wantStart)
				}
			}
			last := want[len(want)-1].SeqNum
			detail := fmt.Sprintf("at seq %d, lag 0", last)
			waitFor(t, detail, func() bool { return r.s.Status().Detail == detail })
			if r.s.Position() != last || !r.s.Status().Up {
				t.Errorf("position %d, status %+v, want up at %d", r.s.Position(), r.s.Status(), last)
			}
			if got := testutil.ToFloat64(r.s.metrics.matches); got != float64(len(want)) {
				t.Errorf("matches_total = %v, want %d", got, len(want))
			}
			waitFor(t, "the last call counted", func() bool { return r.requests(endpointSequence, outcomeOK) == float64(nCalls) })
		})
	}
}

func TestIdleWait(t *testing.T) {
	tests := []struct {
		name     string
		count    int64
		idleWait time.Duration
		idle     bool // whether the second page is followed by IdleWait
	}{
		// 150 matches: a full page, then half a page.
		{"partial page waits", 150, 300 * time.Millisecond, true},
		// 195: the second page is 95% full, as when Steam hides a few
		// matches; an hour's wait would time the test out.
		{"mostly full page does not wait", 195, time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, base := steamfake.Start(t, steamfake.Options{Count: tt.count})
			cfg := testConfig(base)
			cfg.StartSeqNum = fake.Matches()[0].SeqNum
			cfg.IdleWait = tt.idleWait
			rec := newRecorder()
			start(t, cfg, noResume, rec)
			calls := waitCalls(t, fake, 3)
			if calls[2].StartAt != fake.Head()+1 {
				t.Fatalf("third call starts at %d, want %d", calls[2].StartAt, fake.Head()+1)
			}
			if gap := calls[2].Time.Sub(calls[1].Time); tt.idle && gap < tt.idleWait-20*time.Millisecond {
				t.Fatalf("after a partial page the next call came after %v, want at least %v", gap, tt.idleWait)
			}
			if !tt.idle {
				return
			}
			// New matches are found after the next wait.
			fake.Advance(10)
			rec.wait(t, int(tt.count)+10)
			calls = waitCalls(t, fake, 4)
			if calls[3].StartAt != calls[2].StartAt {
				t.Fatalf("fourth call starts at %d, want %d again", calls[3].StartAt, calls[2].StartAt)
			}
		})
	}
}

func TestMinInterval(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 400})
	cfg := testConfig(base)
	cfg.StartSeqNum = fake.Matches()[0].SeqNum
	cfg.MinInterval = 80 * time.Millisecond
	start(t, cfg, noResume, newRecorder())
	calls := waitCalls(t, fake, 5)
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].Time.Sub(calls[i-1].Time); gap < cfg.MinInterval-20*time.Millisecond {
			t.Fatalf("calls %d and %d are %v apart, want at least %v", i-1, i, gap, cfg.MinInterval)
		}
	}
}

func TestFailedCallsAreRetried(t *testing.T) {
	page := func(seqs ...int64) string {
		var b strings.Builder
		for i, s := range seqs {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"match_id":%d,"match_seq_num":%d}`, 9_000_000_000+s, s)
		}
		return `{"result":{"status":1,"matches":[` + b.String() + `]}}`
	}
	tests := []struct {
		name     string
		fault    func(next int64) steamfake.Fault // next: the start_at of the failing call
		n        int
		outcome  string
		minDelay time.Duration // least time between a failing call and the next
		detail   string        // in the status after a failure
	}{
		{"rate limited", func(int64) steamfake.Fault { return steamfake.Fault{Status: 429} }, 3, outcomeRateLimited, 0, "HTTP 429"},
		{"rate limited with Retry-After", func(int64) steamfake.Fault { return steamfake.Fault{Status: 429, RetryAfter: "1"} }, 1, outcomeRateLimited, time.Second, "HTTP 429"},
		{"server error", func(int64) steamfake.Fault { return steamfake.Fault{Status: 503} }, 2, outcomeServerError, 0, "HTTP 503"},
		{"server error with Retry-After", func(int64) steamfake.Fault { return steamfake.Fault{Status: 500, RetryAfter: "1"} }, 1, outcomeServerError, time.Second, "HTTP 500"},
		{"malformed body", func(int64) steamfake.Fault {
			return steamfake.Fault{Body: `{"result":{"status":1,"matches":[{"match_id":1`}
		}, 2, outcomeBadResponse, 0, "bad answer"},
		{"empty body", func(int64) steamfake.Fault { return steamfake.Fault{} }, 1, outcomeBadResponse, 0, "bad answer"},
		{"no result", func(int64) steamfake.Fault { return steamfake.Fault{Body: `{}`} }, 1, outcomeBadResponse, 0, "no result"},
		{"status not 1", func(int64) steamfake.Fault {
			return steamfake.Fault{Body: `{"result":{"status":2,"statusDetail":"Error retrieving match data."}}`}
		}, 2, outcomeBadResponse, 0, "status 2: Error retrieving match data."},
		{"seqs go backwards", func(next int64) steamfake.Fault { return steamfake.Fault{Body: page(next, next+2, next+1)} }, 1, outcomeBadResponse, 0, "out of order"},
		{"seq below start", func(next int64) steamfake.Fault { return steamfake.Fault{Body: page(next-1, next)} }, 1, outcomeBadResponse, 0, "starts at"},
		{"entry without seq", func(next int64) steamfake.Fault {
			return steamfake.Fault{Body: `{"result":{"status":1,"matches":[{"match_id":5}]}}`}
		}, 1, outcomeBadResponse, 0, "no valid match_seq_num"},
		{"not found", func(int64) steamfake.Fault { return steamfake.Fault{Status: 404} }, 1, outcomeClientError, 0, "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, base := steamfake.Start(t, steamfake.Options{Count: 250})
			want := fake.Matches()
			cfg := testConfig(base)
			cfg.StartSeqNum = want[0].SeqNum
			rec := newRecorder()
			// The faults hit the call after the first page.
			next := want[99].SeqNum + 1
			var once sync.Once
			rec.accept = func(m match.Match) error {
				if m.SeqNum == want[99].SeqNum {
					once.Do(func() { fake.Fail(tt.n, tt.fault(next)) })
				}
				return nil
			}
			r := start(t, cfg, noResume, rec)
			rec.wait(t, len(want))
			got, _ := rec.snapshot()
			sameMatches(t, got, want)

			calls := waitCalls(t, fake, tt.n+3)
			for i := 1; i <= tt.n+1; i++ {
				if calls[i].StartAt != next {
					t.Fatalf("call %d starts at %d, want the same start %d again", i, calls[i].StartAt, next)
				}
				if gap := calls[i].Time.Sub(calls[i-1].Time); i > 1 && gap < tt.minDelay-20*time.Millisecond {
					t.Fatalf("retry %d came %v after the failure, want at least %v", i-1, gap, tt.minDelay)
				}
			}
			if got := r.requests(endpointSequence, tt.outcome); got != float64(tt.n) {
				t.Errorf("requests_total{sequence,%s} = %v, want %d", tt.outcome, got, tt.n)
			}
			lines := r.logs.Lines(t, "Steam call failed, retrying")
			if len(lines) != tt.n {
				t.Fatalf("%d failure log lines, want %d", len(lines), tt.n)
			}
			if e, _ := lines[0]["error"].(string); !strings.Contains(e, tt.detail) || lines[0]["outcome"] != tt.outcome {
				t.Errorf("failure logged as %v, want outcome %s and an error with %q", lines[0], tt.outcome, tt.detail)
			}
			waitFor(t, "up again", func() bool { return r.s.Status().Up })
		})
	}
}

func TestStatusDownAfterFailure(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 10})
	fake.Fail(1000, steamfake.Fault{Status: 502})
	cfg := testConfig(base)
	cfg.StartSeqNum = 1
	r := start(t, cfg, noResume, newRecorder())
	waitCalls(t, fake, 3)
	waitFor(t, "down", func() bool { return strings.Contains(r.s.Status().Detail, "HTTP 502") })
	if st := r.s.Status(); st.Up {
		t.Fatalf("status = %+v, want down", st)
	}
}

func TestStartPosition(t *testing.T) {
	tests := []struct {
		name      string
		resume    ResumeFunc
		startSeq  int64
		wantStart func(f *steamfake.Server) int64
		history   bool // whether the head is asked for first
	}{
		{"after the resumed seq", resumeAt(6_500_000_010), 6_500_000_500, func(*steamfake.Server) int64 { return 6_500_000_011 }, false},
		{"resumed seq zero", resumeAt(0), 6_500_000_500, func(*steamfake.Server) int64 { return 1 }, false},
		{"configured seq when nothing to resume", noResume, 6_500_000_020, func(*steamfake.Server) int64 { return 6_500_000_020 }, false},
		{"head when neither", noResume, 0, func(f *steamfake.Server) int64 { return f.Head() }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, base := steamfake.Start(t, steamfake.Options{Count: 50})
			cfg := testConfig(base)
			cfg.StartSeqNum = tt.startSeq
			r := start(t, cfg, tt.resume, newRecorder())
			n := 1
			if tt.history {
				n = 2
			}
			calls := waitCalls(t, fake, n)
			seq := sequenceCalls(calls)
			if (calls[0].Endpoint == steamfake.History) != tt.history {
				t.Fatalf("first call = %+v, want a history call: %v", calls[0], tt.history)
			}
			if want := tt.wantStart(fake); seq[0].StartAt != want {
				t.Fatalf("first page asked from %d, want %d", seq[0].StartAt, want)
			}
			if tt.history && r.s.Head() != fake.Head() {
				t.Fatalf("Head = %d, want %d", r.s.Head(), fake.Head())
			}
		})
	}
}

func TestNotReadyUntilResumed(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 10, FirstSeq: 100})
	var attempts atomic.Int32
	release := make(chan struct{})
	resume := func(ctx context.Context, _, _ int64) (Resume, error) {
		if attempts.Add(1) <= 3 {
			return Resume{}, errors.New("kafka: connection refused")
		}
		select {
		case <-release:
			return Resume{Found: true, Seq: 104, Rescan: 104}, nil
		case <-ctx.Done():
			return Resume{}, ctx.Err()
		}
	}
	rec := newRecorder()
	r := start(t, testConfig(base), resume, rec)
	waitFor(t, "resume retried", func() bool { return attempts.Load() >= 4 })
	st := r.s.Status()
	if st.Up || !strings.Contains(st.Detail, "waiting for a start position") {
		t.Fatalf("status while resuming = %+v, want down and waiting", st)
	}
	if len(fake.Calls()) != 0 || r.s.Position() != 0 {
		t.Fatalf("calls before a start position: %+v, position %d", fake.Calls(), r.s.Position())
	}
	if lines := r.logs.Lines(t, "Cannot read the resume position, retrying"); len(lines) != 3 || !strings.Contains(lines[0]["error"].(string), "connection refused") {
		t.Fatalf("resume warnings = %v", lines)
	}
	close(release)
	rec.wait(t, 5)
	got, _ := rec.snapshot()
	if got[0].SeqNum != 105 {
		t.Fatalf("first match handed on has seq %d, want 105", got[0].SeqNum)
	}
	waitFor(t, "up", func() bool { return r.s.Status().Up })
}

func TestHandlerRefusalStops(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 300})
	want := fake.Matches()
	cfg := testConfig(base)
	cfg.StartSeqNum = want[0].SeqNum
	errFull := errors.New("buffer full")
	rec := newRecorder()
	rec.accept = func(m match.Match) error {
		if m.SeqNum == want[149].SeqNum {
			return errFull
		}
		return nil
	}
	r := start(t, cfg, noResume, rec)
	err := r.result(t)
	if !errors.Is(err, errFull) {
		t.Fatalf("Run = %v, want the handler's error", err)
	}
	if r.s.Position() != want[148].SeqNum {
		t.Fatalf("Position = %d, want %d, the last accepted", r.s.Position(), want[148].SeqNum)
	}
	got, _ := rec.snapshot()
	sameMatches(t, got, want[:149])
	if st := r.s.Status(); st.Up || !strings.Contains(st.Detail, "buffer full") {
		t.Fatalf("status = %+v, want down with the handler's error", st)
	}
}

func TestCancelReturnsPromptly(t *testing.T) {
	blocked := func(arrived chan<- struct{}) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case arrived <- struct{}{}:
			default:
			}
			<-r.Context().Done()
		})
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) (Config, ResumeFunc, func(t *testing.T))
	}{
		{"during the idle wait", func(t *testing.T) (Config, ResumeFunc, func(*testing.T)) {
			fake, base := steamfake.Start(t, steamfake.Options{Count: 5})
			return testConfig(base), resumeAt(1), func(t *testing.T) { waitCalls(t, fake, 1) }
		}},
		{"during a request", func(t *testing.T) (Config, ResumeFunc, func(*testing.T)) {
			arrived := make(chan struct{}, 1)
			srv := httptest.NewServer(blocked(arrived))
			t.Cleanup(srv.Close)
			return testConfig(srv.URL), resumeAt(1), func(*testing.T) { <-arrived }
		}},
		{"during a backoff", func(t *testing.T) (Config, ResumeFunc, func(*testing.T)) {
			fake, base := steamfake.Start(t, steamfake.Options{Count: 5})
			fake.Fail(1, steamfake.Fault{Status: 429, RetryAfter: "600"})
			return testConfig(base), resumeAt(1), func(t *testing.T) { waitCalls(t, fake, 1) }
		}},
		{"while resuming", func(t *testing.T) (Config, ResumeFunc, func(*testing.T)) {
			_, base := steamfake.Start(t, steamfake.Options{})
			cfg := testConfig(base)
			cfg.BackoffMin, cfg.BackoffMax = time.Hour, time.Hour
			called := make(chan struct{}, 1)
			resume := func(context.Context, int64, int64) (Resume, error) {
				called <- struct{}{}
				return Resume{}, errors.New("not yet")
			}
			return cfg, resume, func(*testing.T) { <-called }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, resume, ready := tt.setup(t)
			r := start(t, cfg, resume, newRecorder())
			ready(t)
			r.stop(t, 2*time.Second)
			if st := r.s.Status(); st.Up || st.Detail != "stopped" {
				t.Fatalf("status after stop = %+v", st)
			}
		})
	}
}

func TestShutdownHandsOnTheFetchedPage(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 300})
	want := fake.Matches()
	cfg := testConfig(base)
	cfg.StartSeqNum = want[0].SeqNum
	rec := newRecorder()
	inHandler := make(chan struct{})
	cancelled := make(chan struct{})
	rec.accept = func(m match.Match) error {
		if m.SeqNum == want[120].SeqNum {
			close(inHandler)
			<-cancelled // shutdown begins while the page is being handed on
		}
		return nil
	}
	r := start(t, cfg, noResume, rec)
	<-inHandler
	r.cancel()
	close(cancelled)
	r.stop(t, 5*time.Second)
	got, _ := rec.snapshot()
	sameMatches(t, got, want[:200])
	if r.s.Position() != want[199].SeqNum {
		t.Fatalf("Position = %d, want %d, the end of the page", r.s.Position(), want[199].SeqNum)
	}
	if calls := sequenceCalls(fake.Calls()); len(calls) != 2 {
		t.Fatalf("%d calls, want no call after shutdown began", len(calls))
	}
}

// TestRestartResumesWithoutGapOrDuplicate runs a scanner, stops it after
// some matches, and starts a second one from the first one's position.
func TestRestartResumesWithoutGapOrDuplicate(t *testing.T) {
	errStop := errors.New("shutting down")
	tests := []struct {
		name   string
		k      int
		refuse bool // stop by refusing the match after k, not by cancelling
	}{
		{"cancel mid-page", 437, false},
		{"cancel at a page end", 300, false},
		{"handler refuses", 437, true},
		{"handler refuses the first", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, base := steamfake.Start(t, steamfake.Options{Count: 1000, GapEvery: 13, Gap: 2})
			want := fake.Matches()
			cfg := testConfig(base)
			cfg.StartSeqNum = want[0].SeqNum

			first := newRecorder()
			var n atomic.Int64
			var r1 *running
			first.accept = func(match.Match) error {
				i := n.Add(1)
				if tt.refuse && i > int64(tt.k) {
					return errStop
				}
				if !tt.refuse && i == int64(tt.k) {
					r1.cancel()
				}
				return nil
			}
			ready := make(chan struct{})
			r1 = start(t, cfg, func(context.Context, int64, int64) (Resume, error) {
				<-ready // r1 is set
				return Resume{}, nil
			}, first)
			close(ready)
			if err := r1.result(t); (err != nil) != tt.refuse {
				t.Fatalf("first Run = %v", err)
			}
			pos := r1.s.Position()

			second := newRecorder()
			r2 := start(t, cfg, resumeAt(pos), second)
			got1, _ := first.snapshot()
			second.wait(t, len(want)-len(got1))
			got2, _ := second.snapshot()
			sameMatches(t, append(got1, got2...), want)
			if len(got1) > 0 && got1[len(got1)-1].SeqNum != pos {
				t.Fatalf("first position %d, last handed on %d", pos, got1[len(got1)-1].SeqNum)
			}
			waitFor(t, "second at the head", func() bool { return r2.s.Position() == fake.Head() })
		})
	}
}

func TestRejectsEntriesWithoutValidMatchID(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 120, FirstSeq: 1000})
	bad := map[int64]struct {
		entry  string
		reason match.Reason
	}{
		1003: {`{"match_seq_num":1003,"match_id":"8300000009"}`, match.WrongType},
		1050: {`{"match_seq_num":1050,"start_time":1760000100}`, match.MissingID},
		1099: {`{"match_seq_num":1099,"match_id":null}`, match.NullID},
		1119: {`{"match_seq_num":1119,"match_id":-4,"players":[` + strings.Repeat(`{"hero_id":1},`, 40) + `{}]}`, match.NotPositive},
	}
	for seq, b := range bad {
		fake.Replace(seq, b.entry)
	}
	want := fake.Matches()
	cfg := testConfig(base)
	cfg.StartSeqNum = 1000
	rec := newRecorder()
	r := start(t, cfg, noResume, rec)
	rec.wait(t, 120)
	got, rejects := rec.snapshot()
	sameMatches(t, got, want)
	if len(rejects) != len(bad) {
		t.Fatalf("rejects = %v", rejects)
	}
	for _, rj := range rejects {
		var seq int64
		if _, err := fmt.Sscanf(rj.item, `{"match_seq_num":%d`, &seq); err != nil {
			t.Fatalf("rejected item %q: %v", rj.item, err)
		}
		b := bad[seq]
		if rj.reason != b.reason || !strings.HasPrefix(b.entry, rj.item) || len(rj.item) > maxRejectItem {
			t.Errorf("seq %d rejected as %s with %q, want %s with (the start of) %s", seq, rj.reason, rj.item, b.reason, b.entry)
		}
	}
	// The last entry of each page was rejected, and the position moved
	// past it all the same.
	calls := waitCalls(t, fake, 2)
	if calls[1].StartAt != 1100 {
		t.Fatalf("second call starts at %d, want 1100", calls[1].StartAt)
	}
	waitFor(t, "position past the rejected entry", func() bool { return r.s.Position() == 1119 })
}

func TestHeadAndLag(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 150, FirstSeq: 1000})
	cfg := testConfig(base)
	cfg.StartSeqNum = 1000
	cfg.HeadInterval = 30 * time.Millisecond
	rec := newRecorder()
	r := start(t, cfg, noResume, rec)
	rec.wait(t, 150)
	waitFor(t, "caught up", func() bool { return r.s.Position() == 1149 })
	if calls := fake.Calls(); calls[0].Endpoint != steamfake.History {
		t.Fatalf("first call = %+v, want the head asked for first", calls[0])
	}

	// Idle for an hour now; the head is still refreshed, the lag shown.
	head := fake.Advance(1000)
	waitFor(t, "the new lag", func() bool { return testutil.ToFloat64(r.s.metrics.lag) == 1000 })
	if r.s.Head() != head || testutil.ToFloat64(r.s.metrics.head) != float64(head) {
		t.Fatalf("Head = %d, head gauge = %v, want %d", r.s.Head(), testutil.ToFloat64(r.s.metrics.head), head)
	}
	if got := testutil.ToFloat64(r.s.metrics.position); got != 1149 || r.s.Position() != 1149 {
		t.Fatalf("position = %d, gauge %v, want 1149", r.s.Position(), got)
	}
	waitFor(t, "the lag in the status", func() bool { return r.s.Status().Detail == "at seq 1149, lag 1000" })

	// A failed refresh is logged and retried, and the pages go on.
	before := r.requests(endpointHistory, outcomeOK)
	fake.Fail(2, steamfake.Fault{Endpoint: steamfake.History, Status: 503})
	waitFor(t, "two failed refreshes", func() bool { return r.requests(endpointHistory, outcomeServerError) == 2 })
	waitFor(t, "a refresh after them", func() bool { return r.requests(endpointHistory, outcomeOK) > before })
	waitFor(t, "up after a good refresh", func() bool { return r.s.Status().Up })
}
