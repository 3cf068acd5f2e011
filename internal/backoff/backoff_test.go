package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	tests := []struct {
		n           int
		least, most time.Duration
		ceiling     time.Duration // the delay is within [ceiling/2, ceiling]
	}{
		{0, 500 * time.Millisecond, 30 * time.Second, 500 * time.Millisecond},
		{1, 500 * time.Millisecond, 30 * time.Second, time.Second},
		{5, 500 * time.Millisecond, 30 * time.Second, 16 * time.Second},
		{6, 500 * time.Millisecond, 30 * time.Second, 30 * time.Second},
		{40, 500 * time.Millisecond, 30 * time.Second, 30 * time.Second}, // no overflow
		{62, time.Hour, 2 * time.Hour, 2 * time.Hour},
		{3, time.Second, 0, 0},
	}
	for _, tt := range tests {
		for range 200 {
			d := Delay(tt.n, tt.least, tt.most)
			if d < tt.ceiling/2 || d > tt.ceiling {
				t.Fatalf("Delay(%d, %s, %s) = %s, want within [%s, %s]", tt.n, tt.least, tt.most, d, tt.ceiling/2, tt.ceiling)
			}
		}
	}
}

func TestWait(t *testing.T) {
	if !Wait(context.Background(), time.Millisecond) || !Wait(context.Background(), 0) {
		t.Fatal("Wait with a live context reported false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Wait(ctx, time.Hour) || Wait(ctx, 0) {
		t.Fatal("Wait with an ended context reported true")
	}
	if time.Since(start) > time.Minute {
		t.Fatal("Wait did not return when its context ended")
	}
}
