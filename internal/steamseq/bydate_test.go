package steamseq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// The head of the sequence in December 2025 (odota/core
// json/sequence_api.json).
const seqHead = 7_215_564_751

// seqLandmark is a seq and the time its matches started.
type seqLandmark struct {
	seq int64
	at  time.Time
}

// realHistory runs through the landmarks of REAL-SOURCES.md: seq 1 at the
// start of 2011-03, seq 1,584,699,503 in 2015-09, 6,303,575,074 in 2023-12
// and the head in 2025-12.
var realHistory = []seqLandmark{
	{1, time.Date(2011, 3, 1, 0, 0, 0, 0, time.UTC)},
	{1_584_699_503, time.Date(2015, 9, 1, 0, 0, 0, 0, time.UTC)},
	{6_303_575_074, time.Date(2023, 12, 1, 0, 0, 0, 0, time.UTC)},
	{seqHead, time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)},
}

// seqModel is a synthetic sequence: seq and base time are piecewise linear
// through landmarks (the first piece quadratic when sparseStart, so that
// March 2011 has about a thousand seqs a day and August 2015 about two
// million), the base
// time bent by a daily cycle of density (a factor (1+daily)/(1-daily)
// between night and evening), start times jittered by up to ±jitter, and
// some seqs hidden.
type seqModel struct {
	marks       []seqLandmark
	sparseStart bool
	daily       float64
	jitter      time.Duration
	// hidden reports whether seq is hidden, and the first seq after its
	// run of hidden seqs.
	hidden func(seq int64) (bool, int64)
	// outages are times when no match ended: the seqs after one start
	// its length later.
	outages []outage
	// noise, when set, replaces the time with an arbitrary one, for a
	// probe that tells nothing.
	noise bool
}

const secondsPerDay = 24 * 60 * 60

// outage is a time Steam was down, so that the times of the seqs jump.
type outage struct {
	at     time.Time
	length time.Duration
}

// baseTime is seq's time before the daily bend, in Unix seconds.
func (m seqModel) baseTime(seq float64) float64 {
	i := 0
	for i < len(m.marks)-2 && seq > float64(m.marks[i+1].seq) {
		i++
	}
	a, b := m.marks[i], m.marks[i+1]
	frac := (seq - float64(a.seq)) / float64(b.seq-a.seq)
	if m.sparseStart && i == 0 && frac > 0 {
		frac = math.Sqrt(frac)
	}
	ta, tb := float64(a.at.Unix()), float64(b.at.Unix())
	return ta + frac*(tb-ta)
}

// bend is the daily cycle of density, increasing in t since daily < 1.
func (m seqModel) bend(t float64) float64 {
	return t + m.daily*secondsPerDay/(2*math.Pi)*math.Sin(2*math.Pi*t/secondsPerDay)
}

// trueTime is seq's time without jitter.
func (m seqModel) trueTime(seq int64) float64 {
	t := m.bend(m.baseTime(float64(seq)))
	for _, o := range m.outages {
		if t >= float64(o.at.Unix()) {
			t += o.length.Seconds()
		}
	}
	return t
}

// seqAt is the (fractional) seq whose time without jitter is t.
func (m seqModel) seqAt(t float64) float64 {
	for i := len(m.outages) - 1; i >= 0; i-- {
		o := m.outages[i]
		if at := float64(o.at.Unix()); t >= at {
			t = max(at, t-o.length.Seconds())
		}
	}
	lo, hi := t-secondsPerDay, t+secondsPerDay
	for range 100 {
		mid := (lo + hi) / 2
		if m.bend(mid) < t {
			lo = mid
		} else {
			hi = mid
		}
	}
	u := (lo + hi) / 2
	i := 0
	for i < len(m.marks)-2 && u > float64(m.marks[i+1].at.Unix()) {
		i++
	}
	a, b := m.marks[i], m.marks[i+1]
	frac := (u - float64(a.at.Unix())) / float64(b.at.Unix()-a.at.Unix())
	if m.sparseStart && i == 0 && frac > 0 {
		frac *= frac
	}
	return float64(a.seq) + frac*float64(b.seq-a.seq)
}

