package spool

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Pos is the position of one record, as returned by Append and Next and
// taken by Commit. Positions are comparable with == and ordered by Seq
// (see Less). The zero Pos is no record's position.
type Pos struct {
	// Seq is the record's sequence number: 0 for the first record appended
	// to an empty directory, then one more for each Append. Sequence
	// numbers survive restarts; records lost to damage leave gaps.
	Seq uint64

	seg  uint64 // id of the segment holding the record
	next int64  // offset just past the record in that segment
}

// Less reports whether p comes before q in append order.
func (p Pos) Less(q Pos) bool { return p.Seq < q.Seq }

// Stats are a spool's current figures.
type Stats struct {
	// Bytes is the total size of the segment files, the figure capped by
	// Options.MaxBytes.
	Bytes int64
	// Segments counts the segment files.
	Segments int
	// Unread counts records that Next has not returned yet.
	Unread int64
	// Uncommitted counts records not yet committed, read or not.
	Uncommitted int64
	// OldestUncommitted is the append time of the oldest uncommitted
	// record; zero if there is none.
	OldestUncommitted time.Time
	// CorruptBytes counts the bytes skipped as damaged since Open (by Open
	// or, should the disk change under the spool, by Next); Corruptions
	// counts the damaged regions they formed.
	CorruptBytes int64
	Corruptions  int
}

// Spool is a durable FIFO of records in a directory; see the package
// documentation. Append may be called from one goroutine while another
// calls Next, Commit and Rewind; Stats, Sync and Close may be called from
// any goroutine. All methods are safe for concurrent use.
type Spool struct {
	opts Options
	log  *slog.Logger
	dir  string
	lock *os.File // holds the directory's lock

	// Locks are taken in this order: readMu, flushMu, mu.

	// readMu serialises the reading side (Next, Commit, Rewind, Stats) and
	// guards r, doomed and oldest.
	readMu sync.Mutex
	r      reader
	doomed []uint64 // segments Commit is deleting, reused
	oldest struct {
		seq   uint64
		nanos int64
		ok    bool
	}

	// flushMu serialises fsyncs, cursor writes and segment rolls. It
	// guards saved and retired, and lets its holder use wf without mu,
	// since wf is only replaced with both held.
	flushMu sync.Mutex
	saved   uint64     // first uncommitted Seq as last written to the cursor
	retired []*os.File // rolled segments awaiting fsync and close

	// mu guards the rest; it is never held across an fsync, except by
	// Append when the policy is Always.
	mu           sync.Mutex
	closed       bool
	segs         []segment // oldest first; the last one is active
	wf           *os.File  // the active segment
	pend         []byte    // records appended but not yet written to wf
	pendAt       int64     // wf's offset where pend goes: the bytes written
	wseq         uint64    // Seq of the next record appended
	bytes        int64
	front        loc  // the first uncommitted record
	dirty        bool // wf written since its last fsync
	dirDirty     bool // a segment created since the directory's last fsync
	forceRoll    bool // the active segment is damaged: roll before the next write
	corruptBytes int64
	corruptions  int

	stop chan struct{} // closed by Close to end the flusher
	done chan struct{} // closed by the flusher when it ends
}

