package steamseq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/health"
)

// cursor is a position in the sequence that pages forward: the forward
// scan's primary one at the head, its rescan behind it, or a backfill
// shard's. Owned by one goroutine.
type cursor struct {
	name string   // cursorPrimary, cursorRescan or cursorBackfill
	prio priority // its calls' place in line for a key
	next int64    // the seq its next page starts at
	scan *scanHooks

	// Narrowing down a page that keeps failing with a broken answer:
	// window, when not 0, says that the first match that fails is among
	// the first window matches from next.
	window   int
	tries    int       // failed tries of the one-match page at next
	since    time.Time // the first of them
	skipFrom int64     // the first seq stepped past, until a page goes through; 0 if none

	hidden bool // the last page was empty because Steam hides its match: not the end

	failures  int       // other failed calls in a row
	notBefore time.Time // no call before, after failures
}

// size returns how many matches the cursor's next page asks for.
func (c *cursor) size(full int) int {
	switch c.window {
	case 0:
		return full
	case 1:
		return 1
	}
	return c.window / 2
}

// scanHooks are what a cursor's calls tell the scan it belongs to, and ask
// of it.
type scanHooks struct {
	log   *slog.Logger
	state *health.State // down after a failed call, with the reason
	// beforePage, when set, is waited on before each sequence call (the
	// forward scan's: no call while the other cursor's page is written).
	beforePage func(ctx context.Context) error
	// ceiling returns the highest plausible seq in a page from start.
	ceiling func(start int64) int64
	// implausible is given the entries of a page above the ceiling.
	implausible func([]entry)
	// skipped is told of the seqs from..to that c stepped past, and
	// returns what becomes of them, for the log.
	skipped func(c *cursor, from, to int64) string
	// steppedPast, when set, reports whether another cursor of the scan
	// already stepped past seq: one failed try of it is then enough.
	steppedPast func(seq int64) bool
}

// errRetry says a call did not go through for a reason of its key's (a
// 429, or the key refused): try again at once, with the next free key.
var errRetry = errors.New("retry with another key")

