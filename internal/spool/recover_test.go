package spool

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// damage changes the file of segment id in dir.
type damage func(t *testing.T, path string)

func truncateBy(n int64) damage {
	return func(t *testing.T, path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, fi.Size()-n); err != nil {
			t.Fatal(err)
		}
	}
}

func xorByte(off int64) damage {
	return func(t *testing.T, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[off] ^= 0x5A
		if err := os.WriteFile(path, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func appendBytes(extra []byte) damage {
	return func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(extra); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecoverDamage(t *testing.T) {
	const payloadAt = headerSize + 3 // a byte inside a record's payload
	tests := []struct {
		name    string
		segment uint64 // which segment file is damaged: 0, 10 or 20
		damage  damage
		want    []uint64 // the records read after Open
		skipped int64    // Stats.CorruptBytes
		next    uint64   // the Seq of the next Append
	}{
		{"torn last record", 20, truncateBy(recordBytes - 9), seqRange(0, 29), 9, 29},
		{"torn last header", 20, truncateBy(recordBytes - 5), seqRange(0, 29), 5, 29},
		{"payload flipped in an older segment", 10, xorByte(5*recordBytes + payloadAt),
			slices.Concat(seqRange(0, 15), seqRange(20, 30)), 5 * recordBytes, 30},
		{"payload flipped in the last segment", 20, xorByte(5*recordBytes + payloadAt), seqRange(0, 25), 5 * recordBytes, 25},
		{"time flipped in the first record", 0, xorByte(7), seqRange(10, 30), 10 * recordBytes, 30},
		{"length flipped in an older segment", 10, xorByte(9*recordBytes + 4),
			slices.Concat(seqRange(0, 19), seqRange(20, 30)), recordBytes, 30},
		{"bad magic", 20, xorByte(0), seqRange(0, 20), 10 * recordBytes, 20},
		{"garbage appended", 20, appendBytes([]byte("\x00garbage")), seqRange(0, 30), 8, 30},
		{"header past the end appended", 20, appendBytes(appendRecord(nil, make([]byte, 100), 1)[:headerSize+50]),
			seqRange(0, 30), headerSize + 50, 30},
		{"older segment emptied", 10, truncateBy(10 * recordBytes), slices.Concat(seqRange(0, 10), seqRange(20, 30)), 0, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: 10 * recordBytes}
			s := openSpool(t, opts)
			appendRange(t, s, 0, 30)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if ids := segmentFiles(t, dir); !slices.Equal(ids, []uint64{0, 10, 20}) {
				t.Fatalf("segments %v", ids)
			}
			tt.damage(t, segmentPath(dir, tt.segment))

			s = openSpool(t, opts)
			st := s.Stats()
			wantCorruptions := 0
			if tt.skipped > 0 {
				wantCorruptions = 1
			}
			if st.CorruptBytes != tt.skipped || st.Corruptions != wantCorruptions {
				t.Fatalf("Stats = %+v, want %d corrupt bytes", st, tt.skipped)
			}
			if st.Unread != int64(len(tt.want)) {
				t.Fatalf("Stats = %+v, want %d unread", st, len(tt.want))
			}
			checkRecords(t, readAll(t, s), tt.want)

			// Appends go on cleanly, now and after another restart.
			if p := appendRange(t, s, tt.next, tt.next+2); p[0].Seq != tt.next {
				t.Fatalf("Append returned %+v, want seq %d", p[0], tt.next)
			}
			checkRecords(t, readAll(t, s), seqRange(tt.next, tt.next+2))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openSpool(t, opts)
			checkRecords(t, readAll(t, s), slices.Concat(tt.want, seqRange(tt.next, tt.next+2)))
			if tt.segment == 20 {
				if st := s.Stats(); st.Corruptions != 0 {
					t.Fatalf("second Open found damage again: %+v", st)
				}
			}
		})
	}
}

func TestRecoverCursor(t *testing.T) {
	tests := []struct {
		name   string
		cursor []byte
		first  uint64 // the first record read
	}{
		{"missing", nil, 0},
		{"valid", func() []byte { b := encodeCursor(17); return b[:] }(), 17},
		{"torn", func() []byte { b := encodeCursor(17); return b[:9] }(), 0},
		{"flipped", func() []byte { b := encodeCursor(17); b[5] ^= 1; return b[:] }(), 0},
		{"garbage", []byte("not a cursor at all"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: 10 * recordBytes}
			s := openSpool(t, opts)
			appendRange(t, s, 0, 30)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, cursorName)
			if tt.cursor != nil {
				if err := os.WriteFile(path, tt.cursor, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, cursorTmpName), []byte("stale"), 0o640); err != nil {
				t.Fatal(err)
			}
			s = openSpool(t, opts)
			checkRecords(t, readAll(t, s), seqRange(tt.first, 30))
			if _, err := os.Stat(filepath.Join(dir, cursorTmpName)); !os.IsNotExist(err) {
				t.Fatalf("stale cursor.tmp left: %v", err)
			}
		})
	}
}

