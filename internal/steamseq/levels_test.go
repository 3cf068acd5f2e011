package steamseq

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"
)

// simSteam is a simulated Steam for one key on a simulated clock: a token
// bucket (one token per limit, holding one, refused calls take none) and,
// apart from it, a share of calls refused whatever the pace, with a
// Retry-After.
type simSteam struct {
	limit      time.Duration // 0: none
	random     float64
	retryAfter time.Duration
	rng        *rand.Rand

	tokens float64
	last   time.Time
}

// call answers a call at now: whether it went through, and the
// Retry-After of a refusal.
func (s *simSteam) call(now time.Time) (bool, time.Duration) {
	if s.rng.Float64() < s.random {
		return false, s.retryAfter
	}
	if s.limit <= 0 {
		return true, 0
	}
	if s.last.IsZero() {
		s.tokens = 1
	} else {
		s.tokens = min(1, s.tokens+float64(now.Sub(s.last))/float64(s.limit))
	}
	s.last = now
	if s.tokens < 1 {
		return false, 0
	}
	s.tokens--
	return true, 0
}

// paceRun is what a simulated run of calls did.
type paceRun struct {
	calls, ok, refused int
	elapsed            time.Duration
	interval           time.Duration // the key's at the end
}

// simulate makes calls with the pool's one key, each as soon as the key is
// due (at pace), on a simulated clock starting at *clock.
func simulate(p *keyPool, steam *simSteam, clock *time.Time, calls int) paceRun {
	k := p.keys[0]
	began := *clock
	var run paceRun
	for range calls {
		p.mu.Lock()
		at := *clock
		if k.nextAt.After(at) {
			at = k.nextAt
		}
		*clock = at
		k.pressed = !k.nextAt.IsZero()
		k.nextAt = at.Add(k.interval)
		p.mu.Unlock()
		run.calls++
		if ok, ra := steam.call(at); ok {
			run.ok++
			p.succeeded(k)
		} else {
			run.refused++
			p.refused(k, ra)
		}
	}
	run.elapsed = clock.Sub(began)
	run.interval = p.intervals()[0]
	return run
}

func simPool(t *testing.T, clock *time.Time, start time.Duration) *keyPool {
	cfg := Config{Keys: []string{"k"}, KeyInterval: start, MinInterval: 10 * time.Millisecond, BackoffMax: time.Minute}.withDefaults()
	p := newKeyPool(cfg, mustMetrics(t), slog.New(slog.DiscardHandler))
	p.now = func() time.Time { return *clock }
	return p
}

// TestPaceConverges runs one key against simulated Steams: the pacing
// converges on the real limit, slowing down for refusals the pace causes
// and not for those that come at a rate of their own.
func TestPaceConverges(t *testing.T) {
	const calls = 3000
	for _, tc := range []struct {
		name       string
		start      time.Duration
		steam      simSteam
		wantLow    time.Duration // the learnt interval at the end, within
		wantHigh   time.Duration
		minUse     float64 // successes over what the limit allows, at least
		maxRefused float64 // share of calls refused, at most
	}{
		{"a token bucket of 1 s", 5 * time.Second, simSteam{limit: time.Second},
			time.Second, 1150 * time.Millisecond, 0.85, 0.05},
		{"a token bucket of 1 s, and one call in seven refused at random with Retry-After 1", time.Second,
			simSteam{limit: time.Second, random: 1.0 / 7, retryAfter: time.Second},
			800 * time.Millisecond, 1300 * time.Millisecond, 0.65, 0.35},
		{"one call in seven refused at random, a limit of 200 ms", time.Second,
			simSteam{limit: 200 * time.Millisecond, random: 1.0 / 7, retryAfter: time.Second},
			150 * time.Millisecond, 300 * time.Millisecond, 0.4, 0.35},
		{"one call in five refused at random, no limit", time.Second,
			simSteam{random: 1.0 / 5},
			10 * time.Millisecond, 100 * time.Millisecond, 0, 0.3},
	} {
		for seed := range uint64(5) {
			t.Run(fmt.Sprintf("%s/seed %d", tc.name, seed), func(t *testing.T) {
				clock := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
				p := simPool(t, &clock, tc.start)
				steam := tc.steam
				steam.rng = rand.New(rand.NewPCG(seed, 2))
				warm := simulate(p, &steam, &clock, calls/3)
				run := simulate(p, &steam, &clock, calls)
				use := 0.0
				if steam.limit > 0 {
					use = float64(run.ok) / (float64(run.elapsed) / float64(steam.limit))
				}
				refused := float64(run.refused) / float64(run.calls)
				t.Logf("after %d calls (%v): interval %v; then %d calls in %v: %d went through (%.0f%% of what the limit allows), %.1f%% refused, interval %v",
					warm.calls, warm.elapsed.Round(time.Second), warm.interval, run.calls, run.elapsed.Round(time.Second), run.ok, 100*use, 100*refused, run.interval)
				if run.interval < tc.wantLow || run.interval > tc.wantHigh {
					t.Errorf("learnt interval %v, want %v to %v", run.interval, tc.wantLow, tc.wantHigh)
				}
				if use < tc.minUse {
					t.Errorf("the key made %.0f%% of the calls the limit allows, want at least %.0f%%", 100*use, 100*tc.minUse)
				}
				if refused > tc.maxRefused {
					t.Errorf("%.1f%% of calls refused, want at most %.0f%%", 100*refused, 100*tc.maxRefused)
				}
			})
		}
	}
}

