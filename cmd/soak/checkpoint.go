package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/faultproxy"
)

// faultList is the faults a soak cycles through.
func faultList() []faultproxy.Scenario { return faultproxy.Scenarios() }

// fault holds f on the links for d, then heals them.
func (r *rig) fault(ctx context.Context, f faultproxy.Scenario, d time.Duration) error {
	for _, p := range r.kafka {
		p.Set(f.Kafka)
	}
	r.streamProxy.Set(f.Source)
	r.steamProxy.Set(f.Source)
	ok := backoff.Wait(ctx, d)
	for _, p := range append(r.kafka, r.streamProxy, r.steamProxy) {
		p.Heal()
	}
	if !ok {
		return ctx.Err()
	}
	return nil
}

// figures are one instance's at a checkpoint.
type figures struct {
	rssMiB, heapMiB   float64
	goroutines, fds   float64
	spoolKiB          float64
	published, source float64 // what it published; what its source sent (the stream's frames, the Steam sequence's matches)
	ready             bool
}

// checkpoint is the figures of both instances at one moment.
type checkpoint struct {
	at         time.Duration // since the start
	live, scan figures
}

// checkpoint reads both instances' figures.
func (r *rig) checkpoint(ctx context.Context, at time.Duration) (checkpoint, error) {
	cp := checkpoint{at: at}
	frames, _ := r.stream.Sent()
	var err error
	if cp.live, err = r.live.figures(float64(frames)); err != nil {
		return cp, err
	}
	cp.scan, err = r.scan.figures(float64(r.steam.Head() - r.steamFirst + 1))
	return cp, err
}

func (in *instance) figures(source float64) (figures, error) {
	m, err := in.metrics()
	if err != nil {
		return figures{}, err
	}
	rss, err := vmRSS(in.cmd.Process.Pid)
	if err != nil {
		return figures{}, err
	}
	return figures{
		rssMiB: rss / 1024, heapMiB: m["go_memstats_heap_inuse_bytes"] / (1 << 20),
		goroutines: m["go_goroutines"], fds: m["process_open_fds"], spoolKiB: m["ingestion_spool_bytes"] / 1024,
		published: m["ingestion_matches_published_total"], source: source, ready: in.ready(),
	}, nil
}

// vmRSS reads a process's resident set, in KiB.
func vmRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

func (c checkpoint) line() string {
	return fmt.Sprintf("%8s  stream: %s\n          steam:  %s", c.at.Round(time.Second), c.live, c.scan)
}

func (f figures) String() string {
	return fmt.Sprintf("RSS %5.1f MiB, heap %5.1f MiB, %4.0f goroutines, %3.0f fds, spool %6.1f KiB, published %8.0f of %8.0f sent, ready %v",
		f.rssMiB, f.heapMiB, f.goroutines, f.fds, f.spoolKiB, f.published, f.source, f.ready)
}

// drain stops the Steam sequence and waits for both instances to have
// published what they hold and to be ready.
func (r *rig) drain(ctx context.Context) error {
	close(r.stopGrowth)
	<-r.grown
	deadline := time.Now().Add(3 * time.Minute)
	for {
		lm, err := r.live.metrics()
		if err != nil {
			return err
		}
		sm, err := r.scan.metrics()
		if err != nil {
			return err
		}
		liveDone := lm["ingestion_spool_records"] == 0 && lm["ingestion_buffer_records"] == 0 && lm["ingestion_inflight_records"] == 0 &&
			lm["ingestion_matches_published_total"] >= lm["ingestion_matches_accepted_total"]
		head := float64(r.steam.Head())
		scanDone := sm["ingestion_steam_position"] >= head && sm["ingestion_steam_rescan_position"] >= head
		if liveDone && scanDone && r.live.ready() && r.scan.ready() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w within 3 minutes of the last checkpoint: stream instance holding %.0f in the spool, %.0f in memory, %.0f in flight; Steam instance at %.0f and %.0f, the head at %.0f",
				errNotCaughtUp, lm["ingestion_spool_records"], lm["ingestion_buffer_records"], lm["ingestion_inflight_records"],
				sm["ingestion_steam_position"], sm["ingestion_steam_rescan_position"], head)
		}
		if !backoff.Wait(ctx, time.Second) {
			return ctx.Err()
		}
	}
}

// tallies are what the topics hold at the end against the sources.
type tallies struct {
	streamAccepted, streamDistinct, streamDuplicates int
	streamSent                                       int64
	steam                                            string
	steamExact                                       bool
}

var acceptedRE = regexp.MustCompile(`"event":"Shutdown complete".*?"accepted":(\d+)`)

// tally stops both instances and reads the topics.
func (r *rig) tally(ctx context.Context) (tallies, error) {
	var t tallies
	for _, in := range []*instance{r.live, r.scan} {
		if err := in.stop(); err != nil {
			return t, fmt.Errorf("stop the %s instance: %w", in.name, err)
		}
	}
	b, err := os.ReadFile(r.live.log)
	if err != nil {
		return t, err
	}
	m := acceptedRE.FindSubmatch(b)
	if m == nil {
		return t, fmt.Errorf("no shutdown summary in %s", r.live.log)
	}
	t.streamAccepted, _ = strconv.Atoi(string(m[1]))
	t.streamSent, _ = r.stream.Sent()
	seen := map[string]int{}
	if err := r.eachRecord(ctx, r.streamTopic, func(rec *kgo.Record) { seen[string(rec.Key)]++ }); err != nil {
		return t, err
	}
	t.streamDistinct = len(seen)
	for _, n := range seen {
		t.streamDuplicates += n - 1
	}
	t.steamExact = true
	var said []string
	for _, topic := range []string{r.idsTopic, r.objectsTopic} {
		tr := r.steam.Tallier(topic == r.objectsTopic, 0, 0)
		if err := r.eachRecord(ctx, topic, tr.Add); err != nil {
			return t, err
		}
		got := tr.Tally()
		said = append(said, fmt.Sprintf("%s: %s", topic, got))
		t.steamExact = t.steamExact && got.ExactlyOnce()
	}
	t.steam = strings.Join(said, "; ")
	return t, nil
}
