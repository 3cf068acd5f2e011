package spool

import (
	"testing"
	"time"
)

func BenchmarkAppend(b *testing.B) { benchmarkAppend(b, SyncPolicy{}) }

func BenchmarkAppendSyncAlways(b *testing.B) { benchmarkAppend(b, SyncPolicy{Always: true}) }

func benchmarkAppend(b *testing.B, policy SyncPolicy) {
	s := openSpool(b, Options{Dir: b.TempDir(), Sync: policy})
	payload := []byte(`{"match_id":7514723841}`)
	at := time.Now()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p, err := s.Append(payload, at)
		if err != nil {
			b.Fatal(err)
		}
		if i%(1<<16) == 0 { // keep the files small
			if err := s.Commit(p); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkAppendNext appends, reads and, every 1000 records, commits.
func BenchmarkAppendNext(b *testing.B) {
	s := openSpool(b, Options{Dir: b.TempDir()})
	payload := []byte(`{"match_id":7514723841}`)
	buf := make([]byte, 0, 64)
	at := time.Now()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Append(payload, at); err != nil {
			b.Fatal(err)
		}
		_, pos, _, ok, err := s.Next(buf)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		if i%1000 == 999 {
			if err := s.Commit(pos); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestAllocs checks that Append, Next and Commit allocate nothing in the
// steady state.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	s := openSpool(t, Options{Dir: t.TempDir()})
	payload, at := payloadOf(1), timeOf(1)
	appendRange(t, s, 0, 10) // grows the write buffer
	var pos Pos
	if n := testing.AllocsPerRun(1000, func() { pos, _ = s.Append(payload, at) }); n != 0 {
		t.Errorf("Append: %v allocations", n)
	}
	buf := make([]byte, 0, 64)
	var ok bool
	if n := testing.AllocsPerRun(1000, func() { _, pos, _, ok, _ = s.Next(buf) }); n != 0 || !ok {
		t.Errorf("Next: %v allocations, ok %v", n, ok)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = s.Commit(pos) }); n != 0 {
		t.Errorf("Commit: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.Stats() }); n != 0 {
		t.Errorf("Stats: %v allocations", n)
	}
}
