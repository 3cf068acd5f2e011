package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// figure is one measured quantity of an instance.
type figure struct {
	name  string
	unit  string
	of    func(figures) float64
	bound float64 // the most it may grow over the run after warm-up
}

// growthBounds are the figures a soak watches and how much each may grow,
// from the first third of the checkpoints after warm-up to the last third
// (the medians of each): a leak grows without end, where these bounds
// leave room for a heap that settles and a scheduler's noise.
var growthBounds = []figure{
	{"RSS", "MiB", func(f figures) float64 { return f.rssMiB }, 8},
	{"Go heap", "MiB", func(f figures) float64 { return f.heapMiB }, 8},
	{"goroutines", "", func(f figures) float64 { return f.goroutines }, 25},
	{"open fds", "", func(f figures) float64 { return f.fds }, 10},
	{"spool", "KiB", func(f figures) float64 { return f.spoolKiB }, 256},
}

// report prints the checkpoints at the start, after warm-up and at the
// end, each figure's slope and growth after warm-up, and the tallies, and
// returns an error naming every bound broken.
func report(w io.Writer, o options, points []checkpoint, t tallies) error {
	after := slices.IndexFunc(points, func(c checkpoint) bool { return c.at >= o.warmup })
	if after < 0 || len(points)-after < 3 {
		return fmt.Errorf("%d checkpoints after the warm-up of %s, want at least 3: run longer", max(0, len(points)-after), o.warmup)
	}
	steady := points[after:]
	fmt.Fprintf(w, "\nat the start:\n%s\nafter warm-up:\n%s\nat the end:\n%s\n", points[0].line(), steady[0].line(), steady[len(steady)-1].line())
	var broken []string
	for _, inst := range []struct {
		name string
		of   func(checkpoint) figures
	}{{"stream", func(c checkpoint) figures { return c.live }}, {"steam", func(c checkpoint) figures { return c.scan }}} {
		var parts []string
		for _, f := range growthBounds {
			xs, ys := make([]float64, len(steady)), make([]float64, len(steady))
			for i, c := range steady {
				xs[i], ys[i] = c.at.Hours(), f.of(inst.of(c))
			}
			slope, growth := slopeOf(xs, ys), growthOf(ys)
			parts = append(parts, fmt.Sprintf("%s %+.1f%s/h (grew %+.1f)", f.name, slope, f.unit, growth))
			if growth > f.bound {
				broken = append(broken, fmt.Sprintf("the %s instance's %s grew by %.1f%s after warm-up (bound %.0f%s)", inst.name, f.name, growth, f.unit, f.bound, f.unit))
			}
		}
		fmt.Fprintf(w, "%s instance, after warm-up: %s\n", inst.name, strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "stream: sent %d, accepted %d, in Kafka %d distinct (%d duplicates); lost on the way (sent to a connection a fault broke): %d\n",
		t.streamSent, t.streamAccepted, t.streamDistinct, t.streamDuplicates, t.streamSent-int64(t.streamAccepted))
	fmt.Fprintf(w, "steam: %s\n", t.steam)
	if t.streamDistinct != t.streamAccepted || t.streamDuplicates != 0 {
		broken = append(broken, fmt.Sprintf("the stream instance accepted %d matches and Kafka holds %d (%d duplicates)", t.streamAccepted, t.streamDistinct, t.streamDuplicates))
	}
	if !t.steamExact {
		broken = append(broken, "the Steam topics do not hold every listed match exactly once")
	}
	if len(broken) > 0 {
		return errors.New(strings.Join(broken, "; "))
	}
	fmt.Fprintf(w, "soak passed: %s, nothing grew past its bound\n", o.duration.Round(time.Second))
	return nil
}

// slopeOf returns the least-squares slope of ys over xs.
func slopeOf(xs, ys []float64) float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy = sx+xs[i], sy+ys[i]
		sxx, sxy = sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// growthOf returns the median of the last third of ys less the median of
// the first third.
func growthOf(ys []float64) float64 {
	third := max(1, len(ys)/3)
	return median(ys[len(ys)-third:]) - median(ys[:third])
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
