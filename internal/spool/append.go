package spool

import (
	"errors"
	"fmt"
	"time"
)

// Append writes one record, payload and its append time at (kept to the
// nanosecond as Unix time), after every record appended before, and
// returns its position. The record has reached the operating system when
// Append returns; it is also fsynced first if the policy is Always.
//
// Append returns ErrTooLarge for a payload longer than MaxPayload, ErrFull
// when the record would take the files past Options.MaxBytes (including a
// record larger than MaxBytes on its own), ErrClosed after Close, and
// wrapped I/O errors. When only the fsync fails, the record is kept and
// will be read, although Append reported an error.
//
// Append does not allocate except when it starts a new segment file.
func (s *Spool) Append(payload []byte, at time.Time) (Pos, error) {
	if len(payload) > MaxPayload {
		return Pos{}, ErrTooLarge
	}
	n := int64(headerSize + len(payload))
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			return Pos{}, ErrClosed
		}
		if s.bytes+n > s.opts.MaxBytes {
			s.mu.Unlock()
			return Pos{}, ErrFull
		}
		if !s.mustRoll(n) {
			break
		}
		s.mu.Unlock()
		if err := s.roll(n); err != nil {
			return Pos{}, err
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()

	g := &s.segs[len(s.segs)-1]
	s.wbuf = appendRecord(s.wbuf[:0], payload, at.UnixNano())
	if _, err := s.wf.WriteAt(s.wbuf, g.size); err != nil {
		// Cut what may have been written, or keep the partial record out
		// of the way of the next ones by writing them to a new segment.
		if terr := s.wf.Truncate(g.size); terr != nil {
			s.forceRoll = true
		}
		return Pos{}, fmt.Errorf("spool: append: %w", err)
	}
	pos := Pos{Seq: s.wseq, seg: g.id, next: g.size + n}
	s.wseq++
	g.size += n
	g.end = g.size
	g.count++
	s.bytes += n
	s.dirty = true
	if s.opts.Sync.Always {
		if err := s.wf.Sync(); err != nil {
			s.forceRoll = true // the page cache may no longer match the disk
			return Pos{}, fmt.Errorf("spool: append: sync: %w", err)
		}
		s.dirty = false
	}
	return pos, nil
}

// mustRoll reports whether a record of n bytes must go to a new segment.
// mu must be held.
func (s *Spool) mustRoll(n int64) bool {
	g := s.segs[len(s.segs)-1]
	return s.forceRoll || (g.size > 0 && g.size+n > s.opts.SegmentBytes)
}

// roll starts a new active segment if a record of n bytes still needs one.
// The old segment is closed now when the policy never syncs or always
// does; with an Interval it is handed to the flusher to be fsynced first.
func (s *Spool) roll(n int64) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if s.closed || !s.mustRoll(n) {
		s.mu.Unlock()
		return nil // Append checks again
	}
	old, oldDirty := s.wf, s.dirty
	if err := s.createSegment(s.wseq); err != nil {
		s.mu.Unlock()
		return err
	}
	s.dirty, s.forceRoll = false, false
	s.mu.Unlock()

	if s.opts.Sync.Interval > 0 && !s.opts.Sync.Always && oldDirty {
		s.retired = append(s.retired, old)
		return nil
	}
	var err error
	if s.opts.Sync.Always {
		if err = syncDir(s.dir); err == nil { // make the new name durable
			s.mu.Lock()
			s.dirDirty = false
			s.mu.Unlock()
		}
	}
	return errors.Join(err, old.Close())
}