// Open opens the spool in opts.Dir, creating the directory if needed, and
// recovers it: every record is checked, damaged data is skipped and
// logged (see the package documentation), and reading starts at the first
// record not yet committed. Unless opts.Sync.Always, Open starts a
// goroutine that writes the cursor and fsyncs per the policy; Close stops
// it. Open fails for invalid options and for I/O errors, never for damaged
// data.
func Open(opts Options) (*Spool, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: create directory: %w", err)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{opts: opts, log: opts.Logger, dir: opts.Dir, lock: lock}
	ids, err := listSegments(s.dir)
	if err != nil {
		return nil, errors.Join(err, lock.Close())
	}
	from, err := s.loadCursor()
	if err != nil {
		return nil, errors.Join(err, lock.Close())
	}
	if err := s.recover(ids, from); err != nil {
		if s.wf != nil {
			_ = s.wf.Close() // reporting the recovery error instead
		}
		return nil, errors.Join(err, lock.Close())
	}
	s.pendAt = s.segs[len(s.segs)-1].size
	s.pend = make([]byte, 0, opts.WriteBuffer+headerSize+64)
	if opts.Sync.Always && s.dirDirty {
		if err := syncDir(s.dir); err != nil {
			return nil, errors.Join(fmt.Errorf("spool: sync directory: %w", err), s.wf.Close())
		}
		s.dirDirty = false
	}
	if !opts.Sync.Always {
		every := opts.Sync.Interval
		if every == 0 {
			every = cursorEvery
		}
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.flushEvery(every)
	}
	return s, nil
}

// flushEvery is the flusher goroutine: it writes the cursor and, if the
// policy has an Interval, fsyncs, every period until Close.
func (s *Spool) flushEvery(period time.Duration) {
	defer close(s.done)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.flush(s.opts.Sync.Interval > 0); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Error("Spool background sync failed", "dir", s.dir, "error", err)
			}
		}
	}
}

// Sync fsyncs the active segment and writes and fsyncs the cursor now,
// whatever the policy. It returns ErrClosed after Close.
func (s *Spool) Sync() error { return s.flush(true) }

// flush writes the cursor if it changed and, with sync, fsyncs the data
// written since the last flush.
func (s *Spool) flush(sync bool) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.mu.Unlock()
	return s.flushLocked(sync)
}

// flushLocked is flush with flushMu held and the Spool open or closing.
func (s *Spool) flushLocked(sync bool) error {
	var errs []error
	s.mu.Lock()
	if err := s.writePendingLocked(); err != nil {
		errs = append(errs, err)
	}
	dirty, dirDirty, front := s.dirty, s.dirDirty, s.front.seq
	if sync {
		s.dirty, s.dirDirty = false, false
	}
	s.mu.Unlock()

	for _, f := range s.retired {
		if sync {
			errs = append(errs, f.Sync())
		}
		errs = append(errs, f.Close())
	}
	clear(s.retired)
	s.retired = s.retired[:0]
	if sync && dirty {
		errs = append(errs, s.wf.Sync())
	}
	if sync && dirDirty {
		errs = append(errs, syncDir(s.dir))
	}
	if front != s.saved {
		err := writeCursor(s.dir, front, sync)
		if err == nil {
			s.saved = front
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.mu.Lock()
		s.dirty = s.dirty || dirty
		s.dirDirty = s.dirDirty || dirDirty
		s.mu.Unlock()
		return fmt.Errorf("spool: sync: %w", err)
	}
	return nil
}

// Close writes the cursor, fsyncs unless the policy never does, and closes
// the files. Every later call, Close included, returns ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	if s.stop != nil {
		close(s.stop)
		<-s.done
	}

	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	err := s.flushLocked(s.opts.Sync.syncs())
	return errors.Join(err, s.r.close(), s.wf.Close(), s.lock.Close())
}

// Stats returns the spool's current figures. It may read one record
// header from disk, and waits for a Next or Commit in progress.
func (s *Spool) Stats() Stats {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	st := Stats{
		Bytes:        s.bytes,
		Segments:     len(s.segs),
		CorruptBytes: s.corruptBytes,
		Corruptions:  s.corruptions,
	}
	var first loc // the oldest uncommitted record
	for _, g := range s.segs {
		st.Unread += g.after(s.r.loc)
		n := g.after(s.front)
		if n > 0 && st.Uncommitted == 0 {
			first = loc{seg: g.id, seq: g.id}
			if g.id == s.front.seg {
				first = s.front
			}
		}
		st.Uncommitted += n
	}
	closed := s.closed
	s.mu.Unlock()

	if st.Uncommitted > 0 && !closed {
		st.OldestUncommitted = s.timeAt(first)
	}
	return st
}
