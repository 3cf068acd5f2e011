package steamseq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// TimeProbe returns the start_time (Unix seconds) of the matches at or just
// after seq, as one representative number (the caller uses the median of a
// small page), and the seq actually found, at or after seq: Steam skips
// hidden matches, so a probe may land past a gap. ok is false when nothing
// is listed at or after seq. Each call is one call to Steam, so SeqAtTime
// makes few of them; an error is returned to SeqAtTime's caller, wrapped.
type TimeProbe func(ctx context.Context, seq int64) (startTime, found int64, ok bool, err error)

// SearchOptions tunes SeqAtTime. Zero fields take the default in their
// comment.
type SearchOptions struct {
	// SeqTolerance ends the search when the seqs known to start before the
	// target and those known to start at or after it are at most this far
	// apart; default 100, one page.
	SeqTolerance int64
	// TimeTolerance ends the search when a probe's time is within this of
	// the target, in whole seconds; default one minute, and a negative
	// value turns it off.
	TimeTolerance time.Duration
	// MaxCalls bounds the probes, the two at the ends of the range
	// included; default 40, more than the search ever needs with the
	// default SeqTolerance over the whole sequence (31, see SeqAtTime).
	MaxCalls int
}

// Defaults of SearchOptions.
const (
	searchSeqTolerance  = 100
	searchTimeTolerance = time.Minute
	searchMaxCalls      = 40
)

// searchSlack is how many probes more than plain bisection the search may
// spend on interpolation steps that do not pay off.
const searchSlack = 2

// SearchResult is where SeqAtTime ended.
type SearchResult struct {
	// Seq is the match_seq_num found.
	Seq int64
	// StartTime is the start_time (Unix seconds) the probe reported at Seq,
	// or 0 when nothing is listed at or after Seq.
	StartTime int64
	// Calls is the number of probes made, failed ones included.
	Calls int
}

// ErrNothingListed is returned by SeqAtTime when nothing is listed at or
// after the lower end of its range, so there is no time to search.
var ErrNothingListed = errors.New("nothing listed at or after the start of the search")

// ErrCallLimit is returned by SeqAtTime when it used SearchOptions.MaxCalls
// probes before narrowing the range to the tolerances.
var ErrCallLimit = errors.New("call limit reached")

// SeqAtTime returns a match_seq_num at which matches start at about target:
// the first seq in [lo, hi] whose probe time is at or after target, within
// the tolerances of opts. hi is normally the head of the sequence.
//
// It probes lo and hi, then interpolates within the bracket of seqs known
// to start before and at or after target: through the last three probes
// (seq as a quadratic in time, which follows a density that changes), or
// else between the bracket's ends with the Illinois rule (so that a curved
// stretch does not keep moving the same end). It bisects instead when the
// bracket did not halve over the last two probes, and moves every guess
// towards the middle as far as needed for bisection to still finish in
// time. So it never makes more than two probes beyond the
// 2 + ⌈log2((hi−lo)/SeqTolerance)⌉ of plain bisection (31 over the 7.2e9
// seqs up to December 2025 with the defaults), however noisy the times,
// and about a dozen at most when the density of seqs changes smoothly (a
// thousand seqs a day in 2011, two million by 2015, a daily cycle); a
// target inside an outage, where time jumps, takes about twenty. A
// start_time need not grow with seq (a long match ends after a short one
// that started later): the times only steer the guesses.
//
// The search stops when a probe's time is within TimeTolerance of target,
// its seq is then the result, or when the bracket is at most SeqTolerance
// wide, its upper end is then the result. The result's seq is the one
// probed, which may precede the seq found across hidden matches: paging
// from either gives the same matches.
//
// At the edges: when lo's time is at or after target (or within
// TimeTolerance of it), the result is lo, as the range holds nothing
// earlier; when hi's time is before target (or within TimeTolerance), the
// result is hi, as there is nothing to backfill beyond the head. Neither
// is an error. A probe that finds nothing listed at or after a seq inside
// the range counts as one after target.
//
// Errors: the probe's error and ctx's error are returned wrapped, with
// Calls set and no seq (the caller may retry); ErrNothingListed when
// nothing is listed at or after lo; ErrCallLimit, wrapped, when MaxCalls
// probes did not suffice, with Seq and StartTime then those of the
// bracket's lower end, a seq known to start before target, so a backfill
// starting there misses nothing. An empty or negative range is an error.
func SeqAtTime(ctx context.Context, probe TimeProbe, target time.Time, lo, hi int64, opts SearchOptions) (SearchResult, error) {
	if probe == nil {
		return SearchResult{}, errors.New("seq search: no probe")
	}
	if lo < 0 || hi < lo {
		return SearchResult{}, fmt.Errorf("seq search: empty range [%d, %d]", lo, hi)
	}
	s := newSeqSearch(probe, target, opts)

	tLo, fLo, ok, err := s.probe(ctx, lo)
	switch {
	case err != nil:
		return s.result(0, 0), err
	case !ok:
		return s.result(0, 0), fmt.Errorf("seq search: seq %d: %w", lo, ErrNothingListed)
	case tLo >= s.want || s.near(tLo):
		return s.result(lo, tLo), nil // the target precedes the range
	case fLo >= hi:
		return s.result(hi, tLo), nil // hi pages as lo does
	}
	tHi, _, ok, err := s.probe(ctx, hi)
	switch {
	case err != nil:
		return s.result(0, 0), err
	case ok && (tHi < s.want || s.near(tHi)):
		return s.result(hi, tHi), nil // the target follows the head
	}
	b := newSeqBracket(fLo, tLo, hi, tHi, ok, s.tolSeq)

	for b.hi-b.lo > s.tolSeq {
		if s.calls >= s.maxCalls {
			return s.result(b.lo, b.tLo), fmt.Errorf("seq search: %w after %d probes, bracket [%d, %d]",
				ErrCallLimit, s.calls, b.lo, b.hi)
		}
		x := b.next(s.want)
		t, f, ok, err := s.probe(ctx, x)
		switch {
		case err != nil:
			return s.result(0, 0), err
		case ok && s.near(t):
			return s.result(x, t), nil
		}
		b.update(x, t, f, ok, s.want)
	}
	if !b.hiKnown {
		return s.result(b.hi, 0), nil
	}
	return s.result(b.hi, b.tHi), nil
}