// TestRecoverCursorPastData covers a cursor that was made durable while
// the data it passed was not, as after a power cut: sequence numbers must
// not be reused below it.
func TestRecoverCursorPastData(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 10 * recordBytes}
	s := openSpool(t, opts)
	appendRange(t, s, 0, 15)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b := encodeCursor(40)
	if err := os.WriteFile(filepath.Join(dir, cursorName), b[:], 0o640); err != nil {
		t.Fatal(err)
	}
	s = openSpool(t, opts)
	if recs := readAll(t, s); len(recs) != 0 {
		t.Fatalf("read %d records below the cursor", len(recs))
	}
	if p := appendRange(t, s, 40, 41); p[0].Seq != 40 {
		t.Fatalf("Append returned %+v, want seq 40", p[0])
	}
	checkRecords(t, readAll(t, s), []uint64{40})
	if ids := segmentFiles(t, dir); !slices.Equal(ids, []uint64{40}) {
		t.Fatalf("segments %v, want [40]", ids)
	}
}

func TestOpenIOError(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns Options.Dir
	}{
		{"dir is a file", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "file")
			if err := os.WriteFile(path, nil, 0o640); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"segment unreadable", func(t *testing.T, dir string) string {
			if os.Geteuid() == 0 {
				t.Skip("root reads any file")
			}
			s := openSpool(t, Options{Dir: dir})
			appendRange(t, s, 0, 1)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(segmentPath(dir, 0), 0); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t, t.TempDir())
			if s, err := Open(Options{Dir: dir}); err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

// TestDamageAfterOpen changes records on disk after Open checked them:
// Next skips the rest of the segment, and appends move to a new one.
func TestDamageAfterOpen(t *testing.T) {
	tests := []struct {
		name    string
		segment uint64
		want    []uint64
	}{
		{"older segment", 10, slices.Concat(seqRange(0, 15), seqRange(20, 31))},
		{"active segment", 20, slices.Concat(seqRange(0, 25), seqRange(30, 31))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, Options{Dir: dir, SegmentBytes: 10 * recordBytes})
			appendRange(t, s, 0, 30)
			xorByte(5*recordBytes+headerSize+3)(t, segmentPath(dir, tt.segment))
			recs := readAll(t, s)
			appendRange(t, s, 30, 31)
			recs = append(recs, readAll(t, s)...)
			checkRecords(t, recs, tt.want)
			if st := s.Stats(); st.Corruptions != 1 || st.CorruptBytes != 5*recordBytes {
				t.Fatalf("Stats = %+v", st)
			}
			if tt.segment == 20 && !slices.Contains(segmentFiles(t, dir), 30) {
				t.Fatalf("no new segment after damage to the active one: %v", segmentFiles(t, dir))
			}
		})
	}
}
