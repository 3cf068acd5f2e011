package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// readBufSize is the reader's initial buffer: many small records per read.
const readBufSize = 64 << 10

// reader is the reading side's position and its buffered view of the
// segment it is in.
type reader struct {
	loc
	f      *os.File // open on segment loc.seg, or nil
	buf    []byte   // buf[:n] holds the segment's bytes from bufOff
	bufOff int64
	n      int
}

// errShort reports a segment file shorter than the spool's records say.
var errShort = errors.New("spool: segment shorter than expected")

// moveTo places the reader at l, keeping its file and buffer if l is in
// the same segment.
func (r *reader) moveTo(l loc) error {
	var err error
	if l.seg != r.seg {
		err = r.close()
	}
	r.loc = l
	return err
}

// close closes the reader's file and forgets its buffer.
func (r *reader) close() error {
	r.n = 0
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// fill makes buf hold the need bytes at the reader's offset, reading as
// much as it can up to end, the end of the segment's valid data.
func (r *reader) fill(dir string, need int, end int64) error {
	if rel := r.off - r.bufOff; r.n > 0 && rel >= 0 && rel+int64(need) <= int64(r.n) {
		return nil
	}
	if r.f == nil {
		f, err := os.Open(segmentPath(dir, r.seg))
		if err != nil {
			return err
		}
		r.f = f
	}
	if len(r.buf) < need {
		r.buf = make([]byte, max(need, readBufSize))
	}
	want := min(int64(len(r.buf)), end-r.off)
	n, err := r.f.ReadAt(r.buf[:want], r.off)
	r.bufOff, r.n = r.off, n
	if n < need {
		if err == nil || err == io.EOF {
			err = errShort
		}
		return err
	}
	return nil
}

// record returns the record at the reader's offset, header included,
// valid and within end; nil if the bytes there do not form one.
func (r *reader) record(dir string, end int64) ([]byte, error) {
	if end-r.off < headerSize {
		return nil, nil
	}
	if err := r.fill(dir, headerSize, end); err != nil {
		return nil, err
	}
	n, ok := payloadLen(r.buf[r.off-r.bufOff:])
	size := headerSize + n
	if !ok || int64(size) > end-r.off {
		return nil, nil
	}
	if err := r.fill(dir, size, end); err != nil {
		return nil, err
	}
	rec := r.buf[r.off-r.bufOff:][:size]
	if !validRecord(rec) {
		return nil, nil
	}
	return rec, nil
}

// peek copies the header of the record at l into h if the reader has it
// at hand, in its buffer or through its open file.
func (r *reader) peek(l loc, h []byte) bool {
	if l.seg != r.seg {
		return false
	}
	if rel := l.off - r.bufOff; r.n > 0 && rel >= 0 && rel+int64(len(h)) <= int64(r.n) {
		copy(h, r.buf[rel:])
		return true
	}
	if r.f == nil {
		return false
	}
	_, err := r.f.ReadAt(h, l.off)
	return err == nil
}

// Next returns the oldest record not yet returned, in Append order: its
// payload, copied into dst[:0] (so a dst with room makes Next allocate
// nothing), its position and its append time. When every appended record
// has been returned, Next returns ok false and a nil error; a later Next
// returns the records appended since. After Open, and after Rewind, Next
// starts at the oldest uncommitted record.
//
// Next skips, logs and counts any record found damaged; it returns
// ErrClosed after Close, and wrapped I/O errors.
func (s *Spool) Next(dst []byte) (payload []byte, pos Pos, at time.Time, ok bool, err error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return dst[:0], Pos{}, time.Time{}, false, ErrClosed
		}
		i, found := findSegment(s.segs, s.r.seg)
		if !found { // not expected: the reader never trails the frontier
			s.mu.Unlock()
			if err := s.r.moveTo(s.front); err != nil {
				return dst[:0], Pos{}, time.Time{}, false, fmt.Errorf("spool: read: %w", err)
			}
			continue
		}
		g, last := s.segs[i], i == len(s.segs)-1
		var next uint64
		if !last {
			next = s.segs[i+1].id
		}
		end := g.end
		if last && s.pendAt < end {
			// Records gathered by Append but not written yet: write them
			// out once the reader has caught up with the file.
			if s.r.off >= s.pendAt {
				if err := s.writePendingLocked(); err != nil {
					s.mu.Unlock()
					return dst[:0], Pos{}, time.Time{}, false, fmt.Errorf("spool: read: %w", err)
				}
			}
			end = min(end, s.pendAt)
		}
		s.mu.Unlock()

		if s.r.off < end {
			rec, err := s.r.record(s.dir, end)
			if err != nil && !errors.Is(err, errShort) {
				return dst[:0], Pos{}, time.Time{}, false, fmt.Errorf("spool: read: %w", err)
			}
			if rec == nil {
				s.damagedAtReader()
				continue
			}
			pos := Pos{Seq: s.r.seq, seg: s.r.seg, next: s.r.off + int64(len(rec))}
			s.r.off, s.r.seq = pos.next, s.r.seq+1
			return append(dst[:0], rec[headerSize:]...), pos, time.Unix(0, recordTime(rec)), true, nil
		}
		if last || s.r.off < g.end {
			return dst[:0], Pos{}, time.Time{}, false, nil
		}
		if err := s.r.moveTo(loc{seg: next, seq: next}); err != nil {
			return dst[:0], Pos{}, time.Time{}, false, fmt.Errorf("spool: read: %w", err)
		}
	}
}

