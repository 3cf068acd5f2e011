package main

import (
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSlopeAndGrowth(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4, 5}
	for _, tc := range []struct {
		name         string
		ys           []float64
		slope, grown float64
	}{
		{"flat", []float64{30, 30, 30, 30, 30, 30}, 0, 0},
		{"a leak of 2 an hour", []float64{30, 32, 34, 36, 38, 40}, 2, 8},
		{"noise that settles", []float64{30, 35, 31, 34, 32, 33}, 0.26, 0},
	} {
		if got := slopeOf(xs, tc.ys); math.Abs(got-tc.slope) > 0.05 {
			t.Errorf("%s: slope %.2f, want %.2f", tc.name, got, tc.slope)
		}
		if got := growthOf(tc.ys); math.Abs(got-tc.grown) > 1e-9 {
			t.Errorf("%s: growth %.2f, want %.2f", tc.name, got, tc.grown)
		}
	}
}

// TestReportFailsOnGrowth: a figure that grows past its bound after
// warm-up, or topics that do not add up, fail the soak; a steady run
// passes.
func TestReportFailsOnGrowth(t *testing.T) {
	steady := figures{rssMiB: 30, heapMiB: 10, goroutines: 20, fds: 20}
	points := func(leak float64) []checkpoint {
		var out []checkpoint
		for i := range 9 {
			f := steady
			f.rssMiB += leak * float64(i)
			out = append(out, checkpoint{at: time.Duration(i) * time.Minute, live: f, scan: steady})
		}
		return out
	}
	good := tallies{streamAccepted: 100, streamDistinct: 100, streamSent: 100, steamExact: true}
	o := options{duration: 9 * time.Minute, warmup: 2 * time.Minute}
	if err := report(io.Discard, o, points(0), good); err != nil {
		t.Fatalf("a steady run: %v", err)
	}
	if err := report(io.Discard, o, points(3), good); err == nil || !strings.Contains(err.Error(), "stream instance's RSS grew") {
		t.Fatalf("RSS growing 3 MiB a checkpoint: %v, want it named", err)
	}
	lost := good
	lost.streamDistinct = 99
	if err := report(io.Discard, o, points(0), lost); err == nil {
		t.Fatal("an accepted match missing from Kafka passed")
	}
}

func TestParseRefusesNonsense(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "1m", "-warmup", "2m"},
		{"-fault-every", "10s", "-fault-for", "20s"},
		{"-rate", "0"},
		{"-duration", "3m", "-fault-every", "2m"},
	} {
		if _, err := parse(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := parse([]string{"-duration", "10m", "-warmup", "4m", "-fault-every", "1m", "-fault-for", "20s"}, io.Discard); err != nil {
		t.Errorf("CI's settings refused: %v", err)
	}
}
