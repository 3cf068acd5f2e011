package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/steamfake"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/steamtxn"
)

// fleetRun describes a backfill by a fleet against a strict fake: what
// happens to the replicas on the way.
type fleetRun struct {
	seqs     int64 // the range's length
	shards   int
	replicas int           // at the start
	compact  bool          // small match objects instead of real-size ones
	rate     time.Duration // each key's limit at the fake
	kill     bool          // kill -9 a replica at a quarter of the way
	pause    bool          // pause a replica past the session timeout at two fifths, then resume it
	join     bool          // start one more replica half-way
	forward  bool          // the forward scan runs too, from the range's end
	timeout  time.Duration
}

// fleetResult is what a fleetRun measured.
type fleetResult struct {
	took         time.Duration
	calls        int     // sequence calls answered 200
	refused      int     // answered 429
	maxLagPages  float64 // the forward scan's largest distance from the head, in pages, out of the faults' windows
	maxLagAt     time.Duration
	lagSamples   int
	cursorCommit int // shard cursor records committed
}

// backfillFleet runs r against a fake as strict as Steam (each replica's
// two keys limited at the fake, 429 without Retry-After beyond; hidden
// matches; 3% listed late; one match that never loads; real-size objects
// unless compact) and checks that both topics hold every listed match of
// the range (and of the forward scan's, from the range's end) exactly
// once, objects as served, nothing before the range, and that each
// shard's committed cursors only move forward: no page of a fenced writer
// was committed after its successor's.
func backfillFleet(t *testing.T, r fleetRun) fleetResult {
	cluster := kafkatest.Start(t)
	ids, objects := cluster.Topic(t, 3), cluster.Topic(t, 3)
	const perReplica = 2
	var keys []string
	for i := range (r.replicas + 1) * perReplica {
		keys = append(keys, fmt.Sprintf("replica-key-%02d", i))
	}
	const lead = 2000 // matches before the range
	fake, url := steamfake.Start(t, steamfake.Options{
		Count: lead + r.seqs + 5000, Keys: keys, RateInterval: r.rate, HiddenEvery: 100,
		LateFraction: 0.03, LateBy: 300, Compact: r.compact,
	})
	all := fake.Matches()
	from := all[0].SeqNum + lead
	to := from + r.seqs
	broken := from + r.seqs/3 + 7
	fake.Break(broken, 0)
	defer growSteam(fake, 2, 100*time.Millisecond)() // Dota's pace: 20 matches a second

	began := time.Now()
	var lagMu sync.Mutex
	spool := t.TempDir()
	env := func(i int) map[string]string {
		e := steamEnv(cluster, ids, url, to, filepath.Join(spool, strconv.Itoa(i)), "50ms")
		e["STEAM_API_KEY"] = strings.Join(keys[i*perReplica:(i+1)*perReplica], ",")
		e["STEAM_KEY_INTERVAL"] = (2 * r.rate).String()
		e["STEAM_MATCHES_TOPIC"] = objects
		e["STEAM_BACKFILL_FROM"] = strconv.FormatInt(from, 10)
		e["STEAM_BACKFILL_TO"] = strconv.FormatInt(to, 10)
		e["STEAM_BACKFILL_SHARDS"] = strconv.Itoa(r.shards)
		e["STEAM_FORWARD_SCAN"] = strconv.FormatBool(r.forward)
		e["STEAM_SKIP_AFTER"] = "1ms"
		e["STEAM_IDLE_WAIT"] = "500ms"
		e["FLEET_GROUP"] = "backfill-" + ids
		e["FLEET_TOPIC"] = "units-" + ids
		e["FLEET_SESSION_TIMEOUT"] = "6s"
		e["STANDBY_WINDOW"] = "12s"
		e["KAFKA_COMPRESSION"] = "lz4"
		return e
	}
	var replicas []*service // guarded by lagMu while the sampler runs
	defer func() {
		// First, on failure: what each replica led, and what went wrong
		// there, in a few lines (each one's whole output follows).
		if !t.Failed() {
			return
		}
		lagMu.Lock()
		live := append([]*service(nil), replicas...)
		lagMu.Unlock()
		for i, s := range live {
			t.Logf("replica %d: leads, warnings and errors:\n%s", i, tail(fleetEvents(s.out.String()), 4000))
		}
	}()
	for i := range r.replicas {
		replicas = append(replicas, startService(t, env(i)))
	}
	statusEnv := env(0)
	progress := func() backfill.Progress {
		code, out := runCommand(t, statusEnv, "backfill", "status", "-json")
		var p backfill.Progress
		if code != 0 || json.Unmarshal([]byte(out), &p) != nil {
			return backfill.Progress{}
		}
		return p
	}
	// The forward scan's distance from the head, sampled once it has
	// caught up, out of the windows that follow a fault (a new lead
	// resumes).
	var res fleetResult
	var faultUntil time.Time
	var caughtUp bool
	noteFault := func() {
		lagMu.Lock()
		faultUntil = time.Now().Add(12 * time.Second)
		lagMu.Unlock()
	}
	stopLag := make(chan struct{})
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		if !r.forward {
			return
		}
		for {
			select {
			case <-stopLag:
				return
			case <-time.After(250 * time.Millisecond):
			}
			head := fake.Head()
			best := -1.0
			lagMu.Lock()
			live := append([]*service(nil), replicas...)
			lagMu.Unlock()
			for _, s := range live {
				// A killed replica does not answer: -1.
				if v := labelledQuiet(s, "ingestion_steam_committed_cursor", `cursor="primary"`); v > best {
					best = v
				}
			}
			lag := (float64(head) - best) / 100
			lagMu.Lock()
			if best > 0 && lag <= 1 {
				caughtUp = true // it starts 50 pages behind: from now on
			}
			if best > 0 && caughtUp && time.Now().After(faultUntil) {
				res.lagSamples++
				if lag > res.maxLagPages {
					res.maxLagPages, res.maxLagAt = lag, time.Since(began)
				}
			}
			lagMu.Unlock()
		}
	}()
	noteFault() // the start: the first lead resumes

	step := 0
	deadline := time.Now().Add(r.timeout)
	for {
		p := progress()
		if p.Finished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backfill did not finish in %s: %d of %d seqs", r.timeout, p.SeqsDone, p.Seqs)
		}
		done := float64(p.SeqsDone) / float64(max(p.Seqs, 1))
		switch {
		case step == 0 && r.kill && done >= 0.25:
			noteFault()
			t.Logf("%.0f%% done: kill -9 replica 0", done*100)
			replicas[0].kill(t)
			step = 1
		case step <= 1 && r.pause && done >= 0.40:
			noteFault()
			t.Logf("%.0f%% done: replica 1 paused for 10 s (the session timeout is 6 s)", done*100)
			if err := replicas[1].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Second)
			if err := replicas[1].cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			noteFault()
			step = 2
		case step <= 2 && r.join && done >= 0.5:
			noteFault()
			t.Logf("%.0f%% done: replica %d joins", done*100, len(replicas))
			joined := startService(t, env(len(replicas)))
			lagMu.Lock()
			replicas = append(replicas, joined)
			lagMu.Unlock()
			step = 3
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.took = time.Since(began)
	close(stopLag)
	<-lagDone
	for _, s := range replicas {
		if s.cmd.ProcessState == nil {
			if code, _ := s.stop(t, 30*time.Second); code != 0 {
				t.Errorf("exit status %d", code)
			}
		}
	}
	for _, c := range fake.Calls() {
		if c.Endpoint != steamfake.Sequence {
			continue
		}
		switch c.Status {
		case 200:
			res.calls++
		case 429:
			res.refused++
		}
	}
	// Every listed match of the range, once in each topic, objects as
	// served, nothing before it; past it, the forward scan's records, none
	// twice.
	for _, topic := range []string{ids, objects} {
		tl := fake.Tallier(topic == objects, from, to)
		forward := map[string]int{}
		var dups int
		cluster.EachCommitted(t, topic, 5*time.Minute, func(rec *kgo.Record) {
			if seqOf(rec) >= to {
				if forward[string(rec.Key)]++; forward[string(rec.Key)] > 1 {
					dups++
				}
				return
			}
			tl.Add(rec)
		})
		got := tl.Tally()
		t.Logf("%s: the range: %s; past it, the forward scan's %d records, %d twice", topic, got, len(forward), dups)
		if !got.ExactlyOnce() || dups > 0 {
			t.Fatalf("%s: %s, forward duplicates %d; want every listed match of the range once, objects as served, nothing before it", topic, got, dups)
		}
		if r.forward && len(forward) == 0 {
			t.Fatalf("%s: the forward scan wrote nothing", topic)
		}
	}
	res.cursorCommit = checkShardCursors(t, cluster, ids, from, to, r.shards)
	return res
}

