package health

import (
	"testing"
	"time"
)

func TestStateKeepsSinceAcrossRepeatedReports(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return clock }
	s := newState("not connected yet", now)

	if got := s.Status(); got.Up || got.Detail != "not connected yet" || !got.Since.Equal(clock) {
		t.Fatalf("initial status = %+v", got)
	}

	clock = clock.Add(time.Second)
	s.Set(true, "connected")
	upSince := clock
	clock = clock.Add(time.Second)
	s.Set(true, "still connected")
	got := s.Status()
	if !got.Up || got.Detail != "still connected" || !got.Since.Equal(upSince) {
		t.Fatalf("after repeated up: %+v, want up since %v", got, upSince)
	}

	clock = clock.Add(time.Second)
	s.Set(false, "closed by peer")
	got = s.Status()
	if got.Up || got.Detail != "closed by peer" || !got.Since.Equal(clock) {
		t.Fatalf("after down: %+v, want down since %v", got, clock)
	}
}
