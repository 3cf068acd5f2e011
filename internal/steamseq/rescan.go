package steamseq

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Steam lists some matches late, at their original match_seq_num, after
// a scanner at the head has passed them; OpenDota runs a second scanner
// 50,000 seqs behind "to pick up matches previously missing" (odota/core
// ecosystem.config.js, SCANNER_OFFSET; odota/web#3213). The rescan is
// that second cursor: it reads the sequence again once the primary one is
// RescanBehind past, or passed it RescanDelay ago, and hands on only what
// was not delivered before. It calls Steam only with the capacity the
// primary cursor leaves: while the primary one has caught up with the head.

// runRescan reads the sequence again behind the primary cursor, for ever.
func (s *Scanner) runRescan(ctx, hctx context.Context, h Handler) error {
	c := &cursor{name: cursorRescan, prio: prioRescan, next: s.RescanPosition() + 1, scan: s.hooks}
	for ctx.Err() == nil {
		limit, change := s.rescanLimit(time.Now())
		if c.next > limit {
			// Wait for the primary cursor to move, or for time to move the
			// limit.
			s.mu.Lock()
			moved := s.progress
			s.mu.Unlock()
			if limit, _ = s.rescanLimit(time.Now()); c.next <= limit {
				continue
			}
			var timer <-chan time.Time
			if !change.IsZero() {
				timer = time.After(time.Until(change))
			}
			select {
			case <-ctx.Done():
				return nil
			case <-moved:
			case <-timer:
			}
			continue
		}
		s.logLate(time.Now())
		entries, _, ok := s.cl.fetch(ctx, c, time.Time{})
		s.reportImplausible(hctx, h)
		if !ok {
			continue
		}
		if c.hidden {
			if err := s.page(hctx, h, func() error { s.setRescan(min(c.next-1, limit)); return nil }); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("steam scanner: rescan: %w", err)
			}
			continue
		}
		err := s.page(hctx, h, func() error {
			reached := len(entries) == 0
			for _, e := range entries {
				if e.m.SeqNum > limit {
					reached = true
					break
				}
				if err := s.rescanned(hctx, h, e); err != nil {
					return err
				}
				c.next = e.m.SeqNum + 1
			}
			if reached {
				// Nothing more is listed up to the limit: the range is read.
				c.next = limit + 1
				c.window = 0
				s.setRescan(limit)
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("steam scanner: rescan: %w", err)
		}
		s.pruneDelivered(s.RescanPosition())
		s.pruneStepped(s.RescanPosition())
		s.state.Set(true, s.detail())
	}
	return nil
}

// rescanned hands on e, found by the rescan, unless it was delivered, and
// moves the rescan's position to it.
func (s *Scanner) rescanned(ctx context.Context, h Handler, e entry) error {
	seq := e.m.SeqNum
	if !s.wasDelivered(seq) {
		if e.reason != "" {
			h.Reject(ctx, e.reason, e.raw[:min(len(e.raw), maxRejectItem)])
			s.addDelivered(seq)
		} else {
			m := e.m
			m.RescanSeq = seq
			if err := s.hand(ctx, h, m, e.raw); err != nil {
				return fmt.Errorf("handler refused match %d (seq %d): %w", m.ID, seq, err)
			}
			s.addDelivered(seq)
			s.metrics.late.Inc()
			s.metrics.matches.Inc()
			s.log.Debug("The rescan found a match that was not published: Steam listed it late, or could not serve it before",
				"match_id", m.ID, "match_seq_num", seq, "primary_position", s.Position())
			s.late.add(m.ID, seq)
			s.logLate(time.Now())
		}
	}
	s.setRescan(seq)
	return nil
}

// rescanLimit returns the highest seq the rescan may read at now, and
// when that may next grow without the primary cursor moving (zero if it
// will not).
func (s *Scanner) rescanLimit(now time.Time) (int64, time.Time) {
	pos := s.Position()
	limit := pos - s.cfg.RescanBehind
	var change time.Time
	if s.cfg.RescanDelay > 0 {
		cut := now.Add(-s.cfg.RescanDelay)
		s.mu.Lock()
		for _, mk := range s.marks {
			if mk.at.After(cut) {
				change = mk.at.Add(s.cfg.RescanDelay)
				break
			}
			limit = max(limit, mk.seq)
		}
		s.mu.Unlock()
	}
	return min(limit, pos), change
}

// moved notes that the primary cursor is at seq now.
func (s *Scanner) moved(seq int64) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.marks); n > 0 && s.marks[n-1].seq == seq {
		return
	}
	s.marks = append(s.marks, mark{at: now, seq: seq})
	// Keep one mark older than the delay (it says how far the limit is)
	// and every later one.
	cut := now.Add(-s.cfg.RescanDelay)
	old := 0
	for old+1 < len(s.marks) && !s.marks[old+1].at.After(cut) {
		old++
	}
	if old > 0 {
		s.marks = slices.Delete(s.marks, 0, old)
	}
	close(s.progress)
	s.progress = make(chan struct{})
}