// fleetEvents returns the lines of a replica's output that say what it
// led, where its forward scan resumed and what went wrong there, but the
// broken match the test serves, each cut to 400 bytes.
func fleetEvents(out string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		expected := strings.Contains(line, "Steam call failed, retrying") || strings.Contains(line, "Stepped past a broken match") ||
			strings.Contains(line, "the fleet's group is out of this replica's reach")
		if !expected && (strings.Contains(line, `"level":"warning"`) || strings.Contains(line, `"level":"error"`) ||
			strings.Contains(line, "leads the fleet") || strings.Contains(line, `"Leading:`) ||
			strings.Contains(line, "forward scan") || strings.Contains(line, "Resuming") || strings.Contains(line, "resuming")) {
			if len(line) > 400 {
				line = line[:400] + "...\n"
			}
			b.WriteString(line)
		}
	}
	return b.String()
}

// seqOf returns the match_seq_num header of rec, 0 if none.
func seqOf(rec *kgo.Record) int64 {
	for _, h := range rec.Headers {
		if h.Key == kafkasink.HeaderSeqNum {
			q, _ := strconv.ParseInt(string(h.Value), 10, 64)
			return q
		}
	}
	return 0
}

// checkShardCursors reads every committed cursor record of the shards
// and fails t unless each shard's positions only grow in the order they
// were committed (a fenced writer's page committed after its successor's
// would step back) and each ends at its range's end. It returns how many
// there were.
func checkShardCursors(t *testing.T, cluster *kafkatest.Cluster, ids string, from, to int64, shards int) int {
	t.Helper()
	last := map[string]int64{}
	n := 0
	cluster.EachCommitted(t, ids+"-steam-cursor", time.Minute, func(rec *kgo.Record) {
		key := string(rec.Key)
		if !steamtxn.IsShardCursorKey(ids, key) {
			return
		}
		c, err := steamtxn.DecodeShard(rec.Value)
		if err != nil {
			t.Fatalf("shard cursor %s: %v", key, err)
		}
		if prev, ok := last[key]; ok && c.Position <= prev {
			t.Fatalf("shard %s committed position %d after %d: a page of a fenced writer was committed", key, c.Position, prev)
		}
		last[key] = c.Position
		n++
	})
	if len(last) != shards {
		t.Fatalf("cursors of %d shards, want %d", len(last), shards)
	}
	for _, r := range backfill.Split(steamseq.Range{From: from, To: to}, shards) {
		if p := last[steamtxn.ShardCursorKey(ids, r)]; p != r.To-1 {
			t.Fatalf("shard %s ended at %d, want %d", r, p, r.To-1)
		}
	}
	return n
}

