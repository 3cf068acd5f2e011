package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// firstID is the first match ID a load generator sends; IDs then increase
// by one. It is in the range of real Dota 2 match IDs.
const firstID int64 = 8_000_000_000

// connectTimeout bounds how long the service may take to connect to the
// load generator.
const connectTimeout = 30 * time.Second

// stopTimeout bounds the service's exit after SIGTERM (SHUTDOWN_TIMEOUT is
// 30 s).
const stopTimeout = 45 * time.Second

// scenarioResult is what one run of the service against one load measured.
type scenarioResult struct {
	n          int
	throughput float64       // matches per second, first send to last consume
	p50        time.Duration // send-to-consume latency percentiles
	p99        time.Duration
	max        time.Duration
	peakRSS    int64   // bytes
	cpuSeconds float64 // user + system, over the process's life
	// Measured from just before the first frame is sent to just after
	// the last record is consumed (the window), so that start-up and
	// shutdown are not counted: the subject's CPU seconds, voluntary
	// context switches, and the window's length in seconds.
	windowCPU     float64
	windowWakeups int64
	window        float64
	// benchCPU is the CPU time this process (load generator, consumer,
	// and the kfake broker if used) spent during the scenario.
	benchCPU   float64
	wall       float64 // seconds, first send to last consume
	duplicates int
}

// bench holds what every scenario shares.
type bench struct {
	bin     string
	dir     string // temporary directory of this benchmark
	envFile string // an empty settings file
	broker  *broker
	mode    string
	timeout time.Duration
	seq     int

	cpuProfile  string // file for a CPU profile of the first run of profileOf
	memProfile  string // file for a heap profile of the first run of profileOf
	trace       string // file for an execution trace of the first run of profileOf
	env         []string
	profileSecs int
	profileOf   string // the scenario label profiled: "full" or "rate<N>"
	// pipelineWarmup is how long a pipeline has, once it has connected
	// to the load generator, to connect to Kafka before frames are sent.
	pipelineWarmup time.Duration
}

// Environment variables a pipeline run with -pipeline is given.
const (
	envStreamURL = "BENCH_STREAM_URL" // the load generator's WebSocket URL
	envBrokers   = "BENCH_BROKERS"    // the seed brokers, host:port,...
	envTopic     = "BENCH_TOPIC"      // the topic to produce to
)