// seqSearch holds the settings and the count of one SeqAtTime.
type seqSearch struct {
	fn       TimeProbe
	want     int64 // target, Unix seconds
	tolSeq   int64
	tolTime  int64 // seconds
	maxCalls int
	calls    int
}

// newSeqSearch applies the defaults of opts.
func newSeqSearch(fn TimeProbe, target time.Time, opts SearchOptions) *seqSearch {
	s := &seqSearch{
		fn:       fn,
		want:     target.Unix(),
		tolSeq:   opts.SeqTolerance,
		tolTime:  max(int64(opts.TimeTolerance/time.Second), 0),
		maxCalls: opts.MaxCalls,
	}
	if s.tolSeq <= 0 {
		s.tolSeq = searchSeqTolerance
	}
	if opts.TimeTolerance == 0 {
		s.tolTime = int64(searchTimeTolerance / time.Second)
	}
	if s.maxCalls <= 0 {
		s.maxCalls = searchMaxCalls
	}
	return s
}

// probe makes one counted probe at seq, checking ctx first.
func (s *seqSearch) probe(ctx context.Context, seq int64) (t, found int64, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, false, fmt.Errorf("seq search: %w", err)
	}
	s.calls++
	t, found, ok, err = s.fn(ctx, seq)
	if err != nil {
		return 0, 0, false, fmt.Errorf("seq search: probe seq %d: %w", seq, err)
	}
	return t, max(found, seq), ok, nil
}

// near reports whether t is within the time tolerance of the target.
func (s *seqSearch) near(t int64) bool { return t > s.want-s.tolTime && t < s.want+s.tolTime }

// result is a SearchResult with the calls made so far.
func (s *seqSearch) result(seq, t int64) SearchResult {
	return SearchResult{Seq: seq, StartTime: t, Calls: s.calls}
}

// seqPoint is a probe's seq found and its time.
type seqPoint struct{ seq, t int64 }

// seqBracket holds the seqs known to start before the target (lo) and at or
// after it (hi), and what steers the next guess between them.
type seqBracket struct {
	lo, hi   int64
	tLo, tHi int64
	// hiKnown is false while nothing is listed at or after hi, so that
	// tHi is unknown.
	hiKnown bool
	// wLo and wHi weigh the ends' distances to the target (Illinois).
	wLo, wHi float64
	// moved is the end the last probe moved: -1 lo, +1 hi, 0 neither.
	moved int
	// recent are the last three probes that found something, oldest
	// first; n of them are set.
	recent [3]seqPoint
	n      int
	// widths are the bracket's widths before the last two probes.
	widths [2]int64
	// tol is the search's SeqTolerance.
	tol int64
	// left is how many probes the search may still make: those bisection
	// needs to close the bracket to tol, and searchSlack.
	left int
}

