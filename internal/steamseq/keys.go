package steamseq

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/dota-data/ingestion-service/internal/backoff"
)

// The adaptive pacing of a key. Steam allows a key about one call every
// 5 s (odota/core svc/scanner.ts; 429s at about 7 calls a minute in
// odota/core#1072) and says so only by refusing calls with HTTP 429 and
// no Retry-After. So each key learns its interval, as TCP learns its
// window: multiplicative slow-down on a refusal the pace is to blame for
// (levels.go tells those from refusals at a rate of their own), a slow additive-like
// speed-up after a run of calls that went through at full pace, and a
// faster speed-up ("slow start") until the key's first refusal. Slow
// start's last step overshoots the limit by up to its whole size, so its
// first refusal takes the key back to the interval of the step before,
// which went through, rather than to slowDown times the refused one,
// which can still be under it (TestSteamSequenceCompleteWithinSteamsLimits,
// two keys, 100 calls, one restart: 10 refused before, 6 since).
//
// The constants were chosen against internal/steamfake's token bucket
// (one token per limit, refused calls take none), which refuses the first
// call that comes sooner than the limit: after a refusal the interval is
// 1.15 times what was refused, and getting back under the limit takes
// ln 1.15 / ln(1/0.97) = 4.6 speed-ups of 10 calls. So the interval stays
// between the limit and 1.15 times it, about 7% above it on average, and
// a call in about 50 is refused: the keys make about 93% of the calls
// their limits allow (at least 85% and at most 5% refused is the target;
// go run ./cmd/backfillbench measures it). Slow start reaches a limit of
// 2 s from 5 s in about 15 calls a key.
const (
	// slowDown multiplies a key's interval after a refused call.
	slowDown = 1.15
	// speedUp multiplies it after speedUpAfter pressed successes in a row.
	speedUp      = 0.97
	speedUpAfter = 10
	// Before the key's first refusal: a bigger step, sooner.
	slowStartSpeedUp = 0.8
	slowStartAfter   = 3
	// minStep is the interval a refusal starts from when the key had none,
	// so that a zero interval can still grow.
	minStep = 10 * time.Millisecond
)

// apiKey is one key with its pacing.
type apiKey struct {
	index int    // from 0; the metrics' key label is index+1
	label string // strconv.Itoa(index+1)
	value string // the key; never logged

	// Guarded by keyPool.mu.
	interval time.Duration
	nextAt   time.Time     // no call with this key before
	pressed  bool          // its last call started when it came due, not after sitting idle
	okRun    int           // pressed successes since the last change
	refused  bool          // has been refused for its pace at least once: slow start is over
	stepFrom time.Duration // in slow start, the interval before its last speed-up
	levels   paceLevels    // calls at pace and refusals, by level (levels.go)
	run      [2]int        // calls at pace, and refusals among them, since the interval last changed
	failures int           // key refusals (401, 403) in a row
	day      int64         // the UTC day (days since 1970) that today counts
	today    int           // calls made on day
}

// priority orders the cursors that share a Client's keys: a free key goes
// to the waiting caller of the highest priority (the lowest value).
type priority int

// The priorities.
const (
	// prioForward is the forward scan's primary cursor: the present never
	// waits for the past.
	prioForward priority = iota
	// prioRescan is the forward scan's rescan, which calls only while the
	// primary cursor has caught up (allowLow).
	prioRescan
	// prioBackfill is a backfill shard: it gets what the forward scan
	// leaves.
	prioBackfill
	priorities
)

// keyPool hands out keys to the cursors' calls: the key that is free
// first, to the caller of the highest priority waiting. It holds a key
// that made Config.DailyCalls calls in a UTC day until the next.
type keyPool struct {
	cfg     Config
	metrics *clientMetrics
	log     *slog.Logger
	now     func() time.Time // the clock of the daily count; tests replace it

	mu      sync.Mutex
	keys    []*apiKey
	waiting [priorities]int // callers waiting for a key, by priority
	lowOK   bool            // whether the rescan may take a key now
	changed chan struct{}   // closed and replaced when a key or the above changes
}

