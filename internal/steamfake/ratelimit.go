package steamfake

import "time"

// bucket is the rate budget of one key: a token bucket, full until first
// used.
type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date; zero: full
}

// refill brings b up to date at now for the given interval and capacity.
func (b *bucket) refill(now time.Time, interval time.Duration, burst int) {
	switch {
	case b.at.IsZero():
		b.tokens = float64(burst)
	case now.After(b.at):
		b.tokens = min(float64(burst), b.tokens+float64(now.Sub(b.at))/float64(interval))
	default:
		return // calls that raced for the lock must not move the clock back
	}
	b.at = now
}

// takeLocked takes a token from key k's bucket at now, and reports whether
// there was one. Without a rate limit it always succeeds.
func (s *Server) takeLocked(k int, now time.Time) bool {
	if s.rate <= 0 {
		return true
	}
	b := &s.buckets[k]
	b.refill(now, s.rate, s.opts.RateBurst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// randomRefusalSalt separates the random refusals' choice from the others.
const randomRefusalSalt = 0x34323921 // "429!"

// randomRefusalLocked reports whether the call about to be answered (the
// next in s.calls) is one of Options.RandomRefusals.
func (s *Server) randomRefusalLocked() bool {
	if s.opts.RandomRefusals <= 0 {
		return false
	}
	n := uint64(len(s.calls))
	return float64(splitmix64(n^randomRefusalSalt)>>11)/(1<<53) < s.opts.RandomRefusals
}

// SetRateInterval changes Options.RateInterval from now on; d <= 0 lifts
// the limit. Tokens earned at the old interval are kept; buckets that were
// not limited (the old interval was 0) start full.
func (s *Server) SetRateInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for i := range s.buckets {
		if s.rate > 0 {
			s.buckets[i].refill(now, s.rate, s.opts.RateBurst)
		} else {
			s.buckets[i] = bucket{}
		}
	}
	s.rate = max(d, 0)
}