// found is the first listed seq at or after seq.
func (m seqModel) found(seq int64) (int64, bool) {
	for m.hidden != nil {
		h, next := m.hidden(seq)
		if !h {
			break
		}
		seq = next
	}
	return seq, seq <= seqHead
}

// mixSeq is a fixed pseudo-random number from x (splitmix64).
func mixSeq(x int64) uint64 {
	z := uint64(x) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// probe is the model's TimeProbe; it counts its calls in *calls.
func (m seqModel) probe(calls *int) TimeProbe {
	return func(_ context.Context, seq int64) (int64, int64, bool, error) {
		*calls++
		f, ok := m.found(seq)
		if !ok {
			return 0, 0, false, nil
		}
		if m.noise && f > m.marks[0].seq && f < seqHead {
			return m.marks[0].at.Unix() + int64(mixSeq(f)%uint64(15*365*secondsPerDay)), f, true, nil
		}
		t := m.trueTime(f)
		if j := int64(m.jitter / time.Second); j > 0 {
			t += float64(int64(mixSeq(f)%uint64(2*j+1)) - j)
		}
		return int64(math.Floor(t)), f, true, nil
	}
}

// hiddenBlocks hides seqs [k*1000+400, k*1000+700) and the 50 million seqs
// from 3e9, as runs of high-MMR matches would be.
func hiddenBlocks(seq int64) (bool, int64) {
	if seq >= 3_000_000_000 && seq < 3_050_000_000 {
		return true, 3_050_000_000
	}
	if r := seq % 1000; r >= 400 && r < 700 {
		return true, seq - r + 700
	}
	return false, 0
}

// searchTargets spread over the history, landmarks and the gap included.
var searchTargets = []time.Time{
	time.Date(2011, 3, 2, 0, 0, 0, 0, time.UTC),
	time.Date(2011, 11, 20, 4, 0, 0, 0, time.UTC),
	time.Date(2012, 6, 15, 13, 37, 0, 0, time.UTC),
	time.Date(2014, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2015, 9, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2017, 5, 5, 22, 10, 0, 0, time.UTC),
	time.Date(2020, 2, 29, 6, 0, 0, 0, time.UTC),
	time.Date(2021, 8, 3, 17, 45, 0, 0, time.UTC),
	time.Date(2023, 12, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2024, 7, 4, 18, 30, 0, 0, time.UTC),
	time.Date(2025, 11, 30, 23, 0, 0, 0, time.UTC),
}

// bisectionCalls is what plain bisection of [1, head] to one page costs:
// the two ends and the halvings.
var bisectionCalls = 2 + bisections(seqHead-1, searchSeqTolerance)

func TestSeqAtTime(t *testing.T) {
	linear := seqModel{marks: []seqLandmark{realHistory[0], {seqHead, realHistory[3].at}}}
	landmarks := seqModel{marks: realHistory}
	sparse := seqModel{marks: realHistory, sparseStart: true, daily: 0.5}
	jittered := sparse
	jittered.jitter = 2 * time.Hour
	hidden := sparse
	hidden.hidden = hiddenBlocks
	outages := sparse
	outages.outages = []outage{
		{time.Date(2017, 5, 5, 21, 0, 0, 0, time.UTC), 3 * time.Hour},
		{time.Date(2024, 7, 4, 18, 0, 0, 0, time.UTC), 2 * time.Hour},
	}
	noisy := seqModel{marks: realHistory, noise: true}
	// The guarantee: bisection's probes and searchSlack more.
	bound := bisectionCalls + searchSlack

	tests := []struct {
		name  string
		model seqModel
		// maxCalls is the most probes a search may take.
		maxCalls int
		// anywhere: the model's times are noise, so only the bound is
		// checked.
		anywhere bool
	}{
		{name: "linear", model: linear, maxCalls: 3},
		{name: "landmarks", model: landmarks, maxCalls: 12},
		{name: "sparse start and daily cycle", model: sparse, maxCalls: 12},
		{name: "jitter of two hours", model: jittered, maxCalls: bound},
		{name: "hidden seqs", model: hidden, maxCalls: 12},
		{name: "outages", model: outages, maxCalls: 20},
		{name: "times that are noise", model: noisy, maxCalls: bound, anywhere: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var counts []int
			most := 0
			for _, target := range searchTargets {
				calls := 0
				got, err := SeqAtTime(context.Background(), tt.model.probe(&calls), target, 1, seqHead, SearchOptions{})
				if err != nil {
					t.Fatalf("%s: %v", target, err)
				}
				if got.Calls != calls {
					t.Errorf("%s: Calls = %d, the probe saw %d", target, got.Calls, calls)
				}
				if calls > tt.maxCalls {
					t.Errorf("%s: %d probes, want at most %d (bisection takes %d)", target, calls, tt.maxCalls, bisectionCalls)
				}
				if !tt.anywhere {
					checkSeqFound(t, tt.model, target, got)
				}
				counts = append(counts, calls)
				most = max(most, calls)
			}
			t.Logf("probes per target %v, at most %d; bisection takes %d", counts, most, bisectionCalls)
		})
	}
}

