package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Commit declares every record up to and including pos acknowledged, so
// that it is never read again: not by Next after Rewind, nor after a
// restart once the cursor is written. Segment files holding only
// committed records are deleted, except the one being appended to. The
// cursor is written and fsynced on every Commit if the policy is Always;
// otherwise the flusher writes it once per Interval (once a second when
// Interval is zero) and Close writes it, so a crash replays the records
// committed since.
//
// Commit is cheap when it deletes no segment and the policy is not
// Always. A pos at or before an earlier commit is ignored; if the reader
// has not reached pos yet, Next continues after it. Commit returns an
// error for the zero Pos or a position not appended, ErrClosed after
// Close, and wrapped I/O errors from deleting segments or writing the
// cursor.
func (s *Spool) Commit(pos Pos) error {
	if pos.next == 0 {
		return errors.New("spool: commit of the zero Pos")
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if pos.Seq >= s.wseq {
		s.mu.Unlock()
		return fmt.Errorf("spool: commit of record %d, not appended yet", pos.Seq)
	}
	i, found := findSegment(s.segs, pos.seg)
	if pos.Seq < s.front.seq || !found || pos.seg < s.front.seg {
		s.mu.Unlock()
		return nil // committed already
	}
	s.front = loc{seg: pos.seg, off: min(pos.next, s.segs[i].end), seq: pos.Seq + 1}
	// Move on from fully committed segments, unless they are active.
	for i < len(s.segs)-1 && s.front.off >= s.segs[i].end {
		i++
		s.front = loc{seg: s.segs[i].id, seq: s.segs[i].id}
	}
	s.doomed = s.doomed[:0]
	for _, g := range s.segs[:i] {
		s.bytes -= g.size
		s.doomed = append(s.doomed, g.id)
	}
	s.segs = s.segs[i:]
	front := s.front
	s.mu.Unlock()

	var errs []error
	if s.r.seq < front.seq || s.r.seg < front.seg {
		errs = append(errs, s.r.moveTo(front))
	}
	for _, id := range s.doomed {
		if err := os.Remove(segmentPath(s.dir, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if s.opts.Sync.Always {
		s.flushMu.Lock()
		if front.seq != s.saved {
			err := writeCursor(s.dir, front.seq, true)
			if err == nil {
				s.saved = front.seq
			}
			errs = append(errs, err)
		}
		s.flushMu.Unlock()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool: commit: %w", err)
	}
	return nil
}
