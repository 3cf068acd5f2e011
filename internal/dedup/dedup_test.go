package dedup

import (
	"testing"
	"time"
)

func TestCountWindow(t *testing.T) {
	w := New(Limit{Count: 3})
	steps := []struct {
		id   int64
		seen bool
	}{
		{1, false}, {2, false}, {1, true}, {3, false}, {2, true},
		{4, false}, // evicts 1
		{1, false}, // 1 is new again, evicts 2
		{3, true}, {2, false},
	}
	for i, s := range steps {
		if got := w.Seen(s.id); got != s.seen {
			t.Fatalf("step %d: Seen(%d) = %v, want %v", i, s.id, got, s.seen)
		}
	}
	if w.Len() != 3 {
		t.Fatalf("Len = %d, want 3", w.Len())
	}
}

func TestAgeWindow(t *testing.T) {
	w := New(Limit{Age: time.Minute})
	clock := time.Unix(1000, 0)
	w.now = func() time.Time { return clock }
	if w.Seen(7) {
		t.Fatal("new ID seen")
	}
	clock = clock.Add(59 * time.Second)
	if !w.Seen(7) {
		t.Fatal("ID forgotten within the age")
	}
	clock = clock.Add(2 * time.Second)
	if w.Seen(7) {
		t.Fatal("ID remembered past the age")
	}
}

func TestWindowGrowsPastItsInitialSize(t *testing.T) {
	const n = 20000
	w := New(Limit{Count: n})
	for i := int64(0); i < n; i++ {
		if w.Seen(i) {
			t.Fatalf("fresh ID %d seen", i)
		}
	}
	for i := int64(0); i < n; i++ {
		if !w.Seen(i) {
			t.Fatalf("ID %d forgotten within the window", i)
		}
	}
	if w.Seen(n) || w.Seen(0) {
		t.Fatal("eviction order wrong: the oldest ID should be gone after one more")
	}
}

func TestNilWindowSeesNothing(t *testing.T) {
	var w *Window = New(Limit{})
	if w != nil {
		t.Fatal("a zero limit should give no window")
	}
	if w.Seen(1) || w.Seen(1) || w.Len() != 0 {
		t.Fatal("a nil window reported a duplicate")
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]Limit{"50000": {Count: 50000}, "0": {}, "10m": {Age: 10 * time.Minute}, " 90s ": {Age: 90 * time.Second}} {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "ten", "-5m", "99999999999"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) succeeded", bad)
		}
	}
}

func BenchmarkSeen(b *testing.B) {
	w := New(Limit{Count: 50000})
	b.ReportAllocs()
	var id int64
	for b.Loop() {
		id++
		w.Seen(id)
	}
}