// checkSeqFound fails t unless got is within the tolerances of target: its
// seq within a page of a seq whose time without jitter is within a minute,
// plus the jitter, of target.
func checkSeqFound(t *testing.T, m seqModel, target time.Time, got SearchResult) {
	t.Helper()
	f, _ := m.found(got.Seq)
	lo := max(got.Seq-searchSeqTolerance, m.marks[0].seq)
	hi := min(f+searchSeqTolerance, seqHead)
	slack := (searchTimeTolerance + m.jitter).Seconds()
	want := float64(target.Unix())
	if want < m.trueTime(lo)-slack || want > m.trueTime(hi)+slack {
		t.Errorf("%s: seq %d (found %d), its page starts %s to %s; the target's seq is %.0f, %.0f away",
			target, got.Seq, f, seqUnixTime(m.trueTime(lo)), seqUnixTime(m.trueTime(hi)), m.seqAt(want), float64(got.Seq)-m.seqAt(want))
	}
	if got.StartTime == 0 {
		t.Errorf("%s: no start time at %d", target, got.Seq)
	}
}

// seqUnixTime is t, Unix seconds, as a time in UTC.
func seqUnixTime(t float64) time.Time { return time.Unix(int64(t), 0).UTC() }

func TestSeqAtTimeSubRange(t *testing.T) {
	m := seqModel{marks: realHistory, sparseStart: true, daily: 0.5}
	tests := []struct {
		name   string
		target time.Time
		lo, hi int64
		opts   SearchOptions
		max    int
	}{
		{
			name:   "a day's range, one page",
			target: time.Date(2024, 7, 4, 18, 30, 0, 0, time.UTC),
			lo:     int64(m.seqAt(float64(time.Date(2024, 7, 4, 0, 0, 0, 0, time.UTC).Unix()))),
			hi:     int64(m.seqAt(float64(time.Date(2024, 7, 5, 0, 0, 0, 0, time.UTC).Unix()))),
			max:    6,
		},
		{
			name:   "exact seq, no time tolerance",
			target: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC),
			lo:     1,
			hi:     seqHead,
			opts:   SearchOptions{SeqTolerance: 1, TimeTolerance: -1},
			max:    14,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := SeqAtTime(context.Background(), m.probe(&calls), tt.target, tt.lo, tt.hi, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if calls > tt.max {
				t.Errorf("%d probes, want at most %d", calls, tt.max)
			}
			checkSeqFound(t, m, tt.target, got)
			if tt.opts.SeqTolerance == 1 {
				// The first seq at or after the target, exactly.
				if m.trueTime(got.Seq) < float64(tt.target.Unix()) || m.trueTime(got.Seq-1) >= float64(tt.target.Unix()) {
					t.Errorf("seq %d starts %s, seq before %s; want the first at or after %s",
						got.Seq, seqUnixTime(m.trueTime(got.Seq)), seqUnixTime(m.trueTime(got.Seq-1)), tt.target)
				}
			}
			t.Logf("%d probes", calls)
		})
	}
}

