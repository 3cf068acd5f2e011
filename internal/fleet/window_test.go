package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dota-data/ingestion-service/internal/match"
)

func TestWindowKeepsRecentMatchesInOrder(t *testing.T) {
	w, err := NewWindow(time.Minute, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1000, 0)
	w.now = func() time.Time { return clock }
	ctx := context.Background()
	for id := int64(1); id <= 5000; id++ { // past the initial size: it grows
		if id == 3001 {
			clock = clock.Add(45 * time.Second)
		}
		if err := w.Publish(ctx, match.Match{ID: id, SeqNum: id + 10}); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(w.size); got != 5000 {
		t.Fatalf("size gauge = %v", got)
	}
	// 30 s later the first 3000 (75 s old) have expired; the rest (30 s) not.
	clock = clock.Add(30 * time.Second)
	got, oldest := w.Drain()
	if !oldest.Equal(time.Unix(1045, 0)) {
		t.Errorf("the oldest held arrived at %s, want %s", oldest, time.Unix(1045, 0))
	}
	if len(got) != 2000 || got[0].ID != 3001 || got[1999].ID != 5000 || got[0].SeqNum != 3011 {
		t.Fatalf("Drain = %d matches from %+v to %+v; want 3001..5000", len(got), got[0], got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID != got[i-1].ID+1 {
			t.Fatalf("out of order at %d: %d after %d", i, got[i].ID, got[i-1].ID)
		}
	}
	if rest, _ := w.Drain(); w.Len() != 0 || testutil.ToFloat64(w.size) != 0 || len(rest) != 0 {
		t.Fatal("Drain did not empty the window")
	}
	if _, err := NewWindow(0, prometheus.NewRegistry()); err == nil {
		t.Fatal("a zero window was accepted")
	}
}

// TestWindowKeepsEverythingWhileToldTo: while Kafka is out of reach the
// window forgets nothing by age, nor for a window's age after; then the
// next match expires what is older than the window.
func TestWindowKeepsEverythingWhileToldTo(t *testing.T) {
	w, err := NewWindow(10*time.Second, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1000, 0)
	w.now = func() time.Time { return clock }
	ctx := context.Background()
	w.Keep(true)
	for id := int64(1); id <= 60; id++ { // one a second for a minute
		_ = w.Publish(ctx, match.Match{ID: id})
		clock = clock.Add(time.Second)
	}
	if w.Len() != 60 {
		t.Fatalf("kept %d of 60 matches over six windows", w.Len())
	}
	w.Keep(false) // at 1060
	clock = clock.Add(9 * time.Second)
	_ = w.Publish(ctx, match.Match{ID: 61})
	if w.Len() != 61 {
		t.Fatalf("9 s after keeping ended the window holds %d of 61 matches, want all (a window's age after)", w.Len())
	}
	clock = clock.Add(2 * time.Second) // 1071
	_ = w.Publish(ctx, match.Match{ID: 62})
	got, oldest := w.Drain()
	if len(got) != 2 || got[0].ID != 61 || !oldest.Equal(time.Unix(1069, 0)) {
		t.Fatalf("a window's age after keeping ended: %d matches from %d (arrived %s), want 2 from 61 (%s)", len(got), got[0].ID, oldest, time.Unix(1069, 0))
	}
}
