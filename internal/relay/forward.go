package relay

import (
	"context"
	"time"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/spool"
)

// Run forwards held matches to the Producer, oldest first, and tracks
// their acknowledgements: failed deliveries are tried again after
// RetryBackoff, and acknowledged spool records are committed. It returns nil
// when ctx ends, or once CloseInput was called and everything held has been
// acknowledged.
//
// It sleeps until there is work, an acknowledgement, or something falls
// due (a retry, a commit held back by CommitInterval): an idle relay sets
// no timer, so that a quiet stream costs no wake-ups.
func (r *Relay) Run(ctx context.Context) error {
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	now := r.tickClock()
	for n := 0; ; n++ {
		if n%256 == 0 {
			// Reading the clock costs more than forwarding a match on some
			// machines: a busy loop reads it every 256 matches.
			now = r.tickClock()
		}
		r.settle(ctx, now, false)
		if ctx.Err() != nil {
			return nil
		}
		if r.inFlight() < uint64(len(r.slots)) {
			it, ok := r.take()
			if ok {
				if !r.passOver(it) {
					r.send(ctx, it)
				}
				continue
			}
			r.endSkipping()
			if r.drained() {
				r.settle(ctx, r.tickClock(), true)
				return nil
			}
			if r.flushing() {
				// Input has ended and everything is handed over: ask the
				// producer to send what it holds now rather than linger.
				if f, ok := r.prod.(Flusher); ok {
					_ = f.Flush(ctx)
					continue
				}
			}
		}
		// Idle: the oldest-match gauge, which a busy relay updates once a
		// CommitInterval, is brought up to date now rather than by a timer.
		r.updateOldest()
		var wake <-chan time.Time
		if at, ok := r.nextDue(); ok {
			due.Reset(time.Until(at))
			wake = due.C
		}
		r.waiting.Store(true)
		select {
		case <-r.work:
		case <-wake:
		case <-ctx.Done():
		}
		due.Stop()
		r.waiting.Store(false)
		now = r.tickClock()
	}
}

// nextDue returns when the relay must next settle without being woken:
// the earliest retry, the end of the CommitInterval that holds back a
// spool commit, or the next report of the causes of failed deliveries.
func (r *Relay) nextDue() (time.Time, bool) {
	var at time.Time
	for _, rt := range r.retries {
		if at.IsZero() || rt.at.Before(at) {
			at = rt.at
		}
	}
	if r.havePending && r.spool != nil {
		if c := r.lastCommit.Add(r.cfg.CommitInterval); at.IsZero() || c.Before(at) {
			at = c
		}
	}
	if len(r.causes) > 0 {
		// A cause that held matches is reported, and forgotten, even if
		// nothing else wakes the relay.
		if c := r.reportedAt.Add(reportCheck); at.IsZero() || c.Before(at) {
			at = c
		}
	}
	return at, !at.IsZero()
}

// tickClock reads the time and publishes it as the relay's coarse clock,
// which stamps arriving matches without a clock read each.
func (r *Relay) tickClock() time.Time {
	now := time.Now()
	r.clock.Store(now.UnixNano())
	return now
}

// item is one match taken from memory or from the spool.
type item struct {
	m       match.Match
	at      int64
	pos     spool.Pos
	spooled bool
}

func (r *Relay) inFlight() uint64 { return r.nextToken - r.frontier }

// take returns the oldest held match: memory first (it is older than any
// spooled backlog, which starts only once memory is full), then the spool.
func (r *Relay) take() (item, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ring.n > 0 {
		m, at := r.ring.pop()
		if r.full {
			r.signal(r.space)
		}
		return item{m: m, at: at}, true
	}
	if r.spool == nil {
		return item{}, false
	}
	for {
		p, pos, at, ok, err := r.spool.Next(r.readBuf[:0])
		if err != nil {
			r.log.Error("Reading the spool failed", "error", err)
			return item{}, false
		}
		if !ok {
			if r.spilling && r.cfg.Mode == Overflow {
				r.spilling = false
				r.log.Info("Spool caught up, back to the memory buffer")
			}
			return item{}, false
		}
		m, err := Decode(p)
		if err != nil {
			// Checksummed but not ours: skip it, and let the frontier pass it.
			r.log.Error("Skipping an unreadable spooled record", "error", err)
			r.metrics.corrupt.Inc()
			r.skip(pos)
			continue
		}
		return item{m: m, at: at.UnixNano(), pos: pos, spooled: true}, true
	}
}

// SkipDelivered makes the relay pass over, rather than send, the matches
// it holds whose IDs are in delivered: a fleet replica's backlog from an
// earlier lead (records its fenced writer could not commit, kept in
// memory or in the spool), which the leader since may well have
// published. It applies to everything the relay takes, failed deliveries
// included, until it next finds nothing to take; then it logs how many it
// passed over and forgets the set. Call it while Run is not running.
func (r *Relay) SkipDelivered(delivered map[int64]bool) {
	if len(delivered) == 0 {
		return
	}
	r.skipIDs, r.skipped = delivered, 0
}

// passOver reports whether it is a match the topic already holds, and if
// so lets the frontier pass it.
func (r *Relay) passOver(it item) bool {
	if !r.skipIDs[it.m.ID] {
		return false
	}
	if it.spooled {
		r.skip(it.pos)
	}
	r.skipped++
	r.metrics.delivered.Inc()
	return true
}