// newSeqBracket starts from lo, known to start before the target, and hi.
func newSeqBracket(lo, tLo, hi, tHi int64, hiKnown bool, tol int64) *seqBracket {
	b := &seqBracket{lo: lo, hi: hi, tLo: tLo, tHi: tHi, hiKnown: hiKnown, wLo: 1, wHi: 1, tol: tol}
	b.left = bisections(hi-lo, tol) + searchSlack
	b.remember(seqPoint{lo, tLo})
	if hiKnown {
		b.remember(seqPoint{hi, tHi})
	}
	return b
}

// next is the seq to probe next, strictly inside the bracket.
func (b *seqBracket) next(want int64) int64 {
	w := b.hi - b.lo
	x := b.lo + w/2
	switch {
	case b.widths[0] > 0 && w > b.widths[0]/2:
		// The last two probes did not halve the bracket: bisect.
	case !b.hiKnown:
		// Nothing to interpolate to.
	default:
		rLo := b.wLo * (float64(want) - float64(b.tLo)) // > 0
		rHi := b.wHi * (float64(b.tHi) - float64(want)) // >= 0
		x = b.lo + int64(math.Round(float64(w)*rLo/(rLo+rHi)))
		if q, ok := b.quadratic(want); ok {
			x = q
		}
	}
	b.widths = [2]int64{b.widths[1], w}
	b.left--
	return b.project(x)
}

// project moves x into (lo, hi), and to within tol<<left of both ends:
// whichever end the probe moves, bisection can then still close the
// bracket in left more probes. That holds from the start, as left counts
// the bisections it needs, so the search ends after at most that many.
func (b *seqBracket) project(x int64) int64 {
	r := int64(math.MaxInt64)
	if b.left < 62 && b.tol <= math.MaxInt64>>b.left {
		r = b.tol << b.left
	}
	lower, upper := b.lo+1, b.hi-1
	if r < b.hi-b.lo {
		lower = max(lower, b.hi-r)
		upper = min(upper, b.lo+r)
	}
	return min(max(x, lower), upper)
}

// update narrows the bracket with the probe at x: its time t and the seq
// f found, or ok false when nothing is listed at or after x.
func (b *seqBracket) update(x, t, f int64, ok bool, want int64) {
	if !ok {
		b.hi, b.hiKnown, b.moved = x, false, 0
		return
	}
	b.remember(seqPoint{f, t})
	switch {
	case t >= want:
		b.hi, b.tHi, b.hiKnown = x, t, true
		b.wHi = 1
		if b.moved == +1 {
			b.wLo /= 2
		}
		b.moved = +1
	case f >= b.hi:
		// Nothing is listed in [x, hi): x pages as hi does.
		b.hi = x
	default:
		b.lo, b.tLo = f, t
		b.wLo = 1
		if b.moved == -1 {
			b.wHi /= 2
		}
		b.moved = -1
	}
}

// remember keeps p among the last three probes.
func (b *seqBracket) remember(p seqPoint) {
	if b.n == len(b.recent) {
		copy(b.recent[:], b.recent[1:])
		b.n--
	}
	b.recent[b.n] = p
	b.n++
}

// quadratic interpolates seq as a quadratic in time through the last
// three probes, at want; ok is false with fewer probes, repeated times or
// a result outside the bracket.
func (b *seqBracket) quadratic(want int64) (int64, bool) {
	if b.n < 3 {
		return 0, false
	}
	p, q, r := b.recent[0], b.recent[1], b.recent[2]
	if p.t == q.t || p.t == r.t || q.t == r.t {
		return 0, false
	}
	y, yp, yq, yr := float64(want), float64(p.t), float64(q.t), float64(r.t)
	x := float64(p.seq)*(y-yq)/(yp-yq)*(y-yr)/(yp-yr) +
		float64(q.seq)*(y-yp)/(yq-yp)*(y-yr)/(yq-yr) +
		float64(r.seq)*(y-yp)/(yr-yp)*(y-yq)/(yr-yq)
	if math.IsNaN(x) || x <= float64(b.lo) || x >= float64(b.hi) {
		return 0, false
	}
	return int64(math.Round(x)), true
}

// bisections is how many probes at the middle bring width down to tol.
func bisections(width, tol int64) int {
	n := 0
	for width > tol {
		width -= width / 2
		n++
	}
	return n
}
