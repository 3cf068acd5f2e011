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
	got := w.Drain()
	if len(got) != 2000 || got[0].ID != 3001 || got[1999].ID != 5000 || got[0].SeqNum != 3011 {
		t.Fatalf("Drain = %d matches from %+v to %+v; want 3001..5000", len(got), got[0], got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID != got[i-1].ID+1 {
			t.Fatalf("out of order at %d: %d after %d", i, got[i].ID, got[i-1].ID)
		}
	}
	if w.Len() != 0 || testutil.ToFloat64(w.size) != 0 || len(w.Drain()) != 0 {
		t.Fatal("Drain did not empty the window")
	}
	if _, err := NewWindow(0, prometheus.NewRegistry()); err == nil {
		t.Fatal("a zero window was accepted")
	}
}