func TestSeqAtTimeEdges(t *testing.T) {
	m := seqModel{marks: realHistory, sparseStart: true, daily: 0.5}
	errSteam := errors.New("status 2")
	failAt := func(n int) func(TimeProbe) TimeProbe {
		return func(p TimeProbe) TimeProbe {
			calls := 0
			return func(ctx context.Context, seq int64) (int64, int64, bool, error) {
				if calls++; calls == n {
					return 0, 0, false, errSteam
				}
				return p(ctx, seq)
			}
		}
	}
	empty := func(TimeProbe) TimeProbe {
		return func(context.Context, int64) (int64, int64, bool, error) { return 0, 0, false, nil }
	}
	// pastHead lists nothing from seq 7e9 on: a search for a later time
	// finds where the listing ends, by bisection.
	pastHead := func(p TimeProbe) TimeProbe {
		return func(ctx context.Context, seq int64) (int64, int64, bool, error) {
			if seq >= 7_000_000_000 {
				return 0, 0, false, nil
			}
			return p(ctx, seq)
		}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name   string
		ctx    context.Context
		wrap   func(TimeProbe) TimeProbe
		target time.Time
		lo, hi int64
		opts   SearchOptions
		// want is the result's seq, -1 for any, or up to within more;
		// calls its probes, -1 for any.
		want    int64
		within  int64
		calls   int
		wantErr error
	}{
		{name: "before the start", target: time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC), lo: 1, hi: seqHead, want: 1, calls: 1},
		{name: "before a range's start", target: time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC), lo: 5e9, hi: seqHead, want: 5e9, calls: 1},
		{name: "after the head", target: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), lo: 1, hi: seqHead, want: seqHead, calls: 2},
		{name: "at the head", target: realHistory[3].at, lo: 1, hi: seqHead, want: seqHead, calls: 2},
		{name: "one seq", target: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), lo: 1e9, hi: 1e9, want: 1e9, calls: 1},
		{name: "nothing listed after hi", wrap: pastHead, target: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), lo: 1, hi: seqHead, want: -1, calls: -1},
		{name: "nothing listed after the target", wrap: pastHead, target: time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC), lo: 1, hi: seqHead, want: 7e9, within: searchSeqTolerance, calls: -1},
		{name: "nothing listed", wrap: empty, target: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), lo: 1, hi: seqHead, calls: 1, wantErr: ErrNothingListed},
		{name: "first probe fails", wrap: failAt(1), target: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), lo: 1, hi: seqHead, calls: 1, wantErr: errSteam},
		{name: "head probe fails", wrap: failAt(2), target: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), lo: 1, hi: seqHead, calls: 2, wantErr: errSteam},
		{name: "later probe fails", wrap: failAt(4), target: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), lo: 1, hi: seqHead, calls: 4, wantErr: errSteam},
		{name: "context cancelled", ctx: cancelled, target: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), lo: 1, hi: seqHead, calls: 0, wantErr: context.Canceled},
		{name: "call limit", target: time.Date(2012, 6, 15, 13, 37, 0, 0, time.UTC), lo: 1, hi: seqHead, opts: SearchOptions{MaxCalls: 3}, want: -1, calls: 3, wantErr: ErrCallLimit},
		{name: "empty range", target: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), lo: 10, hi: 9, calls: 0, wantErr: errAnySearch},
		{name: "negative range", target: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), lo: -5, hi: 9, calls: 0, wantErr: errAnySearch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			calls := 0
			p := m.probe(&calls)
			if tt.wrap != nil {
				p = tt.wrap(p)
			}
			got, err := SeqAtTime(ctx, p, tt.target, tt.lo, tt.hi, tt.opts)
			switch {
			case tt.wantErr == errAnySearch && err == nil:
				t.Fatal("no error")
			case tt.wantErr != errAnySearch && !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.calls >= 0 && got.Calls != tt.calls {
				t.Errorf("Calls = %d, want %d", got.Calls, tt.calls)
			}
			if tt.wantErr == nil && tt.want >= 0 && (got.Seq < tt.want || got.Seq > tt.want+tt.within) {
				t.Errorf("Seq = %d, want %d (or up to %d more)", got.Seq, tt.want, tt.within)
			}
			if tt.wantErr == nil && tt.want < 0 {
				checkSeqFound(t, m, tt.target, got)
			}
			if errors.Is(err, ErrCallLimit) && m.trueTime(got.Seq) >= float64(tt.target.Unix()) {
				t.Errorf("at the call limit Seq %d starts %s, not before %s", got.Seq, seqUnixTime(m.trueTime(got.Seq)), tt.target)
			}
			t.Logf("seq %d, %d probes, err %v", got.Seq, got.Calls, err)
		})
	}
}

