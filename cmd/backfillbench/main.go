// Command backfillbench measures a backfill by a fleet of the service's
// replicas against an in-process fake of Steam that limits each key as
// Steam does (HTTP 429 without Retry-After past one call per -rate), with
// hidden matches and real-size match objects (unless -compact): the same
// range with 1, 2, 3... replicas, each with its own keys, and the time,
// the calls a second against the keys' combined allowance, the refused
// calls and the topics' growth side by side.
//
// Usage:
//
//	go run ./cmd/backfillbench [-replicas 1,2,3] [-seqs 60000] [-shards 16] [-keys 2] [-rate 250ms] [-compact] [-brokers host:port]
//
// It builds ./cmd/ingestion-service, runs an in-process kfake broker
// unless -brokers names a real cluster, and prints a table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/steamfake"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/steamtxn"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "backfillbench:", err)
		os.Exit(1)
	}
}

// options are the command line's settings.
type options struct {
	replicas []int
	seqs     int64
	shards   int
	keys     int
	rate     time.Duration
	compact  bool
	brokers  []string
	timeout  time.Duration
	codec    string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("backfillbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	replicas := fs.String("replicas", "1,2,3", "fleet sizes to measure, comma-separated")
	fs.Int64Var(&o.seqs, "seqs", 60_000, "seqs in the range")
	fs.IntVar(&o.shards, "shards", 16, "STEAM_BACKFILL_SHARDS")
	fs.IntVar(&o.keys, "keys", 2, "keys per replica")
	fs.DurationVar(&o.rate, "rate", 250*time.Millisecond, "each key's limit at the fake: one call per this")
	fs.BoolVar(&o.compact, "compact", false, "small match objects (about 300 bytes) instead of real-size ones (about 14 KB)")
	brokers := fs.String("brokers", "", "real Kafka seed brokers, host:port,...; empty runs an in-process kfake broker")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on a fleet size after this long")
	fs.StringVar(&o.codec, "compression", "gzip", "KAFKA_COMPRESSION of the replicas")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, s := range strings.Split(*replicas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-replicas: %q is not a positive count", s)
		}
		o.replicas = append(o.replicas, n)
	}
	if *brokers != "" {
		o.brokers = strings.Split(*brokers, ",")
	}
	if o.seqs < int64(o.shards) || o.shards < 1 || o.keys < 1 || o.rate <= 0 {
		return o, errors.New("want -seqs >= -shards >= 1, -keys >= 1 and a positive -rate")
	}
	return o, nil
}

// result is one fleet size's measure.
type result struct {
	replicas   int
	took       time.Duration
	accepted   float64 // calls answered 200 a second, between 10% and 90% of the range
	allowance  float64 // the keys' combined calls a second
	refused    float64 // share of the calls answered 429
	matches    int64
	idBytes    int64 // uncompressed bytes of the records
	objectByte int64
	idDisk     int64 // bytes on the brokers' disks, all replicas, when they say; -1 if not
	objectDisk int64
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "backfillbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "none.env"), nil, 0o600); err != nil {
		return err
	}
	bin := filepath.Join(dir, "ingestion-service")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ingestion-service")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/ingestion-service (run from the module's root): %w\n%s", err, out)
	}
	brokers := o.brokers
	if len(brokers) == 0 {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return err
		}
		defer c.Close()
		brokers = c.ListenAddrs()
	}
	var results []result
	for _, n := range o.replicas {
		fmt.Fprintf(stderr, "backfilling %d seqs in %d shards with %d replica(s) of %d keys...\n", o.seqs, o.shards, n, o.keys)
		r, err := measure(ctx, o, n, bin, brokers, dir, stderr)
		if err != nil {
			return fmt.Errorf("%d replicas: %w", n, err)
		}
		results = append(results, r)
	}
	report(stdout, o, brokers, results)
	return nil
}