// endSkipping forgets the set of SkipDelivered once the backlog it was
// for has been taken.
func (r *Relay) endSkipping() {
	if r.skipIDs == nil || len(r.retries) > 0 {
		return
	}
	if r.skipped > 0 {
		r.log.Info("Passed over held matches the topic already holds", "matches", r.skipped)
	}
	r.skipIDs, r.skipped = nil, 0
}

// skip occupies a token for a spool record that will not be produced, so
// that commits pass it in order.
func (r *Relay) skip(pos spool.Pos) {
	s := r.claim(item{pos: pos, spooled: true})
	s.state.Store(slotAcked)
}

func (r *Relay) claim(it item) *slot {
	s := &r.slots[r.nextToken%uint64(len(r.slots))]
	s.m, s.at, s.pos, s.spooled = it.m, it.at, it.pos, it.spooled
	s.state.Store(slotPending)
	r.nextToken++
	r.inFlightCount.Add(1)
	return s
}

func (r *Relay) send(ctx context.Context, it item) {
	tok := r.nextToken
	s := r.claim(it)
	if err := r.prod.Produce(ctx, it.m, tok, r.done); err != nil {
		// Not handed over: the Producer is closing (Close keeps the
		// match) or, in a fleet, this replica no longer leads. Retry it
		// like a failed delivery, or the frontier would wait on it for
		// ever once the replica leads again.
		s.state.Store(slotFailed)
		r.hold(tok, err, time.Now())
	}
}

// settle moves the frontier past acknowledged tokens, commits the spool,
// and retries failed deliveries whose cause's wait is over. final forces
// a commit.
func (r *Relay) settle(ctx context.Context, now time.Time, final bool) {
	if r.nFailed.Load() > 0 {
		r.failMu.Lock()
		failed := r.failed
		r.failed = r.failedSpare[:0]
		r.nFailed.Store(0)
		r.failMu.Unlock()
		r.failedSpare = failed
		for _, f := range failed {
			r.hold(f.token, f.err, now)
		}
	}
	if ctx.Err() == nil && len(r.retries) > 0 {
		kept := r.retries[:0]
		for _, rt := range r.retries {
			s := &r.slots[rt.token%uint64(len(r.slots))]
			if now.Before(rt.at) {
				kept = append(kept, rt)
				continue
			}
			if r.skipIDs[s.m.ID] {
				s.state.Store(slotAcked) // the topic has it: nothing to retry
				r.skipped++
				r.metrics.delivered.Inc()
				continue
			}
			r.metrics.retries.Inc()
			s.state.Store(slotPending)
			if err := r.prod.Produce(ctx, s.m, rt.token, r.done); err != nil {
				s.state.Store(slotFailed)
				kept = append(kept, retry{token: rt.token, at: s.cause.wait(now, r.cfg)})
			}
		}
		r.retries = kept
	}

	advanced := false
	for r.frontier < r.nextToken {
		s := &r.slots[r.frontier%uint64(len(r.slots))]
		if s.state.Load() != slotAcked {
			break
		}
		if s.cause != nil {
			s.cause.delivered(now)
			s.cause = nil
		}
		if s.spooled {
			r.pendingCommit, r.havePending = s.pos, true
		}
		s.state.Store(slotFree)
		r.frontier++
		r.inFlightCount.Add(-1)
		advanced = true
	}
	if advanced {
		r.signal(r.space)
	}
	r.report(now)
	if !final && now.Sub(r.lastCommit) < r.cfg.CommitInterval {
		return // nextDue wakes the relay for a held-back commit
	}
	r.lastCommit = now
	if r.havePending && r.spool != nil {
		if err := r.spool.Commit(r.pendingCommit); err != nil {
			r.log.Error("Committing the spool failed", "error", err)
		} else {
			r.havePending = false
			r.signal(r.space) // committed segments may have been deleted
		}
	}
	r.updateOldest()
}

// updateOldest publishes the arrival time of the oldest unacknowledged
// match, for metrics.
func (r *Relay) updateOldest() {
	oldest := int64(0)
	if r.frontier < r.nextToken {
		oldest = r.slots[r.frontier%uint64(len(r.slots))].at
	}
	r.mu.Lock()
	if o := r.ring.oldest(); o != 0 && (oldest == 0 || o < oldest) {
		oldest = o
	}
	r.mu.Unlock()
	if r.spool != nil {
		if o := r.spool.Stats().OldestUncommitted; !o.IsZero() && (oldest == 0 || o.UnixNano() < oldest) {
			oldest = o.UnixNano()
		}
	}
	r.oldestNS.Store(oldest)
}

// Flusher is implemented by a Producer that holds records back (lingers)
// and can be told to send them at once.
type Flusher interface {
	// Flush returns once everything produced so far is delivered or ctx ends.
	Flush(ctx context.Context) error
}

// flushing reports whether input has ended and everything held has been
// handed to the producer, which still has some in flight.
func (r *Relay) flushing() bool {
	return r.inFlight() > 0 && len(r.retries) == 0 && r.inputDone()
}

// drained reports whether input has ended and nothing is held or in flight.
func (r *Relay) drained() bool {
	return r.inFlight() == 0 && r.inputDone()
}

// inputDone reports whether input has ended and nothing waits in memory or
// in the spool to be handed to the producer.
func (r *Relay) inputDone() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.inputEnd || r.ring.n > 0 {
		return false
	}
	return r.spool == nil || r.spool.Stats().Unread == 0
}
