package spool

import (
	"errors"
	"fmt"
	"time"
)

// Append adds one record, payload and its append time at (kept to the
// nanosecond as Unix time), after every record appended before, and
// returns its position.
//
// The record has reached the operating system when Append returns, and is
// fsynced first if the policy is Always; with Options.WriteBuffer it may
// instead wait in memory, to be written with others (see WriteBuffer).
//
// Append returns ErrTooLarge for a payload longer than MaxPayload, ErrFull
// when the record would take the files past Options.MaxBytes (including a
// record larger than MaxBytes on its own), ErrClosed after Close, and
// wrapped I/O errors; the record is not added then, and records gathered
// before it are kept and written again later. When only the fsync fails,
// the record is kept and will be read, although Append reported an error.
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

	if len(s.pend)+int(n) > s.opts.WriteBuffer {
		if err := s.writePendingLocked(); err != nil {
			return Pos{}, fmt.Errorf("spool: append: %w", err)
		}
	}
	s.pend = appendRecord(s.pend, payload, at.UnixNano())
	if s.opts.WriteBuffer == 0 {
		if err := s.writePendingLocked(); err != nil {
			s.pend = s.pend[:len(s.pend)-int(n)]
			return Pos{}, fmt.Errorf("spool: append: %w", err)
		}
	}
	g := &s.segs[len(s.segs)-1]
	pos := Pos{Seq: s.wseq, seg: g.id, next: g.size + n}
	s.wseq++
	g.size += n
	g.end = g.size
	g.count++
	s.bytes += n
	if s.opts.Sync.Always {
		if err := s.wf.Sync(); err != nil {
			s.forceRoll = true // the page cache may no longer match the disk
			return Pos{}, fmt.Errorf("spool: append: sync: %w", err)
		}
		s.dirty = false
	}
	return pos, nil
}

// writePendingLocked writes the gathered records to the active segment.
// On failure it cuts what may have been written and keeps them, to be
// written again; if it cannot cut, the segment is rolled before the next
// append. mu must be held.
func (s *Spool) writePendingLocked() error {
	if len(s.pend) == 0 {
		return nil
	}
	if _, err := s.wf.WriteAt(s.pend, s.pendAt); err != nil {
		if terr := s.wf.Truncate(s.pendAt); terr != nil {
			s.forceRoll = true
		}
		return fmt.Errorf("write: %w", err)
	}
	s.pendAt += int64(len(s.pend))
	s.pend = s.pend[:0]
	s.dirty = true
	return nil
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
	if err := s.writePendingLocked(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("spool: append: %w", err)
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