// errAnySearch stands for any error in a test table.
var errAnySearch = errors.New("any error")

// However noisy the times, no search takes more probes than bisection and
// searchSlack.
func TestSeqAtTimeBound(t *testing.T) {
	tests := []struct {
		name  string
		model seqModel
	}{
		{"times that are noise", seqModel{marks: realHistory, noise: true}},
		{"jitter of two hours", seqModel{marks: realHistory, sparseStart: true, daily: 0.5, jitter: 2 * time.Hour}},
		{"jitter of a day", seqModel{marks: realHistory, sparseStart: true, jitter: 24 * time.Hour, hidden: hiddenBlocks}},
	}
	first := realHistory[0].at.Unix()
	span := uint64(realHistory[len(realHistory)-1].at.Unix() - first)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			most := 0
			for i := range int64(500) {
				target := time.Unix(first+int64(mixSeq(-i)%span), 0)
				calls := 0
				got, err := SeqAtTime(context.Background(), tt.model.probe(&calls), target, 1, seqHead, SearchOptions{})
				if err != nil {
					t.Fatalf("%s: %v", target, err)
				}
				if got.Seq < 1 || got.Seq > seqHead {
					t.Fatalf("%s: seq %d out of the range", target, got.Seq)
				}
				most = max(most, calls)
			}
			if most > bisectionCalls+searchSlack {
				t.Errorf("up to %d probes, want at most %d", most, bisectionCalls+searchSlack)
			}
			t.Logf("up to %d probes over 500 targets; bisection takes %d", most, bisectionCalls)
		})
	}
}

// A probe that cancels the search's context stops it before the next.
func TestSeqAtTimeCancelledDuringSearch(t *testing.T) {
	m := seqModel{marks: realHistory, sparseStart: true, daily: 0.5}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	inner := m.probe(&calls)
	p := func(ctx context.Context, seq int64) (int64, int64, bool, error) {
		if calls == 2 {
			cancel()
		}
		return inner(ctx, seq)
	}
	got, err := SeqAtTime(ctx, p, time.Date(2013, 1, 1, 0, 0, 0, 0, time.UTC), 1, seqHead, SearchOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if got.Calls != 3 {
		t.Errorf("Calls = %d, want 3", got.Calls)
	}
}

func ExampleSeqAtTime() {
	// A sequence of one match a second from 2024-01-01 00:00 UTC; a real
	// probe asks Steam for a page and takes the median start_time.
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	probe := func(_ context.Context, seq int64) (int64, int64, bool, error) {
		return start + seq, seq, true, nil
	}
	got, err := SeqAtTime(context.Background(), probe, time.Date(2024, 1, 2, 6, 0, 0, 0, time.UTC), 0, 1e7, SearchOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.Seq, got.Calls)
	// Output: 108000 3
}