// damagedAtReader gives up the rest of the reader's segment, whose bytes
// at the reader's offset do not form a record although Open or Append
// vouched for them: the disk changed under the spool. readMu must be held.
func (s *Spool) damagedAtReader() {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := findSegment(s.segs, s.r.seg)
	if !found {
		return
	}
	g := &s.segs[i]
	skipped := g.end - s.r.off
	if skipped <= 0 {
		return
	}
	g.end, g.count = s.r.off, s.r.seq-g.id
	s.corruptBytes += skipped
	s.corruptions++
	if i == len(s.segs)-1 {
		s.forceRoll = true // append no more to it
	}
	s.log.Error("Spool segment damaged since it was written, skipping the rest of it",
		"file", segmentPath(s.dir, g.id), "offset", g.end, "bytes_skipped", skipped)
}

// Rewind makes Next start again at the oldest uncommitted record, so that
// records read but not committed are returned again. It does nothing after
// Close.
func (s *Spool) Rewind() {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	front, closed := s.front, s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	if err := s.r.moveTo(front); err != nil {
		s.log.Warn("Spool could not close a segment file", "dir", s.dir, "error", err)
	}
}

// timeAt returns the append time of the record at l, which must be in a
// segment file that exists; zero if it cannot be read. readMu must be
// held.
func (s *Spool) timeAt(l loc) time.Time {
	if s.oldest.ok && s.oldest.seq == l.seq {
		return time.Unix(0, s.oldest.nanos)
	}
	var h [headerSize]byte
	s.mu.Lock()
	rel := l.off - s.pendAt
	pending := s.segs[len(s.segs)-1].id == l.seg && rel >= 0 && rel+headerSize <= int64(len(s.pend))
	if pending {
		copy(h[:], s.pend[rel:])
	}
	s.mu.Unlock()
	if !pending && !s.r.peek(l, h[:]) {
		f, err := os.Open(segmentPath(s.dir, l.seg))
		if err != nil {
			return time.Time{}
		}
		_, err = f.ReadAt(h[:], l.off)
		if cerr := f.Close(); err != nil || cerr != nil {
			return time.Time{}
		}
	}
	if _, ok := payloadLen(h[:]); !ok {
		return time.Time{}
	}
	s.oldest.seq, s.oldest.nanos, s.oldest.ok = l.seq, recordTime(h[:]), true
	return time.Unix(0, s.oldest.nanos)
}
