package steamseq

import (
	"context"
	"errors"
	"time"

	"github.com/dota-data/ingestion-service/internal/backoff"
)

// pace waits until the next call may start, at until at the earliest, and
// marks the call as started. It returns false if ctx ends first.
func (s *Scanner) pace(ctx context.Context, until time.Time) bool {
	at := s.lastCall.Add(s.cfg.MinInterval)
	if s.notBefore.After(at) {
		at = s.notBefore
	}
	if until.After(at) {
		at = until
	}
	if !backoff.Wait(ctx, time.Until(at)) {
		return false
	}
	s.lastCall = time.Now()
	return true
}

// succeeded notes a successful call.
func (s *Scanner) succeeded() { s.failures = 0 }

// failed notes a failed call: it logs err, marks the scanner down and
// holds the next call back.
func (s *Scanner) failed(endpoint, detailPrefix string, err error) {
	var ra time.Duration
	var ce *callError
	if errors.As(err, &ce) {
		ra = ce.retryAfter
	}
	delay := s.backoff(s.failures, ra)
	s.failures++
	s.notBefore = time.Now().Add(delay)
	msg := s.redact(err.Error())
	s.state.Set(false, detailPrefix+msg)
	s.log.Warn("Steam call failed, retrying",
		"endpoint", endpoint, "outcome", outcomeOf(err), "error", msg,
		"attempt", s.failures, "retry_in", delay.String(), "position", s.Position())
}

// backoff returns the wait after failure n (from 0) in a row: between half
// and all of min(BackoffMax, BackoffMin * 2^n), and at least retryAfter.
func (s *Scanner) backoff(n int, retryAfter time.Duration) time.Duration {
	return max(backoff.Delay(n, s.cfg.BackoffMin, s.cfg.BackoffMax), retryAfter)
}
