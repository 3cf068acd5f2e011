package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestAppendNext(t *testing.T) {
	tests := []struct {
		name         string
		segmentBytes int64
		n            uint64
		minSegments  int
	}{
		{"one record per segment", 1, 20, 20},
		{"ten records per segment", 10 * recordBytes, 500, 50},
		{"one segment", 0, 500, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSpool(t, Options{Dir: t.TempDir(), SegmentBytes: tt.segmentBytes})
			ps := appendRange(t, s, 0, tt.n)
			for i, p := range ps {
				if p.Seq != uint64(i) || (i > 0 && !ps[i-1].Less(p)) {
					t.Fatalf("Append %d returned %+v", i, p)
				}
			}
			st := s.Stats()
			if st.Segments < tt.minSegments || st.Bytes != int64(tt.n)*recordBytes || st.Unread != int64(tt.n) {
				t.Fatalf("Stats = %+v, want ≥%d segments, %d bytes, %d unread", st, tt.minSegments, tt.n*recordBytes, tt.n)
			}

			recs := readAll(t, s)
			checkRecords(t, recs, seqRange(0, tt.n))
			for i, r := range recs {
				if r.pos != ps[i] {
					t.Fatalf("Next %d returned %+v, Append returned %+v", i, r.pos, ps[i])
				}
			}
			if st := s.Stats(); st.Unread != 0 || st.Uncommitted != int64(tt.n) {
				t.Fatalf("after reading, Stats = %+v", st)
			}

			appendRange(t, s, tt.n, tt.n+3)
			checkRecords(t, readAll(t, s), seqRange(tt.n, tt.n+3))
		})
	}
}

func TestCommitDeletesSegments(t *testing.T) {
	tests := []struct {
		name         string
		commit       uint64 // commit records 0 to commit
		wantSegments []uint64
		uncommitted  int64
	}{
		{"inside the first segment", 4, []uint64{0, 10, 20, 30, 40}, 40},
		{"end of the first segment", 9, []uint64{10, 20, 30, 40}, 35},
		{"start of the third", 20, []uint64{20, 30, 40}, 24},
		{"everything", 44, []uint64{40}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, Options{Dir: dir, SegmentBytes: 10 * recordBytes})
			appendRange(t, s, 0, 45)
			recs := readAll(t, s)
			before := s.Stats()

			if err := s.Commit(recs[tt.commit].pos); err != nil {
				t.Fatal(err)
			}
			if got := segmentFiles(t, dir); !slices.Equal(got, tt.wantSegments) {
				t.Fatalf("segment files %v, want %v", got, tt.wantSegments)
			}
			st := s.Stats()
			deleted := int64(len(segmentFiles(t, dir)) - before.Segments)
			if st.Bytes != before.Bytes+deleted*10*recordBytes || st.Segments != len(tt.wantSegments) {
				t.Fatalf("Stats after commit = %+v, before %+v", st, before)
			}
			if st.Uncommitted != tt.uncommitted || st.Unread != 0 {
				t.Fatalf("Stats = %+v, want %d uncommitted", st, tt.uncommitted)
			}
			var wantOldest time.Time
			if tt.uncommitted > 0 {
				wantOldest = timeOf(tt.commit + 1)
			}
			if !st.OldestUncommitted.Equal(wantOldest) {
				t.Fatalf("OldestUncommitted = %v, want %v", st.OldestUncommitted, wantOldest)
			}
			// Committing again, or an older position, changes nothing.
			if err := s.Commit(recs[0].pos); err != nil {
				t.Fatal(err)
			}
			if st2 := s.Stats(); st2 != st {
				t.Fatalf("Stats after a stale commit = %+v, want %+v", st2, st)
			}
		})
	}
}

func TestRestart(t *testing.T) {
	tests := []struct {
		name  string
		sync  SyncPolicy
		close bool // Close, or crash
		// The first record read again is at least minFirst and at most 30.
		minFirst uint64
	}{
		{"close, never sync", SyncPolicy{}, true, 30},
		{"close, interval", SyncPolicy{Interval: time.Hour}, true, 30},
		{"close, always", SyncPolicy{Always: true}, true, 30},
		{"crash, always", SyncPolicy{Always: true}, false, 30},
		{"crash, interval", SyncPolicy{Interval: time.Hour}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: 10 * recordBytes, Sync: tt.sync}
			s := openSpool(t, opts)
			appendRange(t, s, 0, 50)
			recs := readAll(t, s)[:40]
			if err := s.Commit(recs[29].pos); err != nil {
				t.Fatal(err)
			}
			if tt.close {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				crash(t, s)
			}

			s = openSpool(t, opts)
			recs = readAll(t, s)
			if len(recs) == 0 || recs[0].pos.Seq < tt.minFirst || recs[0].pos.Seq > 30 {
				t.Fatalf("after restart, read %d records starting at %v", len(recs), recs)
			}
			checkRecords(t, recs, seqRange(recs[0].pos.Seq, 50))
			if st := s.Stats(); st.Uncommitted != int64(len(recs)) || st.Corruptions != 0 {
				t.Fatalf("Stats = %+v", st)
			}
			// Sequence numbers go on from where they were.
			if p := appendRange(t, s, 50, 51); p[0].Seq != 50 {
				t.Fatalf("Append after restart returned %+v", p[0])
			}
		})
	}
}

