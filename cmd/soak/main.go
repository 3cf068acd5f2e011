// Command soak runs the service for a long time under periodic network
// faults and reports whether anything grows: two instances of it, one
// reading a live WebSocket stream at -rate matches a second (with the
// spool), one running the exactly-once Steam scan of a sequence growing
// -steam-rate matches a second, both beside an in-process three-broker
// Kafka cluster. Every link, to each broker and to each source, goes
// through a fault proxy, and every -fault-every one fault of the network
// list (latency of 0.5 to 2 s, 10 KB/s, a black hole on Kafka, a black
// hole on the sources, resets, 1-byte slices) holds for -fault-for.
//
// Just before each fault, when the last one has healed, it takes a
// checkpoint of each instance: RSS, Go heap, goroutines, open file
// descriptors, spool size, and what it committed to Kafka against what
// its source sent. It prints the checkpoints at the start, after -warmup
// and at the end, and the slope of each figure per hour over the
// checkpoints after warm-up (least squares). It exits 1 if a figure grew
// past its bound over the run (see growthBounds), if an instance exited,
// or if what it committed does not add up.
//
// Usage:
//
//	go run ./cmd/soak [-duration 1h] [-warmup 5m] [-rate 100] [-steam-rate 20] [-fault-every 2m] [-fault-for 30s]
//
// It builds ./cmd/ingestion-service first.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dota-data/ingestion-service/internal/backoff"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// options are the command line's settings.
type options struct {
	duration, warmup     time.Duration
	rate, steamRate      int
	faultEvery, faultFor time.Duration
}

func parse(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", time.Hour, "how long to run")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Minute, "checkpoints before this are not in the slopes and growth")
	fs.IntVar(&o.rate, "rate", 100, "the live stream's matches a second")
	fs.IntVar(&o.steamRate, "steam-rate", 20, "the Steam sequence's growth, matches a second")
	fs.DurationVar(&o.faultEvery, "fault-every", 2*time.Minute, "a fault starts this often")
	fs.DurationVar(&o.faultFor, "fault-for", 30*time.Second, "each fault holds this long")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.duration <= 0 || o.warmup < 0 || o.warmup >= o.duration:
		return o, fmt.Errorf("-warmup %s must be shorter than -duration %s", o.warmup, o.duration)
	case o.rate <= 0 || o.steamRate <= 0:
		return o, fmt.Errorf("-rate and -steam-rate must be positive")
	case o.faultFor <= 0 || o.faultEvery <= o.faultFor:
		return o, fmt.Errorf("-fault-every %s must be longer than -fault-for %s", o.faultEvery, o.faultFor)
	case o.duration < 3*o.faultEvery:
		return o, fmt.Errorf("-duration %s leaves fewer than three checkpoints at -fault-every %s", o.duration, o.faultEvery)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parse(args, os.Stderr)
	if err != nil {
		return err
	}
	r, err := startRig(ctx, o)
	if err != nil {
		return err
	}
	defer r.close()
	fmt.Fprintf(stdout, "soak: %s, a checkpoint and then a fault every %s (each held %s), warm-up %s; a stream at %d/s, a Steam sequence growing %d/s\n",
		o.duration, o.faultEvery, o.faultFor, o.warmup, o.rate, o.steamRate)
	began := time.Now()
	faults := faultList()
	var points []checkpoint
	for i := 0; ; i++ {
		if err := r.alive(); err != nil {
			return err
		}
		cp, err := r.checkpoint(ctx, time.Since(began))
		if err != nil {
			return err
		}
		points = append(points, cp)
		fmt.Fprintln(stdout, cp.line())
		if time.Since(began)+o.faultEvery > o.duration {
			break
		}
		f := faults[i%len(faults)]
		if err := r.fault(ctx, f, o.faultFor); err != nil {
			return err
		}
		if !backoff.Wait(ctx, o.faultEvery-o.faultFor) {
			return ctx.Err()
		}
	}
	if err := r.drain(ctx); err != nil {
		return err
	}
	tallies, err := r.tally(ctx)
	if err != nil {
		return err
	}
	return report(stdout, o, points, tallies)
}
