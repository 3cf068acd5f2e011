package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// runResult is one run of every scenario.
type runResult struct {
	full  scenarioResult
	rates []scenarioResult // in the order of options.rates
	// The same scenarios through -pipeline, when it is set.
	pipeFull  scenarioResult
	pipeRates []scenarioResult
	reader    float64 // bare WebSocket reader, frames/s
	producer  float64 // bare franz-go producer, records/s
}

// report is the benchmark's Markdown output.
type report struct {
	opts     options
	args     []string
	broker   string
	runs     []runResult
	duration time.Duration
}

// write prints the header and the table.
func (r report) write(w io.Writer) error {
	var b bytes.Buffer
	o := r.opts
	fmt.Fprintf(&b, "### Benchmark\n\n")
	fmt.Fprintf(&b, "- Machine: %d CPUs, %s, %s/%s\n", runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "- Go: %s\n", runtime.Version())
	fmt.Fprintf(&b, "- Broker: %s, topics of %d partitions\n", r.broker, partitions)
	fmt.Fprintf(&b, "- Service: SPOOL_MODE=%s, defaults otherwise (acks=all, idempotent, gzip, 10 ms linger, 16 KiB batches)\n", o.mode)
	fmt.Fprintf(&b, "- Command: `%s` (took %s)\n", commandLine(r.args), r.duration.Round(time.Second))
	fmt.Fprintf(&b, "- Figures: median of %d run(s), with min and max\n\n", len(r.runs))

	fmt.Fprintf(&b, "| Scenario | Metric | Median | Min | Max |\n|---|---|---:|---:|---:|\n")
	row := func(scenario, metric string, vals []float64, format func(float64) string) {
		lo, med, hi := stats(vals)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", scenario, metric, format(med), format(lo), format(hi))
	}
	pick := func(f func(runResult) float64) []float64 {
		out := make([]float64, len(r.runs))
		for i, rr := range r.runs {
			out[i] = f(rr)
		}
		return out
	}
	full := fmt.Sprintf("full speed, %s matches", thousands(float64(o.n)))
	row(full, "throughput (matches/s)", pick(func(rr runResult) float64 { return rr.full.throughput }), thousands)
	row("", "peak RSS (MiB)", pick(func(rr runResult) float64 { return float64(rr.full.peakRSS) / (1 << 20) }), fixed(1))
	row("", "CPU seconds per 100,000 matches", pick(func(rr runResult) float64 { return rr.full.cpuSeconds / float64(rr.full.n) * 1e5 }), fixed(2))
	row("", "CPU µs per match", pick(func(rr runResult) float64 { return rr.full.cpuSeconds / float64(rr.full.n) * 1e6 }), fixed(1))
	row("", "CPU µs per match, first frame to last record", pick(func(rr runResult) float64 { return rr.full.perMatch() }), fixed(2))
	row("", "load generator + consumer + broker CPU µs per match", pick(func(rr runResult) float64 { return rr.full.benchCPU / float64(rr.full.n) * 1e6 }), fixed(1))
	row("", "machine CPU busy (service + the rest), % of all CPUs", pick(func(rr runResult) float64 {
		return (rr.full.cpuSeconds + rr.full.benchCPU) / (rr.full.wall * float64(runtime.NumCPU())) * 100
	}), fixed(0))
	for i, rs := range o.rates {
		sc := fmt.Sprintf("%s matches/s for %d s", thousands(float64(rs.rate)), rs.seconds)
		ms := func(f func(scenarioResult) time.Duration) []float64 {
			return pick(func(rr runResult) float64 { return float64(f(rr.rates[i])) / float64(time.Millisecond) })
		}
		row(sc, "latency p50 (ms)", ms(func(s scenarioResult) time.Duration { return s.p50 }), fixed(1))
		row("", "latency p99 (ms)", ms(func(s scenarioResult) time.Duration { return s.p99 }), fixed(1))
		row("", "latency max (ms)", ms(func(s scenarioResult) time.Duration { return s.max }), fixed(1))
		row("", "peak RSS (MiB)", pick(func(rr runResult) float64 { return float64(rr.rates[i].peakRSS) / (1 << 20) }), fixed(1))
		row("", "CPU ms per second", pick(func(rr runResult) float64 { return rr.rates[i].cpuPerSecond() }), fixed(2))
		row("", "wake-ups per second", pick(func(rr runResult) float64 { return rr.rates[i].wakeupsPerSecond() }), thousands)
	}
	row("ceiling: bare WebSocket reader", "frames/s", pick(func(rr runResult) float64 { return rr.reader }), thousands)
	row("ceiling: bare franz-go producer", "records/s", pick(func(rr runResult) float64 { return rr.producer }), thousands)
	row("service vs lower ceiling", "fraction of min(reader, producer)",
		pick(func(rr runResult) float64 { return rr.full.throughput / min(rr.reader, rr.producer) }), fixed(2))
	// Each ceiling has the machine to itself; the service does both halves
	// on the same CPUs, so their serial combination bounds it more tightly.
	row("ceilings in series", "1 / (1/reader + 1/producer), matches/s",
		pick(func(rr runResult) float64 { return 1 / (1/rr.reader + 1/rr.producer) }), thousands)
	row("service vs ceilings in series", "fraction",
		pick(func(rr runResult) float64 { return rr.full.throughput * (1/rr.reader + 1/rr.producer) }), fixed(2))

	if o.pipeline != "" {
		r.comparison(&b, pick)
	}

	dups := 0
	for _, rr := range r.runs {
		dups += rr.full.duplicates + rr.pipeFull.duplicates
		for _, s := range append(rr.rates, rr.pipeRates...) {
			dups += s.duplicates
		}
	}
	fmt.Fprintf(&b, "\nEvery run delivered every ID with the right key and value: 0 missing, %d duplicates.\n", dups)
	fmt.Fprintf(&b, "Throughput is matches / (last record consumed − first frame sent); latency is each match's consume time − send time.\n")
	if _, med, _ := stats(pick(func(rr runResult) float64 { return rr.full.throughput / rr.reader })); med > 1 {
		fmt.Fprintf(&b, "The service outran the bare reader, which is then no ceiling: the generator sends one write per frame, "+
			"and a reader that always waits makes each write wake it, slowing the generator; "+
			"the busier service is woken less. The generator bounds every full-speed figure here.\n")
	}
	fmt.Fprintf(&b, "Load generator, consumer and the kfake broker (if used) run in the benchmark's process, on the same CPUs as the service.\n")
	_, err := w.Write(b.Bytes())
	return err
}