// addDelivered notes that seq was delivered.
func (s *Scanner) addDelivered(seq int64) {
	if s.cfg.RescanBehind < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.delivered); n == 0 || s.delivered[n-1] < seq {
		s.delivered = append(s.delivered, seq)
		return
	}
	if i, found := slices.BinarySearch(s.delivered, seq); !found {
		s.delivered = slices.Insert(s.delivered, i, seq)
	}
}

// wasDelivered reports whether seq was delivered.
func (s *Scanner) wasDelivered(seq int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, found := slices.BinarySearch(s.delivered, seq)
	return found
}

// pruneDelivered forgets the seqs at or below floor: the rescan has
// passed them.
func (s *Scanner) pruneDelivered(floor int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := slices.BinarySearch(s.delivered, floor)
	if found {
		i++
	}
	if i > 0 {
		s.delivered = slices.Delete(s.delivered, 0, i)
	}
}

// maxStepped bounds the ranges the primary cursor stepped past that the
// scan remembers for the rescan.
const maxStepped = 1000

// noteStepped notes that the primary cursor stepped past from..to, for
// the rescan to read once more without waiting on it again.
func (s *Scanner) noteStepped(from, to int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.stepped) == maxStepped {
		s.stepped = slices.Delete(s.stepped, 0, 1)
	}
	s.stepped = append(s.stepped, SeqRange{First: from, Last: to})
}

// wasStepped reports whether the primary cursor stepped past seq.
func (s *Scanner) wasStepped(seq int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.stepped {
		if seq >= r.First && seq <= r.Last {
			return true
		}
	}
	return false
}

// pruneStepped forgets the ranges at or below floor.
func (s *Scanner) pruneStepped(floor int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stepped = slices.DeleteFunc(s.stepped, func(r SeqRange) bool { return r.Last <= floor })
}

// lateLogEvery is how often at most the rescan logs the matches it found.
const lateLogEvery = 10 * time.Second

// lateFound summarises the matches the rescan found for the log: a few a
// second on a busy sequence, so the first is logged at once and the rest
// in a line at most every lateLogEvery. Each one is logged at debug level.
// It is the rescan goroutine's alone.
type lateFound struct {
	loggedAt       time.Time
	n              int // found since the last line
	firstSeq, last int64
	lastID         int64
	sinceStart     int
}

func (l *lateFound) add(id, seq int64) {
	if l.n == 0 {
		l.firstSeq = seq
	}
	l.n++
	l.sinceStart++
	l.last, l.lastID = seq, id
}

// logLate logs the matches found since the last line, if there are any
// and the last line is lateLogEvery old.
func (s *Scanner) logLate(now time.Time) {
	l := &s.late
	if l.n == 0 || now.Sub(l.loggedAt) < lateLogEvery {
		return
	}
	s.log.Info("The rescan found matches that were not published: Steam listed them late, or could not serve them before",
		"matches", l.n, "first_seq_num", l.firstSeq, "last_seq_num", l.last, "last_match_id", l.lastID,
		"since_start", l.sinceStart, "primary_position", s.Position())
	l.n, l.loggedAt = 0, now
}
