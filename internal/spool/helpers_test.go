package spool

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// recordBytes is the size on disk of a record made by payloadOf.
const recordBytes = headerSize + 14

func payloadOf(i uint64) []byte { return fmt.Appendf(nil, "match-%08d", i) }

func timeOf(i uint64) time.Time { return time.Unix(1_700_000_000, int64(i)*1000+7) }

// openSpool opens a spool and closes it when the test ends.
func openSpool(t testing.TB, opts Options) *Spool {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// appendRange appends records from to to-1, made by payloadOf and timeOf.
func appendRange(t testing.TB, s *Spool, from, to uint64) []Pos {
	t.Helper()
	var ps []Pos
	for i := from; i < to; i++ {
		p, err := s.Append(payloadOf(i), timeOf(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		ps = append(ps, p)
	}
	return ps
}

type got struct {
	pos Pos
	at  time.Time
	p   string
}

// readAll calls Next until it reports nothing more.
func readAll(t testing.TB, s *Spool) []got {
	t.Helper()
	var out []got
	buf := make([]byte, 0, 64)
	for {
		p, pos, at, ok, err := s.Next(buf)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if !ok {
			return out
		}
		out = append(out, got{pos, at, string(p)})
	}
}

// checkRecords fails unless recs are exactly the records numbered seqs,
// in order, as made by payloadOf and timeOf.
func checkRecords(t testing.TB, recs []got, seqs []uint64) {
	t.Helper()
	if len(recs) != len(seqs) {
		t.Fatalf("read %d records, want %d (first %v)", len(recs), len(seqs), recs[:min(len(recs), 3)])
	}
	for k, r := range recs {
		i := seqs[k]
		if r.pos.Seq != i || r.p != string(payloadOf(i)) || !r.at.Equal(timeOf(i)) {
			t.Fatalf("record %d = seq %d %q at %v, want seq %d %q at %v",
				k, r.pos.Seq, r.p, r.at, i, payloadOf(i), timeOf(i))
		}
	}
}

// seqRange returns from, from+1, ..., to-1.
func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// segmentFiles lists the ids of dir's segment files.
func segmentFiles(t testing.TB, dir string) []uint64 {
	t.Helper()
	ids, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clip(ids)
}

// crash drops s as a killed process would: no cursor written, no fsync.
func crash(t testing.TB, s *Spool) {
	t.Helper()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.stop != nil {
		close(s.stop)
		<-s.done
	}
	_ = s.r.close()
	_ = s.wf.Close()
	for _, f := range s.retired {
		_ = f.Close()
	}
	_ = s.lock.Close() // a dead process holds no lock
}

func mustExist(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}
