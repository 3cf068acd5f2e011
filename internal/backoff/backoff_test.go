package backoff

import (
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