// measure backfills the range with n replicas.
func measure(ctx context.Context, o options, n int, bin string, brokers []string, dir string, stderr io.Writer) (result, error) {
	var keys []string
	for i := range n * o.keys {
		keys = append(keys, fmt.Sprintf("bench-key-%02d", i))
	}
	fake := steamfake.New(steamfake.Options{Count: o.seqs + 1000, Keys: keys, RateInterval: o.rate, HiddenEvery: 100, Compact: o.compact})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	first := fake.Matches()[0].SeqNum
	rng := steamseq.Range{From: first, To: first + o.seqs}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topics := steamtxn.Topics{IDs: "bench-ids-" + suffix, Matches: "bench-matches-" + suffix, Cursor: "bench-ids-" + suffix + "-steam-cursor"}
	kcfg := kafkasink.Config{Brokers: brokers}
	if err := createTopics(ctx, brokers, topics.IDs, topics.Matches); err != nil {
		return result{}, err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	}()
	for i := range n {
		port, err := freePort()
		if err != nil {
			return result{}, err
		}
		cmd := exec.Command(bin)
		cmd.Dir = dir
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"), "ENV_FILE=" + filepath.Join(dir, "none.env"), "API_HOST=127.0.0.1", "API_PORT=" + strconv.Itoa(port),
			"LOG_LEVEL=WARNING", "SPOOL_DIR=" + filepath.Join(dir, "spool-"+strconv.Itoa(i)),
			"SOURCE=steam-sequence", "STEAM_API_URL=" + srv.URL, "STEAM_API_KEY=" + strings.Join(keys[i*o.keys:(i+1)*o.keys], ","),
			"STEAM_KEY_INTERVAL=" + (2 * o.rate).String(), "STEAM_MIN_INTERVAL=" + (o.rate / 4).String(), "STEAM_SKIP_AFTER=1ms",
			"STEAM_BACKFILL_FROM=" + strconv.FormatInt(rng.From, 10), "STEAM_BACKFILL_TO=" + strconv.FormatInt(rng.To, 10),
			"STEAM_BACKFILL_SHARDS=" + strconv.Itoa(o.shards), "STEAM_FORWARD_SCAN=false",
			"KAFKA_BOOTSTRAP_SERVERS=" + strings.Join(brokers, ","), "KAFKA_PUBLISH_TOPIC=" + topics.IDs, "STEAM_MATCHES_TOPIC=" + topics.Matches,
			"KAFKA_COMPRESSION=" + o.codec, "FLEET_GROUP=bench-" + suffix, "FLEET_TOPIC=bench-units-" + suffix, "FLEET_SESSION_TIMEOUT=6s", "STANDBY_WINDOW=12s",
		}
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Start(); err != nil {
			return result{}, err
		}
		procs = append(procs, cmd)
	}
	began := time.Now()
	at10, at90, err := follow(ctx, kcfg, topics, backfill.Split(rng, o.shards), o.timeout)
	if err != nil {
		return result{}, err
	}
	res := result{replicas: n, took: time.Since(began), allowance: float64(len(keys)) / o.rate.Seconds()}
	var ok, refused, okSteady int
	for _, c := range fake.Calls() {
		switch c.Status {
		case 200:
			ok++
			if c.Time.After(at10) && c.Time.Before(at90) {
				okSteady++
			}
		case 429:
			refused++
		}
	}
	if span := at90.Sub(at10).Seconds(); span > 0 {
		res.accepted = float64(okSteady) / span
	}
	res.refused = float64(refused) / float64(max(ok+refused, 1))
	if res.matches, res.idBytes, err = topicBytes(ctx, brokers, topics.IDs); err != nil {
		return result{}, err
	}
	if _, res.objectByte, err = topicBytes(ctx, brokers, topics.Matches); err != nil {
		return result{}, err
	}
	res.idDisk, res.objectDisk = diskBytes(ctx, brokers, topics.IDs), diskBytes(ctx, brokers, topics.Matches)
	return res, nil
}

