package dedup

import (
	"math/rand/v2"
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
	for i := int64(1); i <= n; i++ {
		if w.Seen(i) {
			t.Fatalf("fresh ID %d seen", i)
		}
	}
	for i := int64(1); i <= n; i++ {
		if !w.Seen(i) {
			t.Fatalf("ID %d forgotten within the window", i)
		}
	}
	if w.Seen(n+1) || w.Seen(1) {
		t.Fatal("eviction order wrong: the oldest ID should be gone after one more")
	}
}

func TestNilWindowSeesNothing(t *testing.T) {
	var w *Window = New(Limit{})
	if w != nil {
		t.Fatal("a zero limit should give no window")
	}
	first, again := w.Seen(1), w.Seen(1) // a window would call the second a duplicate
	if first || again || w.Len() != 0 {
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

// TestCountWindowMatchesAModel checks the window against a plain FIFO and
// map, with IDs drawn from ranges small enough to collide and repeat often,
// so that probing, deletion and growth are all exercised.
func TestCountWindowMatchesAModel(t *testing.T) {
	for _, tc := range []struct {
		count int
		ids   int64
	}{{1, 3}, {7, 20}, {100, 150}, {5000, 6000}, {5000, 1 << 40}} {
		rng := rand.New(rand.NewPCG(uint64(tc.count), uint64(tc.ids)))
		w := New(Limit{Count: tc.count})
		var fifo []int64
		in := map[int64]bool{}
		for step := range 200_000 {
			id := 1 + rng.Int64N(tc.ids)
			want := in[id]
			if !want {
				if len(fifo) == tc.count {
					delete(in, fifo[0])
					fifo = fifo[1:]
				}
				fifo = append(fifo, id)
				in[id] = true
			}
			if got := w.Seen(id); got != want {
				t.Fatalf("count %d, ids %d, step %d: Seen(%d) = %v, want %v", tc.count, tc.ids, step, id, got, want)
			}
		}
		if w.Len() != len(fifo) || w.seen.n != len(fifo) {
			t.Fatalf("count %d: Len = %d, set holds %d, want %d", tc.count, w.Len(), w.seen.n, len(fifo))
		}
	}
}

func TestNonPositiveIDsAreNeverSeen(t *testing.T) {
	w := New(Limit{Count: 10})
	for _, id := range []int64{0, -1, 0, -1} {
		if w.Seen(id) {
			t.Fatalf("Seen(%d) = true", id)
		}
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d, want 0", w.Len())
	}
}

// BenchmarkSeenScattered feeds IDs in no particular order, as a stream
// mixing old and new matches would.
func BenchmarkSeenScattered(b *testing.B) {
	w := New(Limit{Count: 50000})
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]int64, 1<<16)
	for i := range ids {
		ids[i] = 8_000_000_000 + rng.Int64N(1<<30)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.Seen(ids[i&(len(ids)-1)])
		i++
	}
}
