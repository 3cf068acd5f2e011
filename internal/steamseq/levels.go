package steamseq

import (
	"math"
	"time"
)

// Not every 429 is the pace's. Steam users report refusals at random,
// some on a key's very first call (Nekonyx/next-auth-steam#28); slowing
// down for those does not make them rarer, and a key that slowed down for
// each would crawl. So a key counts its calls made at pace and the
// refusals among them by level, a band of intervals one slow-down wide,
// and slows down for a refusal only if the pace is to blame: calls at its
// level are refused more often than at the next slower levels (more than
// chance would explain), or, where it has not called that slowly, slowing
// down to its level from the faster ones did lower the rate. Otherwise the refusal is honoured
// once (the key waits out its Retry-After) and the key keeps its pace.
//
// Against a token bucket the levels at or above the limit see no refusal
// and the one below it many, so a refusal below the limit is always taken
// for the pace; against refusals at a rate of their own every level sees
// the same rate, and none is.
const (
	// levelWindow is how many calls a level remembers: its counts are
	// halved when its calls reach it, so that a change of Steam's limit
	// shows within a few dozen calls.
	levelWindow = 64
	// levelKnown is how many calls two levels together need before their
	// rate is compared.
	levelKnown = 8
	// significance is how unlikely a level's refusals must be at the rate
	// of the levels it is compared with for the two rates to be told
	// apart: a one-sided binomial test at this level.
	significance = 0.01
	// alwaysPace is the share of refused calls at a level (of at least
	// levelKnown calls) from which a refusal is taken for the pace
	// whatever the other levels say: a token bucket refuses about half the
	// calls at any interval between half its limit and its limit, so the
	// rate does not fall as the key slows down towards it.
	alwaysPace = 0.4
)

// levelCount is one level's calls at pace and refusals among them.
type levelCount struct{ calls, refused float64 }

// paceLevels are a key's counts by level.
type paceLevels map[int]*levelCount

// levelOf returns the level of interval iv: intervals within one level
// differ by less than slowDown.
func levelOf(iv time.Duration) int {
	return int(math.Floor(math.Log(float64(max(iv, time.Microsecond))) / math.Log(slowDown)))
}

// add counts a call made at pace at level l.
func (pl paceLevels) add(l int, refused bool) {
	c := pl[l]
	if c == nil {
		c = &levelCount{}
		pl[l] = c
	}
	if c.calls >= levelWindow {
		c.calls, c.refused = c.calls/2, c.refused/2
	}
	c.calls++
	if refused {
		c.refused++
	}
}

// count returns the calls and refusals over levels from..to.
func (pl paceLevels) count(from, to int) (calls, refused float64) {
	for l := from; l <= to; l++ {
		if c := pl[l]; c != nil {
			calls, refused = calls+c.calls, refused+c.refused
		}
	}
	return calls, refused
}

// rate returns the share of calls refused over levels from..to, and
// whether they made at least levelKnown calls.
func (pl paceLevels) rate(from, to int) (float64, bool) {
	calls, refused := pl.count(from, to)
	if calls < levelKnown {
		return 0, false
	}
	return refused / calls, true
}

// paceRefusal reports whether a refusal of a call made at pace at level l,
// already counted, is the pace's:
//   - calls at l were refused more often than chance would explain at the
//     rate of the two next slower levels, if those made levelKnown calls;
//   - else, calls at l were refused less often than chance would explain
//     at the rate of the two next faster levels, if those made levelKnown
//     calls: slowing down helped, so slowing further may too;
//   - else, calls at l were refused more often than chance would explain
//     at the rate of all other levels, if those made levelKnown calls;
//   - else, always.
//
// A level refused alwaysPace of the time or more is the pace's whatever
// the others say, and so is a run of calls at one interval (runCalls, of
// which runRefused were refused) refused more often than chance would
// explain at the rate of all other levels: the levels remember up to
// levelWindow calls each, and a limit that has just tightened shows first
// in the run.
func (pl paceLevels) paceRefusal(l, runCalls, runRefused int) bool {
	others, known := pl.rateBut(l)
	if known && binomialAtLeast(runCalls, runRefused, others) < significance {
		return true
	}
	calls, refused := pl.count(l, l)
	n, r := int(math.Round(calls)), int(math.Round(refused))
	if calls >= levelKnown && refused/calls >= alwaysPace {
		return true
	}
	if slower, known := pl.rate(l+1, l+2); known {
		return binomialAtLeast(n, r, slower) < significance
	}
	if faster, known := pl.rate(l-2, l-1); known {
		return binomialAtMost(n, r, faster) < significance
	}
	if !known {
		return true
	}
	return binomialAtLeast(n, r, others) < significance
}

// rateBut returns the share of calls refused over every level but l, and
// whether they made at least levelKnown calls.
func (pl paceLevels) rateBut(l int) (float64, bool) {
	var calls, refused float64
	for m, c := range pl {
		if m != l {
			calls, refused = calls+c.calls, refused+c.refused
		}
	}
	if calls < levelKnown {
		return 0, false
	}
	return refused / calls, true
}

// binomialAtLeast is the chance of at least k successes in n trials of
// chance p.
func binomialAtLeast(n, k int, p float64) float64 {
	if k <= 0 {
		return 1
	}
	return 1 - binomialAtMost(n, k-1, p)
}

// binomialAtMost is the chance of at most k successes in n trials of
// chance p.
func binomialAtMost(n, k int, p float64) float64 {
	switch {
	case k >= n:
		return 1
	case k < 0:
		return 0
	case p <= 0:
		return 1
	case p >= 1:
		return 0
	}
	var sum float64
	lnN, _ := math.Lgamma(float64(n + 1))
	for i := 0; i <= k; i++ {
		lnI, _ := math.Lgamma(float64(i + 1))
		lnNI, _ := math.Lgamma(float64(n - i + 1))
		sum += math.Exp(lnN - lnI - lnNI + float64(i)*math.Log(p) + float64(n-i)*math.Log1p(-p))
	}
	return min(sum, 1)
}