// TestPaceFollowsALimitThatTightens: Steam's limit goes from 1 s to 3 s;
// the key slows down to it within a few dozen calls, random refusals or
// not.
func TestPaceFollowsALimitThatTightens(t *testing.T) {
	for i, random := range []float64{0, 1.0 / 7, 1.0 / 7, 1.0 / 7} {
		clock := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
		p := simPool(t, &clock, time.Second)
		steam := simSteam{limit: time.Second, random: random, retryAfter: time.Second, rng: rand.New(rand.NewPCG(uint64(i), 4))}
		simulate(p, &steam, &clock, 1000)
		steam.limit = 3 * time.Second
		run := simulate(p, &steam, &clock, 100)
		t.Logf("random %.2f: 100 calls after the limit went to 3 s: interval %v, %d refused", random, run.interval, run.refused)
		if run.interval < 3*time.Second*9/10 {
			t.Errorf("random %.2f: interval %v 100 calls after the limit went to 3 s", random, run.interval)
		}
	}
}

// TestPaceLevels checks which refusals the levels blame on the pace.
func TestPaceLevels(t *testing.T) {
	fill := func(pl paceLevels, l, calls, refused int) {
		for i := range calls {
			pl.add(l, i < refused)
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(pl paceLevels)
		run   [2]int // calls since the interval changed, and refusals
		want  bool
	}{
		{"nothing known", func(pl paceLevels) { fill(pl, 10, 1, 1) }, [2]int{1, 1}, true},
		{"slower levels clean", func(pl paceLevels) { fill(pl, 11, 20, 0); fill(pl, 10, 3, 1) }, [2]int{3, 1}, true},
		{"slower levels refused as often", func(pl paceLevels) { fill(pl, 11, 14, 2); fill(pl, 10, 14, 2) }, [2]int{5, 1}, false},
		{"slower unknown, faster refused as often", func(pl paceLevels) { fill(pl, 9, 14, 2); fill(pl, 10, 7, 1) }, [2]int{7, 1}, false},
		{"slower unknown, faster refused much more", func(pl paceLevels) { fill(pl, 9, 10, 5); fill(pl, 10, 20, 2) }, [2]int{4, 1}, true},
		{"a run refused much more than the rest", func(pl paceLevels) { fill(pl, 9, 30, 1); fill(pl, 10, 3, 2) }, [2]int{3, 2}, true},
		{"a run refused as often as the rest", func(pl paceLevels) { fill(pl, 9, 30, 5); fill(pl, 10, 3, 1) }, [2]int{3, 1}, false},
		{"40% refused", func(pl paceLevels) { fill(pl, 11, 14, 10); fill(pl, 10, 10, 4) }, [2]int{1, 1}, true},
		{"slower refused as often, few calls here", func(pl paceLevels) { fill(pl, 11, 21, 3); fill(pl, 10, 1, 1) }, [2]int{1, 1}, false},
	} {
		pl := paceLevels{}
		tc.setup(pl)
		if got := pl.paceRefusal(10, tc.run[0], tc.run[1]); got != tc.want {
			t.Errorf("%s: paceRefusal %v, want %v", tc.name, got, tc.want)
		}
	}
	pl := paceLevels{}
	fill(pl, 0, levelWindow, levelWindow/2)
	pl.add(0, false)
	if c := pl[0]; c.calls != levelWindow/2+1 || c.refused != levelWindow/4 {
		t.Errorf("a full level: %+v, want its counts halved before the new call", *c)
	}
	if levelOf(time.Second) == levelOf(time.Duration(float64(time.Second)*slowDown)) {
		t.Error("a slow-down stays within one level")
	}
}