// runScenario runs the service once against a fresh topic and a load
// generator sending n frames at rate per second (0: full speed), and
// measures it. With a pipeline, it runs that shell command instead of the
// service.
func (b *bench) runScenario(ctx context.Context, label string, n, rate int, pipeline string) (scenarioResult, error) {
	b.seq++
	res := scenarioResult{n: n}
	topic, err := b.broker.newTopic(ctx, label)
	if err != nil {
		return res, err
	}
	selfBefore := selfCPU()
	base := time.Now()
	g, err := newLoadGen(firstID, n, rate, base)
	if err != nil {
		return res, err
	}
	defer g.Close()
	g.closeWhenSent = pipeline != ""
	port, err := freePort()
	if err != nil {
		return res, err
	}
	spool := filepath.Join(b.dir, "spool-"+strconv.Itoa(b.seq))
	if err := os.Mkdir(spool, 0o755); err != nil {
		return res, fmt.Errorf("spool dir: %w", err)
	}

	// The consumer starts first, so that it is polling when records land.
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type consumed struct {
		d   *delivery
		err error
	}
	results := make(chan consumed, 1)
	warm := make(chan struct{})
	go func() {
		d, err := consume(cctx, b.broker.addrs, topic, firstID, n, base, warm)
		results <- consumed{d, err}
	}()
	// A first record, read back before the service starts: the consumer's
	// own start-up (and a fresh broker's) is then not counted as latency.
	if err := b.broker.warmUp(ctx, topic, warm); err != nil {
		cancel(err)
		<-results
		return res, err
	}

	brokers := strings.Join(b.broker.addrs, ",")
	argv := []string{b.bin}
	env := []string{
		"KAFKA_BOOTSTRAP_SERVERS=" + brokers,
		"KAFKA_PUBLISH_TOPIC=" + topic,
		"OPENDOTA_STREAM_URL=" + g.url,
		"API_HOST=127.0.0.1",
		"API_PORT=" + strconv.Itoa(port),
		"ENV_FILE=" + b.envFile,
		"SPOOL_DIR=" + spool,
		"SPOOL_MODE=" + b.mode,
		"LOG_LEVEL=WARNING",
		"API_PPROF=true",
	}
	env = append(env, b.env...)
	if pipeline != "" {
		argv = []string{"sh", "-c", pipeline}
		env = []string{envStreamURL + "=" + g.url, envBrokers + "=" + brokers, envTopic + "=" + topic}
	}
	svc, err := startService(argv, env)
	if err != nil {
		cancel(err)
		<-results
		return res, err
	}
	defer svc.kill()
	// Send once the service says it is ready (Kafka reachable, producer
	// ID loaded, stream connected), or a pipeline has connected and had
	// its warm-up. The window's CPU is counted from here.
	type start struct {
		at time.Time
		u  procUsage
	}
	began := make(chan start, 1)
	go func() {
		if pipeline == "" {
			if err := waitReady(ctx, port, svc, connectTimeout); err != nil {
				cancel(err)
				return
			}
		} else {
			select {
			case <-g.connected:
			case <-cctx.Done():
				return
			}
			select {
			case <-time.After(b.pipelineWarmup):
			case <-cctx.Done():
				return
			}
		}
		u, err := svc.usage()
		if err != nil {
			cancel(err)
			return
		}
		began <- start{time.Now(), u}
		g.Begin()
	}()
	profiled := make(chan error, 3)
	profiles := 0
	// fetch writes the service's /debug/pprof/<what> to *file, after delay
	// from when the service connects; one of each per benchmark.
	fetch := func(file *string, what string, delay time.Duration) {
		if label != b.profileOf || pipeline != "" || *file == "" {
			return
		}
		name := *file
		*file = ""
		profiles++
		go func() {
			select {
			case <-g.connected:
			case <-svc.exited:
				profiled <- nil
				return
			}
			select {
			case <-time.After(delay):
				profiled <- fetchProfile(ctx, port, what, name)
			case <-svc.exited:
				profiled <- nil
			}
		}()
	}
	secs := strconv.Itoa(b.profileSecs)
	fetch(&b.cpuProfile, "profile?seconds="+secs, 0)
	fetch(&b.trace, "trace?seconds="+secs, 0)
	fetch(&b.memProfile, "heap", time.Second)

	// The watcher ends consumption early when the service dies (a
	// pipeline: before the stream was all sent), never
	// connects, or the last IDs are late by more than b.timeout.
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		connect := time.NewTimer(connectTimeout)
		defer connect.Stop()
		var late <-chan time.Time
		connected, sent, exited := g.connected, g.done, svc.exited
		for {
			select {
			case <-stopWatch:
				return
			case <-exited:
				if pipeline != "" && sent == nil {
					// A pipeline ends itself once the stream has closed; its
					// last records may still be on their way to the
					// consumer, which has until late.
					exited = nil
					continue
				}
				cancel(fmt.Errorf("service exited early (%v); output:\n%s", svc.waitErr, svc.out))
				return
			case <-connected:
				connected = nil
				connect.Stop()
			case <-connect.C:
				cancel(fmt.Errorf("service did not connect to the stream within %v", connectTimeout))
				return
			case <-sent:
				sent = nil
				t := time.NewTimer(b.timeout)
				defer t.Stop()
				late = t.C
			case <-late:
				cancel(fmt.Errorf("timed out %v after the last frame was sent", b.timeout))
				return
			}
		}
	}()
	r := <-results
	// The window ends here for the service. A pipeline ends itself once
	// the load generator has closed the stream; its window ends when it
	// exits, and its CPU is what wait4(2) reports for it and the
	// children it waited for.
	var end procUsage
	var endErr error
	ended := time.Now()
	if pipeline == "" {
		end, endErr = svc.usage()
	}
	close(stopWatch)
	<-watchDone
	if r.err != nil {
		return res, fmt.Errorf("%s: %w", label, r.err)
	}
	<-g.done
	if g.sendErr != nil {
		return res, fmt.Errorf("%s: load generator: %w", label, g.sendErr)
	}
	for range profiles {
		if err := <-profiled; err != nil {
			return res, fmt.Errorf("%s: profile: %w", label, err)
		}
	}
	st := <-began // sent, since every frame was
	if pipeline == "" {
		if endErr != nil {
			return res, fmt.Errorf("%s: usage: %w", label, endErr)
		}
		if err := svc.stop(stopTimeout); err != nil {
			return res, fmt.Errorf("%s: %w", label, err)
		}
	} else {
		select {
		case <-svc.exited:
		case <-time.After(stopTimeout):
			svc.kill()
			return res, fmt.Errorf("%s: the pipeline did not exit within %v of the stream's close; output:\n%s", label, stopTimeout, svc.out)
		}
		if svc.waitErr != nil {
			return res, fmt.Errorf("%s: pipeline: %w; output:\n%s", label, svc.waitErr, svc.out)
		}
		if end, err = svc.exitUsage(); err != nil {
			return res, fmt.Errorf("%s: %w", label, err)
		}
		end.peakRSS = st.u.peakRSS
		if svc.exitedAt.After(ended) {
			ended = svc.exitedAt
		}
	}
	u := end

	d := r.d
	res.benchCPU = selfCPU() - selfBefore
	res.wall = time.Duration(d.last - g.sent[0]).Seconds()
	res.throughput = float64(n) / res.wall
	res.peakRSS = u.peakRSS
	res.cpuSeconds = u.cpuSeconds
	res.windowCPU = end.cpuSeconds - st.u.cpuSeconds
	res.windowWakeups = end.wakeups - st.u.wakeups
	res.window = ended.Sub(st.at).Seconds()
	res.duplicates = d.duplicates
	lat := make([]int64, n)
	for i := range lat {
		lat[i] = d.recv[i] - g.sent[i]
	}
	slices.Sort(lat)
	res.p50 = time.Duration(percentile(lat, 0.50))
	res.p99 = time.Duration(percentile(lat, 0.99))
	res.max = time.Duration(lat[n-1])
	return res, nil
}

// percentile returns the nearest-rank p-th percentile of sorted values.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// fetchProfile writes the service's /debug/pprof/ profile named by what
// to file.
func fetchProfile(ctx context.Context, port int, what, file string) error {
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/debug/pprof/" + what
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// waitReady polls the service's /api/v1/ready until it answers 200, the
// service exits, or timeout passes.
func waitReady(ctx context.Context, port int, svc *service, timeout time.Duration) error {
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/ready"
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service not ready within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-svc.exited:
			return fmt.Errorf("service exited before it was ready (%v); output:\n%s", svc.waitErr, svc.out)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
