package kafkasink

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/logtest"
	"github.com/dota-data/ingestion-service/internal/match"
)

func newSink(t *testing.T, cfg Config) (*Sink, *prometheus.Registry, *logtest.Buffer) {
	t.Helper()
	logs := &logtest.Buffer{}
	debugLogs = logs
	reg := prometheus.NewRegistry()
	s, err := New(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})), reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s, reg, logs
}

// waitFor polls cond until it holds or the deadline passes.
var debugLogs *logtest.Buffer

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	defer func() {
		if t.Failed() && debugLogs != nil {
			t.Log(debugLogs.String())
		}
	}()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPublishWritesExactRecords(t *testing.T) {
	for _, codec := range []string{"gzip", "snappy", "lz4", "zstd", "none"} {
		t.Run(codec, func(t *testing.T) {
			cluster := kafkatest.Start(t)
			topic := cluster.Topic(t, 3)
			s, reg, _ := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic, Compression: codec})

			const n = 2000
			ctx := context.Background()
			for i := int64(1); i <= n; i++ {
				if err := s.Publish(ctx, match.Match{ID: 8_000_000_000 + i}); err != nil {
					t.Fatalf("Publish: %v", err)
				}
			}
			closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := s.Close(closeCtx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := s.Published(); got != n {
				t.Fatalf("Published() = %d, want %d", got, n)
			}
			if got := testutil.ToFloat64(s.metrics.published); got != n {
				t.Fatalf("published metric = %v, want %d", got, n)
			}
			if c := testutil.CollectAndCount(reg, "ingestion_produce_latency_seconds"); c != 1 {
				t.Fatalf("latency histogram not registered")
			}

			recs := cluster.ReadAll(t, topic, n, 30*time.Second)
			seen := make(map[int64]bool, n)
			for _, r := range recs {
				id, err := strconv.ParseInt(string(r.Key), 10, 64)
				if err != nil {
					t.Fatalf("key %q is not a decimal ID", r.Key)
				}
				if want := `{"match_id":` + string(r.Key) + `}`; string(r.Value) != want {
					t.Fatalf("value = %q, want %q", r.Value, want)
				}
				if seen[id] {
					t.Fatalf("duplicate record for %d", id)
				}
				seen[id] = true
			}
			if len(seen) != n {
				t.Fatalf("topic holds %d distinct IDs, want %d", len(seen), n)
			}
		})
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestUnreachableAtStartThenRecovers(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s, _, _ := newSink(t, Config{Brokers: []string{addr}, Topic: "late", ProbeInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	// Records published while no broker listens are held, not lost.
	for i := int64(1); i <= 100; i++ {
		if err := s.Publish(ctx, match.Match{ID: i}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	waitFor(t, "a failed probe", 10*time.Second, func() bool {
		st := s.Status()
		return !st.Up && strings.Contains(st.Detail, "metadata")
	})

	cluster := kafkatest.StartFake(t, kfake.Ports(port), kfake.SeedTopics(1, "late"))
	waitFor(t, "ready after the broker starts", 30*time.Second, func() bool { return s.Status().Up })
	waitFor(t, "the held records to be acknowledged", 30*time.Second, func() bool { return s.Published() == 100 })
	if got := len(cluster.ReadAll(t, "late", 100, 10*time.Second)); got != 100 {
		t.Fatalf("topic holds %d records, want 100", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestFailedRecordsAreLoggedAndCounted(t *testing.T) {
	cluster := kafkatest.StartFake(t, kfake.SeedTopics(1, "refused"))
	// Every produce request is answered with a retriable error, so records
	// are retried until the delivery timeout fails them.
	cluster.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.Fake.KeepControl()
		preq := req.(*kmsg.ProduceRequest)
		resp := preq.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range preq.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			st.TopicID = rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	s, _, logs := newSink(t, Config{
		Brokers: cluster.Brokers, Topic: "refused",
		DeliveryTimeout: time.Second, ProbeInterval: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()

	for _, id := range []int64{111, 222, 333} {
		if err := s.Publish(ctx, match.Match{ID: id}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	waitFor(t, "three failures", 30*time.Second, func() bool { return s.Failed() == 3 })
	if s.Published() != 0 {
		t.Fatalf("Published() = %d, want 0", s.Published())
	}
	got := testutil.ToFloat64(s.metrics.failed.WithLabelValues("delivery_timeout"))
	if got != 3 {
		t.Fatalf("publish_errors_total{error=delivery_timeout} = %v, want 3", got)
	}
	for _, id := range []string{"111", "222", "333"} {
		if !strings.Contains(logs.String(), `"match_id":"`+id+`"`) {
			t.Fatalf("no error log names match %s:\n%s", id, logs.String())
		}
	}
	waitFor(t, "not ready while records fail", 10*time.Second, func() bool {
		st := s.Status()
		return !st.Up && strings.Contains(st.Detail, "failing")
	})
}

func TestCloseFlushesBufferedRecords(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 1)
	// A long linger keeps records in the client until Close flushes them,
	// but for the first: it comes after a pause, and is sent at once.
	s, _, _ := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic, Linger: time.Minute})
	if err := s.Publish(context.Background(), match.Match{ID: 501}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first record, sent at once", 10*time.Second, func() bool { return s.Published() == 1 && s.sendNow.Load() == nil })
	for i := int64(1); i <= 500; i++ {
		if err := s.Publish(context.Background(), match.Match{ID: i}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if s.Published() != 1 {
		t.Fatalf("records were sent before the linger elapsed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s.Published() != 501 {
		t.Fatalf("Published() after Close = %d, want 501", s.Published())
	}
	if err := s.Publish(context.Background(), match.Match{ID: 1}); err != ErrClosed {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
}

func TestConfigRejectsUnknownCompression(t *testing.T) {
	_, err := New(Config{Brokers: []string{"127.0.0.1:1"}, Topic: "t", Compression: "brotli"}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "brotli") {
		t.Fatalf("New with compression brotli = %v", err)
	}
}

func TestProduceReportsEachTokenOnce(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	s, _, _ := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic})
	const n = 1000
	var mu sync.Mutex
	got := make(map[uint64]int, n)
	done := func(token uint64, err error) {
		if err != nil {
			t.Errorf("token %d failed: %v", token, err)
		}
		mu.Lock()
		got[token]++
		mu.Unlock()
	}
	for i := uint64(1); i <= n; i++ {
		if err := s.Produce(context.Background(), match.Match{ID: int64(i) + 100}, i, done); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("%d tokens reported, want %d", len(got), n)
	}
	for tok, c := range got {
		if c != 1 || tok < 1 || tok > n {
			t.Fatalf("token %d reported %d times", tok, c)
		}
	}
}

// TestPermanentFailuresAreNotFlooded: a broker that refuses every batch
// as too large (message.max.bytes below a record's size) fails each
// record; the log gets a few lines with counts of what it left out, not
// one line a record, and readiness says the error is permanent.
func TestPermanentFailuresAreNotFlooded(t *testing.T) {
	cluster := kafkatest.StartFake(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "40"}))
	topic := cluster.Topic(t, 1)
	s, _, logs := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic, ProbeInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	const n = 2000
	for i := range n {
		if err := s.Publish(ctx, match.Match{ID: int64(1_000_000 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every record failed", 30*time.Second, func() bool { return s.Failed() == n })
	lines := logs.Lines(t, "Failed to publish match")
	var suppressed float64
	for _, l := range lines {
		if v, ok := l["suppressed_since_last"].(float64); ok {
			suppressed += v
		}
		if l["permanent"] != true {
			t.Fatalf("line %v does not say the error is permanent", l)
		}
	}
	// What the lines left out is counted in a summary at the next probe.
	var summarized float64
	waitFor(t, "the summary of the rest", 25*time.Second, func() bool {
		summarized = 0
		for _, l := range logs.Lines(t, "Failed to publish more matches") {
			summarized += l["count"].(float64)
		}
		return float64(len(lines))+suppressed+summarized == n
	})
	t.Logf("%d records failed: %d lines, %v suppressed in them, %v in summaries", n, len(lines), suppressed, summarized)
	if len(lines) > 20 || len(lines) == 0 {
		t.Errorf("%d lines for %d failures, want a few", len(lines), n)
	}
	waitFor(t, "readiness down with a permanent error", 10*time.Second, func() bool {
		st := s.Status()
		return !st.Up && strings.Contains(st.Detail, "permanent") && strings.Contains(st.Detail, "MESSAGE_TOO_LARGE")
	})
}

// TestOutageIsLoggedOnceEachWay: an outage (here the topic deleted, then
// created again) is one warning when readiness goes down, with the
// reason, and one line when it is back, with how long it lasted.
func TestOutageIsLoggedOnceEachWay(t *testing.T) {
	cluster := kafkatest.StartFake(t)
	topic := cluster.Topic(t, 1)
	s, _, logs := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic, ProbeInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	waitFor(t, "ready", 10*time.Second, func() bool { return s.Status().Up })
	adm := cluster.Admin(t)
	if _, err := adm.DeleteTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "down", 10*time.Second, func() bool { return !s.Status().Up })
	time.Sleep(200 * time.Millisecond) // several probes while down
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready again", 10*time.Second, func() bool { return s.Status().Up })
	down, back := logs.Lines(t, "Kafka not ready"), logs.Lines(t, "Kafka ready again")
	if len(down) != 1 || len(back) != 1 {
		t.Fatalf("%d down lines and %d back lines, want one of each", len(down), len(back))
	}
	if d, err := time.ParseDuration(back[0]["down_for"].(string)); err != nil || d < 200*time.Millisecond {
		t.Errorf("down_for = %v, want the outage's length", back[0]["down_for"])
	}
}

// TestCloseHandsBackWithoutCallingItAFailure: records Kafka never
// acknowledged are handed back at Close, and records whose producer's
// context ends are withdrawn: neither is Kafka refusing them, so neither
// is logged or counted as a failed publish; each owner still hears of it.
func TestCloseHandsBackWithoutCallingItAFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there: nothing is ever acknowledged
	s, _, logs := newSink(t, Config{Brokers: []string{addr}, Topic: "nowhere"})
	o := newOutcomes()
	ctx, cancel := context.WithCancel(context.Background())
	for id := int64(1); id <= 5; id++ {
		if err := s.Produce(ctx, match.Match{ID: id}, uint64(id), o.done); err != nil {
			t.Fatal(err)
		}
	}
	cancel() // the owner gives the first five up
	o.waitFor(t, 5)
	produceRange(t, s, o, 6, 11)
	closeCtx, stop := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer stop()
	err = s.Close(closeCtx)
	if err == nil || !strings.Contains(err.Error(), "5 records not acknowledged at close") {
		t.Fatalf("Close = %v, want 5 records not acknowledged", err)
	}
	o.waitFor(t, 10)
	if ok, failed, _ := o.count(); ok != 0 || failed != 10 {
		t.Fatalf("owners heard %d delivered, %d failed; want 0 and 10", ok, failed)
	}
	if s.Failed() != 0 || strings.Contains(logs.String(), "Failed to publish") {
		t.Fatalf("Failed() = %d; withdrawn records must not count or log as failures:\n%s", s.Failed(), logs.String())
	}
}

// TestSendsAtOnceAfterAPause: a record handed over after a pause longer
// than the linger is sent at once, since nothing would join its batch;
// records that follow within the linger wait for it as configured.
func TestSendsAtOnceAfterAPause(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 1)
	const linger = 2 * time.Second
	s, _, _ := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic, Linger: linger})
	for round := range 2 {
		start := time.Now()
		if err := s.Publish(context.Background(), match.Match{ID: int64(100 + round)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the record after a pause", 10*time.Second, func() bool { return s.Published() == int64(2*round+1) && s.sendNow.Load() == nil })
		if took := time.Since(start); took >= linger {
			t.Fatalf("round %d: the record after a pause took %v, want well under the %v linger", round, took, linger)
		}
		// Within the linger of the first: it lingers.
		if err := s.Publish(context.Background(), match.Match{ID: int64(200 + round)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(linger / 2)
		if got := s.Published(); got != int64(2*round+1) {
			t.Fatalf("round %d: a record within the linger was sent before it: %d published", round, got)
		}
		waitFor(t, "the lingering record", 10*time.Second, func() bool { return s.Published() == int64(2*round+2) })
		// Then a pause longer than the linger before the next round.
		time.Sleep(linger + 100*time.Millisecond)
	}
}
