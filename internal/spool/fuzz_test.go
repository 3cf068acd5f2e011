package spool

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzOpen opens a directory holding arbitrary bytes as a segment and as a
// cursor: Open must succeed, and Next must return only whole records with
// valid checksums, in the order they are in the file.
func FuzzOpen(f *testing.F) {
	valid := appendRecord(appendRecord(nil, []byte("7514723841"), 1), []byte("x"), 2)
	cursor := encodeCursor(1)
	f.Add(valid, cursor[:])
	f.Add(valid, []byte{})
	f.Add(valid[:len(valid)-3], []byte("cursor"))
	f.Add(append(bytes.Clone(valid), 0xD1, 0xff, 0xff, 0xff, 0xff), cursor[:9])
	f.Add([]byte{}, cursor[:])
	f.Add(bytes.Repeat([]byte{0xD1}, 40), []byte{})
	f.Fuzz(func(t *testing.T, seg, cur []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(segmentPath(dir, 0), seg, 0o640); err != nil {
			t.Fatal(err)
		}
		if len(cur) > 0 {
			if err := os.WriteFile(filepath.Join(dir, cursorName), cur, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		s := openSpool(t, Options{Dir: dir})
		st := s.Stats()
		if st.CorruptBytes < 0 || st.CorruptBytes > int64(len(seg)) || st.Bytes < 0 {
			t.Fatalf("Stats = %+v for %d bytes", st, len(seg))
		}
		var read []byte
		for _, r := range readAll(t, s) {
			read = appendRecord(read, []byte(r.p), r.at.UnixNano())
		}
		if !bytes.Contains(seg, read) || (len(cur) == 0 && !bytes.HasPrefix(seg, read)) {
			t.Fatalf("read records not in the file: %x", read)
		}

		p, err := s.Append([]byte("next"), time.Unix(0, 3))
		if err != nil {
			t.Fatal(err)
		}
		recs := readAll(t, s)
		if len(recs) != 1 || recs[0].pos != p || recs[0].p != "next" {
			t.Fatalf("after Append, read %+v", recs)
		}
	})
}