// getQuiet fetches path from s within 2 s.
func getQuiet(s *service, path string) (string, error) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + s.addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// labelledQuiet is labelled without a test to fail: -1 when the service
// does not answer.
func labelledQuiet(s *service, name, labels string) float64 {
	body, err := getQuiet(s, "/metrics")
	if err != nil {
		return -1
	}
	prefix := name + "{" + labels + "} "
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}

// TestBackfillFleet: three replicas, each with its own two keys, share a
// backfill of 30,000 seqs in 16 shards with the forward scan on the lead;
// one is killed with kill -9 a quarter of the way, one more joins
// half-way. Both topics hold every listed match exactly once, and no
// page of a fenced writer was committed.
func TestBackfillFleet(t *testing.T) {
	res := backfillFleet(t, fleetRun{seqs: 30_000, shards: 16, replicas: 3, compact: true, rate: 300 * time.Millisecond,
		kill: true, join: true, forward: true, timeout: 3 * time.Minute})
	t.Logf("took %s: %d calls answered, %d refused (%.1f%%), %d shard cursors committed; the forward scan at most %.1f pages behind the head (%d samples)",
		res.took.Round(time.Millisecond), res.calls, res.refused, 100*float64(res.refused)/float64(max(res.calls+res.refused, 1)),
		res.cursorCommit, res.maxLagPages, res.lagSamples)
}