// call waits for a key (and for until, and the cursor's backoff) and
// makes one call with it. It returns nil if the call went through,
// errRetry if the key was refused (the pool has noted it), ctx's error if
// ctx ended, and otherwise the call's error after logging it and, unless
// it is a broken answer (which the cursor narrows down instead), setting
// the cursor's backoff.
func (s *Client) call(ctx context.Context, c *cursor, until time.Time, endpoint string, do func(k *apiKey) error) error {
	if c.notBefore.After(until) {
		until = c.notBefore
	}
	// Wait out the cursor's own delay before asking for a key, so that
	// the primary cursor's idle wait leaves the keys to the rescan.
	if !backoff.Wait(ctx, time.Until(until)) {
		return ctx.Err()
	}
	k := s.pool.acquire(ctx, c.prio)
	if k == nil {
		return ctx.Err()
	}
	err := do(k)
	var ce *callError
	errors.As(err, &ce)
	if (err == nil || ctx.Err() == nil) && (ce == nil || (ce.outcome != outcomeRateLimited && !ce.keyRefused)) {
		// Steam did not refuse the key: its pace was fine, whatever else
		// went wrong.
		s.pool.succeeded(k)
	}
	if err == nil {
		c.failures = 0
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := s.redact(err.Error())
	switch {
	case ce != nil && ce.outcome == outcomeRateLimited:
		s.pool.refused(k, ce.retryAfter)
		c.scan.log.Debug("Steam call failed, retrying",
			"endpoint", endpoint, "outcome", outcomeRateLimited, "error", msg, "key", k.label,
			"then", "the next free key; this one slows down", "cursor", c.name, "position", c.next-1)
		return errRetry
	case ce != nil && ce.keyRefused:
		hold := s.pool.rejected(k)
		c.scan.state.Set(false, msg)
		c.scan.log.Warn("Steam call failed, retrying",
			"endpoint", endpoint, "outcome", outcomeOf(err), "error", msg, "key", k.label,
			"then", "the next free key; this one is held back", "retry_in", hold.String(), "cursor", c.name, "position", c.next-1)
		return errRetry
	case ce != nil && ce.outcome == outcomeBadResponse && endpoint == endpointSequence:
		return err
	}
	var ra time.Duration
	if ce != nil {
		ra = ce.retryAfter
	}
	delay := s.failureWait(c.failures, ra)
	c.failures++
	c.notBefore = time.Now().Add(delay)
	c.scan.state.Set(false, msg)
	c.scan.log.Warn("Steam call failed, retrying",
		"endpoint", endpoint, "outcome", outcomeOf(err), "error", msg, "key", k.label,
		"attempt", c.failures, "retry_in", delay.String(), "cursor", c.name, "position", c.next-1)
	return err
}

// headCall fetches the head for cursor c, retrying at once with another
// key when a key is refused. It returns the head, or the error of a call
// that failed otherwise (already logged) or ctx's.
func (s *Client) headCall(ctx context.Context, c *cursor) (int64, error) {
	for {
		var head int64
		err := s.call(ctx, c, time.Time{}, endpointHistory, func(k *apiKey) (err error) {
			head, err = s.fetchHead(ctx, k)
			return err
		})
		if err == nil {
			return head, nil
		}
		if !errors.Is(err, errRetry) {
			return 0, err
		}
	}
}

// fetch makes one call for the cursor's next page, not before until. It
// returns the entries, how many were asked for, and whether the call
// went through. A page that fails with a broken answer is narrowed down
// to the first match that fails, and that match is stepped past once it
// has failed SkipTries times over SkipAfter. While narrowing, an empty
// page means the first match from c.next is one Steam hides (hidden
// matches count toward matches_requested): the cursor moves past c.next,
// which holds no other match, and fetch reports no entries.
func (s *Client) fetch(ctx context.Context, c *cursor, until time.Time) ([]entry, int, bool) {
	c.hidden = false
	n := c.size(s.cfg.MatchesRequested)
	var entries []entry
	err := s.call(ctx, c, until, endpointSequence, func(k *apiKey) (err error) {
		if c.scan.beforePage != nil {
			if err := c.scan.beforePage(ctx); err != nil {
				return err
			}
		}
		var implausible []entry
		entries, implausible, err = s.fetchPage(ctx, k, c.next, n, c.scan.ceiling(c.next))
		if len(implausible) > 0 && c.scan.implausible != nil {
			c.scan.implausible(implausible)
		}
		return err
	})
	var ce *callError
	switch {
	case err == nil:
		s.pageWent(c, n, len(entries))
		return entries, n, true
	case errors.As(err, &ce) && ce.outcome == outcomeBadResponse:
		s.pageBroke(c, n, err)
	}
	return nil, n, false
}

// pageWent updates the narrowing after a page of n from c.next went
// through with got entries.
func (s *Client) pageWent(c *cursor, n, got int) {
	if c.skipFrom != 0 {
		s.skipped(c, c.skipFrom, c.next-1)
		c.skipFrom = 0
	}
	c.tries = 0
	switch {
	case c.window == 0:
	case got == 0:
		// A page that failed from here holds a match, so the first one
		// from here is hidden.
		c.next++
		c.window = max(c.window-1, 1)
		c.hidden = true
	case c.window == 1:
		c.window = 0
	default:
		c.window = max(c.window-n, 0)
	}
}

// pageBroke updates the narrowing after a page of n from c.next failed
// with a broken answer (err).
func (s *Client) pageBroke(c *cursor, n int, err error) {
	msg := s.redact(err.Error())
	if c.window != 1 {
		c.window = n
		if n > 1 {
			c.scan.log.Warn("Steam call failed, retrying",
				"endpoint", endpointSequence, "outcome", outcomeBadResponse, "error", msg,
				"then", fmt.Sprintf("narrowing the page down: %d matches", c.size(s.cfg.MatchesRequested)),
				"cursor", c.name, "position", c.next-1)
			return
		}
	}
	now := time.Now()
	if c.tries == 0 {
		c.since = now
	}
	c.tries++
	// A seq another cursor already stepped past after its own tries is
	// read once more, not waited on again.
	again := c.scan.steppedPast != nil && c.scan.steppedPast(c.next)
	if again || (c.tries >= SkipTries && now.Sub(c.since) >= s.cfg.SkipAfter) {
		if c.skipFrom == 0 {
			c.skipFrom = c.next
		}
		c.scan.log.Warn("Steam call failed, retrying",
			"endpoint", endpointSequence, "outcome", outcomeBadResponse, "error", msg,
			"then", fmt.Sprintf("stepping past seq %d after %d tries in %s", c.next, c.tries, now.Sub(c.since).Round(time.Millisecond)),
			"cursor", c.name, "position", c.next-1)
		c.next++
		c.tries = 0
		return
	}
	delay := s.backoff(c.tries-1, 0)
	c.notBefore = now.Add(delay)
	c.scan.state.Set(false, msg)
	c.scan.log.Warn("Steam call failed, retrying",
		"endpoint", endpointSequence, "outcome", outcomeBadResponse, "error", msg,
		"then", "the one match at the page's start again", "attempt", c.tries, "retry_in", delay.String(),
		"cursor", c.name, "position", c.next-1)
}

// skipped reports seqs from..to stepped past by c.
func (s *Client) skipped(c *cursor, from, to int64) {
	s.m.skipped.WithLabelValues(c.name).Inc()
	c.scan.log.Error("Stepped past a broken match: Steam kept failing to serve it",
		"cursor", c.name, "from_seq", from, "to_seq", to, "then", c.scan.skipped(c, from, to))
}

// failureWait returns the wait after network or server error n (from 0)
// in a row: backoff's, capped at MaxFailureWait, and at least retryAfter.
func (s *Client) failureWait(n int, retryAfter time.Duration) time.Duration {
	return max(backoff.Delay(n, s.cfg.BackoffMin, min(s.cfg.BackoffMax, MaxFailureWait)), retryAfter)
}

// backoff returns the wait after failure n (from 0) in a row: between half
// and all of min(BackoffMax, BackoffMin * 2^n), and at least retryAfter.
func (s *Client) backoff(n int, retryAfter time.Duration) time.Duration {
	return max(backoff.Delay(n, s.cfg.BackoffMin, s.cfg.BackoffMax), retryAfter)
}
