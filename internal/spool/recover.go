package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// scan is what Open learns from reading one segment file.
type scan struct {
	seg      segment
	front    int64  // offset of the first record numbered from or later, or -1
	frontSeq uint64 // that record's sequence number
	damaged  int64  // bytes after the last good record
}

// scanSegment reads segment id from f through br, checking every record,
// and stops at the end of the file or at the first bytes that do not form a
// valid record. from is the first uncommitted sequence number. Only I/O
// errors are returned.
func scanSegment(f *os.File, id, from uint64, br *bufio.Reader) (scan, error) {
	fi, err := f.Stat()
	if err != nil {
		return scan{}, err
	}
	sc := scan{seg: segment{id: id, size: fi.Size()}, front: -1}
	br.Reset(f)
	var off int64
	for {
		h, err := br.Peek(headerSize)
		if len(h) < headerSize {
			if err != nil && err != io.EOF {
				return sc, err
			}
			break // the end of the file, or a torn header
		}
		n, ok := payloadLen(h)
		if !ok {
			break
		}
		rec, err := br.Peek(headerSize + n)
		if len(rec) < headerSize+n {
			if err != nil && err != io.EOF {
				return sc, err
			}
			break // a torn record
		}
		if !validRecord(rec) {
			break
		}
		if seq := id + sc.seg.count; sc.front < 0 && seq >= from {
			sc.front, sc.frontSeq = off, seq
		}
		sc.seg.count++
		off += int64(len(rec))
		if _, err := br.Discard(len(rec)); err != nil {
			return sc, err
		}
	}
	sc.seg.end = off
	sc.damaged = max(sc.seg.size-off, 0)
	return sc, nil
}

// loadCursor returns the first uncommitted sequence number recorded in the
// directory, or 0 (the oldest record) when the cursor is missing or
// damaged.
func (s *Spool) loadCursor() (uint64, error) {
	next, err := readCursor(s.dir)
	switch {
	case err == nil:
		return next, nil
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case errors.Is(err, errBadCursor):
		s.log.Warn("Spool cursor damaged, replaying from the oldest record",
			"file", filepath.Join(s.dir, cursorName))
		return 0, nil
	}
	return 0, fmt.Errorf("spool: read cursor: %w", err)
}

// recover rebuilds the spool's state from the segment files ids, oldest
// first, and from, the first uncommitted sequence number: it checks every
// record, cuts damaged tails, opens the newest segment for appending (or
// creates one), places the commit frontier and the reader, and deletes
// segments that are entirely committed.
func (s *Spool) recover(ids []uint64, from uint64) error {
	br := bufio.NewReaderSize(nil, headerSize+MaxPayload)
	found := false
	for i, id := range ids {
		last := i == len(ids)-1
		path := segmentPath(s.dir, id)
		flag := os.O_RDONLY
		if last {
			flag = os.O_RDWR
		}
		f, err := os.OpenFile(path, flag, 0)
		if err != nil {
			return fmt.Errorf("spool: open segment: %w", err)
		}
		sc, err := scanSegment(f, id, from, br)
		if err == nil && sc.damaged > 0 {
			s.corruptBytes += sc.damaged
			s.corruptions++
			if last {
				s.log.Warn("Spool segment has a damaged tail, truncating it",
					"file", path, "offset", sc.seg.end, "bytes_skipped", sc.damaged)
				err = f.Truncate(sc.seg.end)
				sc.seg.size = sc.seg.end
			} else {
				s.log.Warn("Spool segment is damaged, skipping the rest of it",
					"file", path, "offset", sc.seg.end, "bytes_skipped", sc.damaged)
			}
		}
		if err == nil && !last {
			err = f.Close()
		}
		if err != nil {
			_ = f.Close() // the error that matters is err
			return fmt.Errorf("spool: recover %s: %w", path, err)
		}
		if last {
			s.wf = f
		}
		s.segs = append(s.segs, sc.seg)
		s.bytes += sc.seg.size
		if !found && sc.front >= 0 {
			s.front, found = loc{seg: id, off: sc.front, seq: sc.frontSeq}, true
		}
	}

	// Sequence numbers never go back, not even past records lost to damage
	// that the cursor had already passed.
	s.wseq = from
	if n := len(s.segs); n > 0 {
		s.wseq = max(s.wseq, s.segs[n-1].endSeq())
	}
	if n := len(s.segs); n == 0 || s.segs[n-1].endSeq() < s.wseq {
		if s.wf != nil {
			if err := s.wf.Close(); err != nil {
				return fmt.Errorf("spool: close segment: %w", err)
			}
			s.wf = nil
		}
		if err := s.createSegment(s.wseq); err != nil {
			return err
		}
	}
	if !found {
		active := s.segs[len(s.segs)-1]
		s.front = loc{seg: active.id, off: active.end, seq: s.wseq}
	}
	s.r.loc = s.front

	// Everything before the frontier's segment is committed.
	k, _ := findSegment(s.segs, s.front.seg)
	for _, g := range s.segs[:k] {
		s.bytes -= g.size
		if err := os.Remove(segmentPath(s.dir, g.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool: delete committed segment: %w", err)
		}
	}
	s.segs = s.segs[k:]
	s.saved = s.front.seq
	if err := os.Remove(filepath.Join(s.dir, cursorTmpName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: remove stale cursor: %w", err)
	}
	return nil
}

// createSegment creates segment id, empty, and makes it the active one.
// It is called with mu held, or before the Spool is shared.
func (s *Spool) createSegment(id uint64) error {
	f, err := os.OpenFile(segmentPath(s.dir, id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("spool: create segment: %w", err)
	}
	s.wf = f
	s.pend, s.pendAt = s.pend[:0], 0
	s.segs = append(s.segs, segment{id: id})
	s.dirDirty = true
	return nil
}