// follow reads the backfill's progress until every shard is done, and
// returns when it first found 10% and 90% of the seqs done.
func follow(ctx context.Context, kcfg kafkasink.Config, topics steamtxn.Topics, shards []steamseq.Range, timeout time.Duration) (at10, at90 time.Time, err error) {
	began := time.Now()
	for {
		if time.Since(began) > timeout {
			return at10, at90, fmt.Errorf("not finished after %s", timeout)
		}
		// A read gives up within seconds: until the first replica has
		// created the cursor topic, a read waits for it (a topic created
		// a moment ago is waited for), and on a short run that wait
		// would take the 10% and 90% marks with it.
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		p, err := backfill.Read(rctx, kcfg, topics, shards)
		cancel()
		if ctx.Err() != nil {
			return at10, at90, ctx.Err()
		}
		if err == nil {
			done := float64(p.SeqsDone) / float64(p.Seqs)
			if at10.IsZero() && done >= 0.1 {
				at10 = time.Now()
			}
			if at90.IsZero() && done >= 0.9 {
				at90 = time.Now()
			}
			if p.Finished {
				return at10, at90, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// diskBytes returns the bytes topic takes on the brokers' disks, every
// replica counted, or -1 when they do not say (kfake).
func diskBytes(ctx context.Context, brokers []string, topic string) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return -1
	}
	defer cl.Close()
	dirs, err := kadm.NewClient(cl).DescribeAllLogDirs(ctx, nil)
	if err != nil {
		return -1
	}
	var n int64
	found := false
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == topic {
				n += p.Size
				found = true
			}
		})
	})
	if !found {
		return -1
	}
	return n
}

func createTopics(ctx context.Context, brokers []string, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, 3, -1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	return err
}

// topicBytes reads topic as committed data and returns its records and
// the bytes of their keys and values.
func topicBytes(ctx context.Context, brokers []string, topic string) (int64, int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return 0, 0, err
	}
	defer rd.Close()
	var n, bytes int64
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for len(left) > 0 {
		fs := rd.PollFetches(rctx)
		if rctx.Err() != nil {
			return 0, 0, rctx.Err()
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				n++
				bytes += int64(len(r.Key) + len(r.Value))
			}
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return n, bytes, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// report prints the table.
func report(w io.Writer, o options, brokers []string, rs []result) {
	kind := "kfake (in-process)"
	if len(o.brokers) > 0 {
		kind = "Kafka at " + strings.Join(brokers, ",")
	}
	size := "real-size (about 14 KB)"
	if o.compact {
		size = "compact (about 300 bytes)"
	}
	fmt.Fprintf(w, "Backfill of %d seqs in %d shards, %d keys a replica, each key allowed a call per %s by the fake; %s match objects, %s; %s\n\n",
		o.seqs, o.shards, o.keys, o.rate, size, o.codec, kind)
	fmt.Fprintln(w, "| replicas | keys | time | seqs/s | calls/s accepted | allowance | accepted / allowance | refused | matches | ID bytes/match | object bytes/match | on disk/match (IDs + objects, all replicas) |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		disk := "not reported"
		if r.idDisk >= 0 && r.objectDisk >= 0 {
			disk = fmt.Sprintf("%d + %d", r.idDisk/max(r.matches, 1), r.objectDisk/max(r.matches, 1))
		}
		fmt.Fprintf(w, "| %d | %d | %s | %.0f | %.1f | %.1f | %.0f%% | %.1f%% | %d | %d | %d | %s |\n",
			r.replicas, r.replicas*o.keys, r.took.Round(100*time.Millisecond), float64(o.seqs)/r.took.Seconds(),
			r.accepted, r.allowance, 100*r.accepted/r.allowance, 100*r.refused, r.matches,
			r.idBytes/max(r.matches, 1), r.objectByte/max(r.matches, 1), disk)
	}
	if len(rs) > 1 {
		base := rs[0].took.Seconds()
		var parts []string
		for _, r := range rs {
			parts = append(parts, fmt.Sprintf("%d: %.2f", r.replicas, base/r.took.Seconds()))
		}
		fmt.Fprintf(w, "\nSpeed-up over %d replica(s): %s\n", rs[0].replicas, strings.Join(parts, ", "))
	}
}