func newKeyPool(cfg Config, m *clientMetrics, log *slog.Logger) *keyPool {
	p := &keyPool{cfg: cfg, metrics: m, log: log, now: time.Now, changed: make(chan struct{})}
	for i, v := range cfg.Keys {
		k := &apiKey{index: i, label: strconv.Itoa(i + 1), value: v, interval: cfg.KeyInterval, levels: paceLevels{}}
		p.keys = append(p.keys, k)
		m.keyInterval.WithLabelValues(k.label).Set(k.interval.Seconds())
		m.keyCalls.WithLabelValues(k.label)
		m.keyRefused.WithLabelValues(k.label)
		m.keyRefusedUnpaced.WithLabelValues(k.label)
		m.keyCallsToday.WithLabelValues(k.label)
		m.keyExhausted.WithLabelValues(k.label)
	}
	return p
}

// notifyLocked wakes every waiter.
func (p *keyPool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// allowLow sets whether the rescan may take keys (it may call only while
// the primary cursor has caught up).
func (p *keyPool) allowLow(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lowOK != ok {
		p.lowOK = ok
		p.notifyLocked()
	}
}

// blockedLocked reports whether a caller of priority prio must let others
// go first: one of a higher priority waits and may call, or (the rescan)
// the primary cursor has not caught up.
func (p *keyPool) blockedLocked(prio priority) bool {
	if prio == prioRescan && !p.lowOK {
		return true
	}
	for q := range prio {
		if p.waiting[q] > 0 && (q != prioRescan || p.lowOK) {
			return true
		}
	}
	return false
}

// acquire waits until a key may be used and returns it with the call
// counted as started. A caller waits while one of a higher priority
// does, and the rescan while allowLow is false. It returns nil if ctx
// ends first.
func (p *keyPool) acquire(ctx context.Context, prio priority) *apiKey {
	p.mu.Lock()
	p.waiting[prio]++
	p.notifyLocked()
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waiting[prio]--
		p.notifyLocked()
		p.mu.Unlock()
	}()
	for {
		p.mu.Lock()
		now := p.now()
		var best *apiKey
		for _, k := range p.keys {
			if best == nil || k.nextAt.Before(best.nextAt) {
				best = k
			}
		}
		at := best.nextAt
		blocked := p.blockedLocked(prio)
		if !blocked && !at.After(now) {
			// A call that starts within half an interval of the key coming
			// due is at full pace; one after the key sat idle says nothing
			// about whether a shorter interval would be allowed.
			best.pressed = !best.nextAt.IsZero() && now.Sub(best.nextAt) <= best.interval/2
			best.nextAt = now.Add(best.interval)
			p.countLocked(best, now)
			p.mu.Unlock()
			p.metrics.keyCalls.WithLabelValues(best.label).Inc()
			return best
		}
		changed := p.changed
		p.mu.Unlock()
		wait := time.Hour
		if !blocked {
			wait = at.Sub(now)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-time.After(wait): // at once if wait is not positive
		}
	}
}

// countLocked counts a call with k at now against its daily budget, and
// holds k until the next UTC day once the budget is spent.
func (p *keyPool) countLocked(k *apiKey, now time.Time) {
	day := now.UTC().Unix() / 86400
	if day != k.day {
		k.day, k.today = day, 0
		p.metrics.keyExhausted.WithLabelValues(k.label).Set(0)
	}
	k.today++
	p.metrics.keyCallsToday.WithLabelValues(k.label).Set(float64(k.today))
	if p.cfg.DailyCalls <= 0 || k.today < p.cfg.DailyCalls {
		return
	}
	midnight := time.Unix((day+1)*86400, 0)
	if midnight.After(k.nextAt) {
		k.nextAt = midnight
	}
	p.metrics.keyExhausted.WithLabelValues(k.label).Set(1)
	p.log.Warn("A Steam API key made its daily calls; it rests until 00:00 UTC",
		"key", k.label, "calls_today", k.today, "daily_calls", p.cfg.DailyCalls, "until", midnight.UTC().Format(time.RFC3339))
}

