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
// At the fixed rates it also reports the CPU the service burns per second
// and its wake-ups per second (voluntary context switches), counted from
// the first frame sent to the last record consumed.
//
// -pipeline runs a shell command as a second subject under the same load
// generator, broker and consumer, one scenario after the service's, and
// the report compares the two. The command reads the load generator's
// frames from the WebSocket URL in $BENCH_STREAM_URL and produces each
// match to the topic $BENCH_TOPIC on the brokers $BENCH_BROKERS
// (host:port,...), keyed by its decimal ID, with the frame as the value.
//
// Usage:
//
//	go run ./cmd/benchmark                 # defaults: 3 runs, 200,000 matches, 20/s for 60 s, 1,000/s for 20 s, 10,000/s for 10 s
//	go run ./cmd/benchmark -quick          # smoke run: 1 run, 20,000 matches, 1,000/s and 10,000/s for 3 s
//	go run ./cmd/benchmark -brokers host:9092 -mode disk
//	go run ./cmd/benchmark -pipeline "sh scripts/websocat-kcat.sh"
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
	rates       []rateSpec
	rateSeconds int
	pipeline    string
	warmup      time.Duration
	profileOf   string
	mode        string
	brokers     []string
	timeout     time.Duration
	quiet       bool
	cpuProfile  string
	memProfile  string
	trace       string
	env         []string // KEY=VALUE settings added to the service's environment
	profileSecs int
}

// parseFlags reads the command line.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("benchmark", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 200_000, "matches sent at full speed per run")
	fs.IntVar(&o.runs, "runs", 3, "runs of every scenario; the report gives medians")
	rates := fs.String("rates", "20:60,1000:20,10000:10", "fixed rates to measure latency and CPU at, matches/s, comma-separated; RATE:SECONDS sets how long one lasts")
	fs.IntVar(&o.rateSeconds, "rate-seconds", 10, "seconds a fixed rate lasts when -rates does not say")
	fs.StringVar(&o.pipeline, "pipeline", "", "a shell command to measure beside the service: it reads $"+envStreamURL+" and produces to $"+envTopic+" on $"+envBrokers)
	fs.DurationVar(&o.warmup, "pipeline-warmup", 2*time.Second, "how long the pipeline has after it connects to the load generator before frames are sent")
	fs.StringVar(&o.profileOf, "profile-scenario", "full", "the scenario -cpuprofile and -memprofile profile: full, or rate<N> for the rate N")
	fs.StringVar(&o.mode, "mode", "overflow", "SPOOL_MODE of the service: overflow, disk or memory")
	brokers := fs.String("brokers", "", "real Kafka seed brokers, host:port,...; empty runs an in-process kfake broker")
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "how long every ID may take to arrive after the last frame is sent")
	quick := fs.Bool("quick", false, "smoke run: -n 20000 -runs 1 -rate-seconds 3 unless given")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the service during the first run of -profile-scenario to this file (go tool pprof reads it)")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile of the service, taken one second into the first run of -profile-scenario, to this file")
	fs.StringVar(&o.trace, "trace", "", "write an execution trace of the service during the first run of -profile-scenario to this file (go tool trace reads it)")
	fs.IntVar(&o.profileSecs, "profile-seconds", 3, "length of the -cpuprofile profile and the -trace, from when the service connects; choose -n to keep it busy that long")
	fs.Func("env", "a KEY=VALUE setting for the service, added to the benchmark's own (repeatable), e.g. -env KAFKA_COMPRESSION=none", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("%q is not KEY=VALUE", v)
		}
		o.env = append(o.env, v)
		return nil
	})
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
		if !set["rates"] {
			*rates = "1000,10000"
		}
	}
	for _, s := range strings.Split(*rates, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		rs, err := parseRate(s, o.rateSeconds)
		if err != nil {
			return o, fmt.Errorf("-rates: %w", err)
		}
		o.rates = append(o.rates, rs)
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
	case o.warmup < 0:
		return o, errors.New("-pipeline-warmup must not be negative")
	case !slices.Contains([]string{"overflow", "disk", "memory"}, o.mode):
		return o, fmt.Errorf("-mode %q: want overflow, disk or memory", o.mode)
	}
	return o, nil
}

// rateSpec is one fixed-rate scenario.
type rateSpec struct {
	rate    int // matches per second
	seconds int // how long it lasts
}

// label names the scenario (as -profile-scenario does).
func (r rateSpec) label() string { return "rate" + strconv.Itoa(r.rate) }

// parseRate parses RATE or RATE:SECONDS; seconds is the default length.
func parseRate(s string, seconds int) (rateSpec, error) {
	rs, secs, hasSecs := strings.Cut(s, ":")
	r, err := strconv.Atoi(rs)
	if err != nil || r <= 0 {
		return rateSpec{}, fmt.Errorf("%q: the rate is not a positive integer", s)
	}
	if hasSecs {
		if seconds, err = strconv.Atoi(secs); err != nil || seconds <= 0 {
			return rateSpec{}, fmt.Errorf("%q: the seconds are not a positive integer", s)
		}
	}
	return rateSpec{rate: r, seconds: seconds}, nil
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
		cpuProfile: o.cpuProfile, memProfile: o.memProfile, trace: o.trace, env: o.env, profileSecs: o.profileSecs,
		profileOf: o.profileOf, pipelineWarmup: o.warmup}
	// scenario runs the service, and then the pipeline if there is one.
	scenario := func(label string, n, rate int) (svc, pipe scenarioResult, err error) {
		if svc, err = b.runScenario(ctx, label, n, rate, ""); err != nil {
			return svc, pipe, err
		}
		if o.pipeline != "" {
			fmt.Fprintf(progress, "  the same, through the pipeline\n")
			if pipe, err = b.runScenario(ctx, label, n, rate, o.pipeline); err != nil {
				return svc, pipe, fmt.Errorf("pipeline: %w", err)
			}
		}
		return svc, pipe, nil
	}

	runs := make([]runResult, 0, o.runs)
	for i := range o.runs {
		var rr runResult
		fmt.Fprintf(progress, "run %d/%d: full speed, %d matches\n", i+1, o.runs, o.n)
		if rr.full, rr.pipeFull, err = scenario("full", o.n, 0); err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		for _, rs := range o.rates {
			fmt.Fprintf(progress, "run %d/%d: %d matches/s for %d s\n", i+1, o.runs, rs.rate, rs.seconds)
			res, pipe, err := scenario(rs.label(), rs.rate*rs.seconds, rs.rate)
			if err != nil {
				return fmt.Errorf("run %d: %w", i+1, err)
			}
			rr.rates = append(rr.rates, res)
			rr.pipeRates = append(rr.pipeRates, pipe)
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
