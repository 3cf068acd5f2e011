// Command benchmark measures the ingestion service end to end and prints a
// Markdown table to paste in docs/performance.md.
//
// It builds the service, starts a Kafka broker (in-process kfake, or a real
// cluster with -brokers) and a WebSocket load generator on loopback, runs
// the service binary against them, and consumes the topic to time every
// match from the frame's send to its record's consumption. Scenarios: full
// speed (throughput, peak RSS, CPU per match), fixed rates (latency), and
// two ceilings measured in the same run: a bare WebSocket reader and a bare
// franz-go producer with the service's settings.
//
// Usage:
//
//	go run ./cmd/benchmark                 # defaults: 3 runs, 200,000 matches, 1,000/s and 10,000/s for 10 s
//	go run ./cmd/benchmark -quick          # smoke run: 1 run, 20,000 matches, rates for 3 s
//	go run ./cmd/benchmark -brokers host:9092 -mode disk
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
}

// options are the command-line settings.
type options struct {
	n           int
	runs        int
	rates       []int
	rateSeconds int
	mode        string
	brokers     []string
	timeout     time.Duration
	quiet       bool
	cpuProfile  string
	memProfile  string
	profileSecs int
}

// parseFlags reads the command line.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("benchmark", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 200_000, "matches sent at full speed per run")
	fs.IntVar(&o.runs, "runs", 3, "runs of every scenario; the report gives medians")
	rates := fs.String("rates", "1000,10000", "fixed rates to measure latency at, matches/s, comma-separated")
	fs.IntVar(&o.rateSeconds, "rate-seconds", 10, "seconds each fixed rate lasts")
	fs.StringVar(&o.mode, "mode", "overflow", "SPOOL_MODE of the service: overflow, disk or memory")
	brokers := fs.String("brokers", "", "real Kafka seed brokers, host:port,...; empty runs an in-process kfake broker")
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "how long every ID may take to arrive after the last frame is sent")
	quick := fs.Bool("quick", false, "smoke run: -n 20000 -runs 1 -rate-seconds 3 unless given")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the service during the first full-speed run to this file (go tool pprof reads it)")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile of the service, taken one second into the first full-speed run, to this file")
	fs.IntVar(&o.profileSecs, "profile-seconds", 3, "length of the -cpuprofile profile, from when the service connects; choose -n to keep it busy that long")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["n"] {
			o.n = 20_000
		}
		if !set["runs"] {
			o.runs = 1
		}
		if !set["rate-seconds"] {
			o.rateSeconds = 3
		}
	}
	for _, s := range strings.Split(*rates, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		r, err := strconv.Atoi(s)
		if err != nil || r <= 0 {
			return o, fmt.Errorf("-rates: %q is not a positive integer", s)
		}
		o.rates = append(o.rates, r)
	}
	if *brokers != "" {
		o.brokers = strings.Split(*brokers, ",")
	}
	switch {
	case o.n <= 0:
		return o, errors.New("-n must be positive")
	case o.runs <= 0:
		return o, errors.New("-runs must be positive")
	case o.rateSeconds <= 0:
		return o, errors.New("-rate-seconds must be positive")
	case o.profileSecs <= 0:
		return o, errors.New("-profile-seconds must be positive")
	case o.timeout <= 0:
		return o, errors.New("-timeout must be positive")
	case !slices.Contains([]string{"overflow", "disk", "memory"}, o.mode):
		return o, fmt.Errorf("-mode %q: want overflow, disk or memory", o.mode)
	}
	return o, nil
}

// run is the whole command: it runs every scenario -runs times and writes
// the report to stdout. Progress goes to stderr unless -quiet.
func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	progress := io.Writer(os.Stderr)
	if o.quiet {
		progress = io.Discard
	}
	started := time.Now()
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	root, err := findModuleRoot(wd)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ingestion-benchmark-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	fmt.Fprintln(progress, "building ./cmd/ingestion-service")
	bin, err := buildService(ctx, root, dir)
	if err != nil {
		return err
	}
	envFile := filepath.Join(dir, "empty.env")
	if err := os.WriteFile(envFile, nil, 0o644); err != nil {
		return fmt.Errorf("env file: %w", err)
	}
	br, err := startBroker(o.brokers)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := br.close(context.Background()); cerr != nil && err == nil {
			err = cerr
		}
	}()
	b := &bench{bin: bin, dir: dir, envFile: envFile, broker: br, mode: o.mode, timeout: o.timeout,
		cpuProfile: o.cpuProfile, memProfile: o.memProfile, profileSecs: o.profileSecs}

	runs := make([]runResult, 0, o.runs)
	for i := range o.runs {
		var rr runResult
		fmt.Fprintf(progress, "run %d/%d: full speed, %d matches\n", i+1, o.runs, o.n)
		if rr.full, err = b.runScenario(ctx, "full", o.n, 0); err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		for _, rate := range o.rates {
			fmt.Fprintf(progress, "run %d/%d: %d matches/s for %d s\n", i+1, o.runs, rate, o.rateSeconds)
			res, err := b.runScenario(ctx, "rate"+strconv.Itoa(rate), rate*o.rateSeconds, rate)
			if err != nil {
				return fmt.Errorf("run %d: %w", i+1, err)
			}
			rr.rates = append(rr.rates, res)
		}
		fmt.Fprintf(progress, "run %d/%d: ceilings\n", i+1, o.runs)
		if rr.reader, err = bareReader(ctx, firstID, o.n); err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		topic, err := br.newTopic(ctx, "producer")
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		if rr.producer, err = bareProducer(ctx, br.addrs, topic, firstID, o.n); err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		runs = append(runs, rr)
	}
	rep := report{
		opts:     o,
		args:     args,
		broker:   br.kind,
		runs:     runs,
		duration: time.Since(started),
	}
	return rep.write(stdout)
}