func TestRestartAfterEverythingCommitted(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 10 * recordBytes}
	s := openSpool(t, opts)
	ps := appendRange(t, s, 0, 25)
	if err := s.Commit(ps[24]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSpool(t, opts)
	if recs := readAll(t, s); len(recs) != 0 {
		t.Fatalf("read %d committed records", len(recs))
	}
	if p := appendRange(t, s, 25, 26); p[0].Seq != 25 {
		t.Fatalf("Append returned %+v, want seq 25", p[0])
	}
	checkRecords(t, readAll(t, s), []uint64{25})
}

func TestFull(t *testing.T) {
	dir := t.TempDir()
	// SegmentBytes is lowered to MaxBytes/2: 10 records per segment.
	s := openSpool(t, Options{Dir: dir, MaxBytes: 20 * recordBytes, SegmentBytes: 1 << 20})
	appendRange(t, s, 0, 20)
	if _, err := s.Append(payloadOf(20), timeOf(20)); !errors.Is(err, ErrFull) {
		t.Fatalf("Append past MaxBytes: %v, want ErrFull", err)
	}
	if _, err := s.Append(make([]byte, MaxPayload+1), time.Now()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of a huge payload: %v, want ErrTooLarge", err)
	}
	recs := readAll(t, s)
	checkRecords(t, recs, seqRange(0, 20))

	// Committing the first segment frees room for ten records.
	if err := s.Commit(recs[9].pos); err != nil {
		t.Fatal(err)
	}
	appendRange(t, s, 20, 30)
	if _, err := s.Append(payloadOf(30), timeOf(30)); !errors.Is(err, ErrFull) {
		t.Fatalf("Append past MaxBytes: %v, want ErrFull", err)
	}
	checkRecords(t, readAll(t, s), seqRange(20, 30))
	if st := s.Stats(); st.Bytes != 20*recordBytes {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestRewind(t *testing.T) {
	tests := []struct {
		name   string
		commit int // index of the record committed before Rewind, -1 for none
	}{
		{"nothing committed", -1},
		{"some committed", 12},
		{"everything committed", 29},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSpool(t, Options{Dir: t.TempDir(), SegmentBytes: 10 * recordBytes})
			appendRange(t, s, 0, 30)
			recs := readAll(t, s)
			if tt.commit >= 0 {
				if err := s.Commit(recs[tt.commit].pos); err != nil {
					t.Fatal(err)
				}
			}
			s.Rewind()
			first := uint64(tt.commit + 1)
			if st := s.Stats(); st.Unread != int64(30-first) {
				t.Fatalf("after Rewind, Stats = %+v", st)
			}
			checkRecords(t, readAll(t, s), seqRange(first, 30))
		})
	}
}

// TestCommitAhead commits positions the reader has not reached: Next goes
// on after them.
func TestCommitAhead(t *testing.T) {
	s := openSpool(t, Options{Dir: t.TempDir(), SegmentBytes: 10 * recordBytes})
	ps := appendRange(t, s, 0, 30)
	if err := s.Commit(ps[14]); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, readAll(t, s), seqRange(15, 30))
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(Options{}); err == nil {
		t.Error("Open without Dir succeeded")
	}
	if _, err := Open(Options{Dir: dir, MaxBytes: -1}); err == nil {
		t.Error("Open with negative MaxBytes succeeded")
	}
	s := openSpool(t, Options{Dir: dir})
	p := appendRange(t, s, 0, 1)[0]
	if err := s.Commit(Pos{}); err == nil {
		t.Error("Commit(Pos{}) succeeded")
	}
	if err := s.Commit(Pos{Seq: 5, seg: p.seg, next: p.next}); err == nil {
		t.Error("Commit of a record not appended succeeded")
	}
	if err := s.Commit(p); err != nil {
		t.Errorf("Commit: %v", err)
	}
	if err := s.Sync(); err != nil {
		t.Errorf("Sync: %v", err)
	}
	mustExist(t, filepath.Join(dir, cursorName))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Append(nil, time.Now()); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, _, _, _, err := s.Next(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	if err := s.Commit(p); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close: %v", err)
	}
	if err := s.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	s.Rewind()
	_ = s.Stats()
}