// comparison prints the service against the pipeline, scenario by
// scenario: the CPU each burnt, their ratio (the median of the runs'
// ratios), wake-ups and p99 latency.
func (r report) comparison(b *bytes.Buffer, pick func(func(runResult) float64) []float64) {
	o := r.opts
	fmt.Fprintf(b, "\n#### The service against the pipeline\n\n")
	fmt.Fprintf(b, "Pipeline: `%s`, run by `sh -c` under the same load generator, broker and consumer, each scenario right after the service's. "+
		"CPU is the whole process group's, from the first frame sent to the last record consumed; "+
		"wake-ups are its threads' voluntary context switches over the same window.\n\n", o.pipeline)
	fmt.Fprintf(b, "| Scenario | CPU: service | CPU: pipeline | service / pipeline | wake-ups/s: service | wake-ups/s: pipeline | p99 ms: service | p99 ms: pipeline |\n")
	fmt.Fprintf(b, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	med := func(vals []float64) float64 { _, m, _ := stats(vals); return m }
	ratio := func(f func(runResult) float64, g func(runResult) float64) string {
		lo, m, hi := stats(pick(func(rr runResult) float64 { return f(rr) / g(rr) }))
		return fmt.Sprintf("%.2f (%.2f to %.2f)", m, lo, hi)
	}
	for i, rs := range o.rates {
		svc := func(rr runResult) float64 { return rr.rates[i].cpuPerSecond() }
		pipe := func(rr runResult) float64 { return rr.pipeRates[i].cpuPerSecond() }
		fmt.Fprintf(b, "| %s/s for %d s | %.2f ms/s | %.2f ms/s | %s | %s | %s | %.1f | %.1f |\n",
			thousands(float64(rs.rate)), rs.seconds, med(pick(svc)), med(pick(pipe)), ratio(svc, pipe),
			thousands(med(pick(func(rr runResult) float64 { return rr.rates[i].wakeupsPerSecond() }))),
			thousands(med(pick(func(rr runResult) float64 { return rr.pipeRates[i].wakeupsPerSecond() }))),
			med(pick(func(rr runResult) float64 { return rr.rates[i].p99.Seconds() * 1e3 })),
			med(pick(func(rr runResult) float64 { return rr.pipeRates[i].p99.Seconds() * 1e3 })))
	}
	svc := func(rr runResult) float64 { return rr.full.perMatch() }
	pipe := func(rr runResult) float64 { return rr.pipeFull.perMatch() }
	fmt.Fprintf(b, "| full speed, %s | %.2f µs/match | %.2f µs/match | %s | | | | |\n",
		thousands(float64(o.n)), med(pick(svc)), med(pick(pipe)), ratio(svc, pipe))
	fmt.Fprintf(b, "\nThroughput at full speed: service %s matches/s, pipeline %s.\n",
		thousands(med(pick(func(rr runResult) float64 { return rr.full.throughput }))),
		thousands(med(pick(func(rr runResult) float64 { return rr.pipeFull.throughput }))))
}

// cpuPerSecond is the subject's CPU milliseconds per second of the window.
func (s scenarioResult) cpuPerSecond() float64 { return s.windowCPU / s.window * 1e3 }

// wakeupsPerSecond is the subject's voluntary context switches per second
// of the window.
func (s scenarioResult) wakeupsPerSecond() float64 { return float64(s.windowWakeups) / s.window }

// perMatch is the subject's CPU microseconds per match over the window.
func (s scenarioResult) perMatch() float64 { return s.windowCPU / float64(s.n) * 1e6 }

// stats returns the minimum, median and maximum of vals.
func stats(vals []float64) (lo, med, hi float64) {
	s := slices.Clone(vals)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return s[0], med, s[n-1]
}

// fixed formats with the given number of decimals.
func fixed(decimals int) func(float64) string {
	return func(v float64) string { return strconv.FormatFloat(v, 'f', decimals, 64) }
}

// thousands formats v rounded to an integer, with comma separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// commandLine is the command that reproduces this report.
func commandLine(args []string) string {
	parts := []string{"go", "run", "./cmd/benchmark"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$`\\") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
