package steamseq

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/dota-data/ingestion-service/internal/backoff"
)

// The adaptive pacing of a key. Steam allows a key about one call every
// 5 s (odota/core svc/scanner.ts; 429s at about 7 calls a minute in
// odota/core#1072) and says so only by refusing calls with HTTP 429 and
// no Retry-After. So each key learns its interval, as TCP learns its
// window: multiplicative slow-down on a refusal, a slow additive-like
// speed-up after a run of calls that went through at full pace, and a
// faster speed-up ("slow start") until the key's first refusal.
//
// The constants were chosen against internal/steamfake's token bucket
// (one token per limit, refused calls take none): after a refusal the
// interval is 1.5 times the limit at most, and getting back under the
// limit takes ln 1.5 / ln(1/0.95) = 8 speed-ups of 10 calls, so about 1
// call in 80 is refused in steady state (the target is at most 5%).
// Slow start reaches a limit of 2 s from 5 s in about 15 calls a key.
const (
	// slowDown multiplies a key's interval after a refused call.
	slowDown = 1.5
	// speedUp multiplies it after speedUpAfter pressed successes in a row.
	speedUp      = 0.95
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
	nextAt   time.Time // no call with this key before
	pressed  bool      // its last call started when it came due, not after sitting idle
	okRun    int       // pressed successes since the last change
	refused  bool      // has been refused at least once: slow start is over
	failures int       // key refusals (401, 403) in a row
}

// keyPool hands out keys to the cursors' calls: the key that is free
// first, the primary cursor before the rescan.
type keyPool struct {
	cfg     Config
	metrics *metrics

	mu      sync.Mutex
	keys    []*apiKey
	urgent  int           // primary calls waiting for a key
	lowOK   bool          // whether a low-priority call may take a key now
	changed chan struct{} // closed and replaced when a key or the above changes
}

func newKeyPool(cfg Config, m *metrics) *keyPool {
	p := &keyPool{cfg: cfg, metrics: m, changed: make(chan struct{})}
	for i, v := range cfg.Keys {
		k := &apiKey{index: i, label: strconv.Itoa(i + 1), value: v, interval: cfg.KeyInterval}
		p.keys = append(p.keys, k)
		m.keyInterval.WithLabelValues(k.label).Set(k.interval.Seconds())
		m.keyCalls.WithLabelValues(k.label)
		m.keyRefused.WithLabelValues(k.label)
	}
	return p
}

// notifyLocked wakes every waiter.
func (p *keyPool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// allowLow sets whether low-priority calls may take keys (the rescan may
// call only while the primary cursor has caught up).
func (p *keyPool) allowLow(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lowOK != ok {
		p.lowOK = ok
		p.notifyLocked()
	}
}

// acquire waits until a key may be used and returns it with the call
// counted as started. A low-priority caller
// waits while an urgent one does, and while allowLow is false. It
// returns nil if ctx ends first.
func (p *keyPool) acquire(ctx context.Context, urgent bool) *apiKey {
	if urgent {
		p.mu.Lock()
		p.urgent++
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.urgent--
			p.notifyLocked()
			p.mu.Unlock()
		}()
	}
	for {
		p.mu.Lock()
		now := time.Now()
		var best *apiKey
		for _, k := range p.keys {
			if best == nil || k.nextAt.Before(best.nextAt) {
				best = k
			}
		}
		at := best.nextAt
		blocked := !urgent && (p.urgent > 0 || !p.lowOK)
		if !blocked && !at.After(now) {
			// A call that starts within half an interval of the key coming
			// due is at full pace; one after the key sat idle says nothing
			// about whether a shorter interval would be allowed.
			best.pressed = !best.nextAt.IsZero() && now.Sub(best.nextAt) <= best.interval/2
			best.nextAt = now.Add(best.interval)
			p.mu.Unlock()
			p.metrics.keyCalls.WithLabelValues(best.label).Inc()
			return best
		}
		changed := p.changed
		p.mu.Unlock()
		wait := time.Hour
		if !blocked {
			wait = time.Until(at)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-time.After(wait): // at once if wait is not positive
		}
	}
}

// succeeded notes that a call with k went through.
func (p *keyPool) succeeded(k *apiKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k.failures = 0
	if !k.pressed {
		return
	}
	need, step := speedUpAfter, speedUp
	if !k.refused {
		need, step = slowStartAfter, slowStartSpeedUp
	}
	if k.okRun++; k.okRun < need {
		return
	}
	k.okRun = 0
	if iv := max(time.Duration(float64(k.interval)*step), p.cfg.MinInterval); iv != k.interval {
		k.nextAt = k.nextAt.Add(iv - k.interval)
		k.interval = iv
		p.metrics.keyInterval.WithLabelValues(k.label).Set(iv.Seconds())
		p.notifyLocked()
	}
}

// refused notes that Steam refused a call with k for its rate (HTTP 429):
// the key waits at least retryAfter, and 1.5 times its interval. If the
// call was made at the key's pace, the refusal says the interval is too
// short: the interval grows by that factor and slow start is over. A
// call made after the key sat idle (or its first call) was not refused
// for our pace but for someone else's use of the key, such as the
// process that ran before a restart: the key is held back once, and
// keeps what it had learnt.
func (p *keyPool) refused(k *apiKey, retryAfter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k.okRun = 0
	iv := min(time.Duration(float64(max(k.interval, minStep))*slowDown), p.maxInterval())
	k.nextAt = time.Now().Add(max(iv, retryAfter))
	if k.pressed {
		k.refused = true
		k.interval = iv
		p.metrics.keyInterval.WithLabelValues(k.label).Set(iv.Seconds())
	}
	p.metrics.keyRefused.WithLabelValues(k.label).Inc()
	p.notifyLocked()
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
	if at := time.Now().Add(hold); at.After(k.nextAt) {
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