// TestConcurrent appends on one goroutine while another reads and commits,
// as the service does; run it with -race.
func TestConcurrent(t *testing.T) {
	for _, tc := range []struct {
		policy SyncPolicy
		buffer int
	}{{SyncPolicy{}, 0}, {SyncPolicy{Interval: time.Millisecond}, 0}, {SyncPolicy{}, 10 * recordBytes}, {SyncPolicy{Interval: time.Millisecond}, 7 * recordBytes}} {
		t.Run(fmt.Sprintf("%s/buffer=%d", tc.policy, tc.buffer), func(t *testing.T) {
			const n = 20000
			s := openSpool(t, Options{Dir: t.TempDir(), SegmentBytes: 100 * recordBytes, MaxBytes: 1000 * recordBytes, Sync: tc.policy, WriteBuffer: tc.buffer})
			var wg sync.WaitGroup
			appended := make(chan struct{}, 1)
			wg.Go(func() {
				for i := uint64(0); i < n; {
					_, err := s.Append(payloadOf(i), timeOf(i))
					switch {
					case errors.Is(err, ErrFull):
						<-appended // wait for a commit to free room
						continue
					case err != nil:
						t.Errorf("Append %d: %v", i, err)
						return
					}
					i++
				}
			})
			wg.Go(func() {
				buf := make([]byte, 0, 64)
				for want := uint64(0); want < n; {
					p, pos, at, ok, err := s.Next(buf)
					if err != nil {
						t.Errorf("Next: %v", err)
						return
					}
					if !ok {
						_ = s.Stats()
						continue
					}
					if pos.Seq != want || string(p) != string(payloadOf(want)) || !at.Equal(timeOf(want)) {
						t.Errorf("read seq %d %q, want %d", pos.Seq, p, want)
						return
					}
					want++
					if want%50 == 0 || want == n {
						if err := s.Commit(pos); err != nil {
							t.Errorf("Commit: %v", err)
							return
						}
						select {
						case appended <- struct{}{}:
						default:
						}
					}
				}
			})
			wg.Wait()
			if st := s.Stats(); st.Uncommitted != 0 || st.Segments != 1 {
				t.Fatalf("Stats = %+v", st)
			}
		})
	}
}

func TestOpenLocksTheDirectory(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Options{Dir: dir})
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

// onDisk sums the sizes of dir's segment files.
func onDisk(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, id := range segmentFiles(t, dir) {
		fi, err := os.Stat(segmentPath(dir, id))
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func TestWriteBuffer(t *testing.T) {
	dir := t.TempDir()
	const buffer = 10 * recordBytes
	s := openSpool(t, Options{Dir: dir, SegmentBytes: 35 * recordBytes, WriteBuffer: buffer})

	// Gathered, not written; yet counted, timed and readable.
	appendRange(t, s, 0, 5)
	if got := onDisk(t, dir); got != 0 {
		t.Fatalf("%d bytes on disk after 5 buffered appends, want 0", got)
	}
	if st := s.Stats(); st.Unread != 5 || !st.OldestUncommitted.Equal(timeOf(0)) {
		t.Fatalf("Stats = %+v", st)
	}
	checkRecords(t, readAll(t, s), seqRange(0, 5))
	if got := onDisk(t, dir); got != 5*recordBytes {
		t.Fatalf("%d bytes on disk after Next, want %d", got, 5*recordBytes)
	}

	// Many appends, across buffers and segments: at most a buffer waits.
	appendRange(t, s, 5, 200)
	if got, all := onDisk(t, dir), int64(200*recordBytes); got < all-buffer || got > all {
		t.Fatalf("%d bytes on disk, want %d less at most %d", got, all, buffer)
	}
	recs := readAll(t, s)
	checkRecords(t, recs, seqRange(5, 200))
	if err := s.Commit(recs[len(recs)-1].pos); err != nil {
		t.Fatal(err)
	}

	// A killed process loses what was gathered, and only that.
	appendRange(t, s, 200, 203)
	copyDir := t.TempDir()
	for _, id := range segmentFiles(t, dir) {
		b, err := os.ReadFile(segmentPath(dir, id))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(segmentPath(copyDir, id), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// The copy has no cursor: it replays the written records of the
	// segments not yet deleted, up to 199, and not the gathered ones.
	if got := readAll(t, openSpool(t, Options{Dir: copyDir})); len(got) == 0 || got[len(got)-1].p != string(payloadOf(199)) {
		t.Fatalf("a crash copy replays %d records, ending with %v; want the written ones, up to 199", len(got), got[max(0, len(got)-1):])
	}

	// Close writes what was gathered.
	appendRange(t, s, 203, 206)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, readAll(t, openSpool(t, Options{Dir: dir})), seqRange(200, 206))
}