// exhausted returns the labels of the keys held for the day.
func (p *keyPool) exhausted() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	day := p.now().UTC().Unix() / 86400
	var out []string
	for _, k := range p.keys {
		if p.cfg.DailyCalls > 0 && k.day == day && k.today >= p.cfg.DailyCalls {
			out = append(out, k.label)
		}
	}
	return out
}

// succeeded notes that a call with k went through.
func (p *keyPool) succeeded(k *apiKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k.failures = 0
	if !k.pressed {
		return
	}
	k.levels.add(levelOf(k.interval), false)
	k.run[0]++
	need, step := speedUpAfter, speedUp
	if !k.refused {
		need, step = slowStartAfter, slowStartSpeedUp
	}
	if k.okRun++; k.okRun < need {
		return
	}
	k.okRun = 0
	if iv := max(time.Duration(float64(k.interval)*step), p.cfg.MinInterval); iv != k.interval {
		if !k.refused {
			k.stepFrom = k.interval
		}
		k.nextAt = k.nextAt.Add(iv - k.interval)
		k.interval = iv
		k.run = [2]int{}
		p.metrics.keyInterval.WithLabelValues(k.label).Set(iv.Seconds())
		p.notifyLocked()
	}
}

// refused notes that Steam refused a call with k for its rate (HTTP 429).
// The key waits at least retryAfter, once. If the call was made at the
// key's pace and the pace is to blame (paceLevels.paceRefusal), the
// refusal says the interval is too short: the key waits and keeps
// slowDown times its interval. Slow start's first refusal at pace always
// ends it, and takes the key back to the interval before its last step;
// it is not counted in the levels, since it tells where the limit is, not
// how often Steam refuses calls at random (counted, it made the next
// refusal below the limit look like chance, and cost two more). A refusal
// at a rate that slowing down did not lower leaves the interval and the
// run of successes as they were. A call made after the key sat idle (or
// its first call) was not refused for our pace but for someone else's use
// of the key, such as the process that ran before a restart: the key is
// held back once, and keeps what it had learnt.
func (p *keyPool) refused(k *apiKey, retryAfter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.metrics.keyRefused.WithLabelValues(k.label).Inc()
	defer p.notifyLocked()
	slowStartEnds := k.pressed && !k.refused
	if k.pressed && !slowStartEnds {
		l := levelOf(k.interval)
		k.levels.add(l, true)
		k.run[0]++
		k.run[1]++
		if !k.levels.paceRefusal(l, k.run[0], k.run[1]) {
			k.nextAt = p.now().Add(max(k.interval, retryAfter))
			p.metrics.keyRefusedUnpaced.WithLabelValues(k.label).Inc()
			return
		}
	}
	k.okRun = 0
	iv := min(time.Duration(float64(max(k.interval, minStep))*slowDown), p.maxInterval())
	if slowStartEnds {
		iv = min(max(iv, k.stepFrom), p.maxInterval())
	}
	k.nextAt = p.now().Add(max(iv, retryAfter))
	if k.pressed {
		k.refused = true
		k.interval = iv
		k.run = [2]int{}
		p.metrics.keyInterval.WithLabelValues(k.label).Set(iv.Seconds())
	}
}

// rejected notes that Steam refused k itself (HTTP 401 or 403): the key
// is held back, longer each time in a row, so that the calls go to the
// other keys. It returns the hold.
func (p *keyPool) rejected(k *apiKey) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	hold := backoff.Delay(k.failures, max(p.cfg.BackoffMin, k.interval), p.cfg.BackoffMax)
	k.failures++
	k.okRun = 0
	if at := p.now().Add(hold); at.After(k.nextAt) {
		k.nextAt = at
	}
	p.notifyLocked()
	return hold
}

// maxInterval caps a key's interval.
func (p *keyPool) maxInterval() time.Duration {
	return max(p.cfg.KeyInterval, p.cfg.BackoffMax)
}

// intervals returns each key's current interval, in the order of Keys.
func (p *keyPool) intervals() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]time.Duration, len(p.keys))
	for i, k := range p.keys {
		out[i] = k.interval
	}
	return out
}
