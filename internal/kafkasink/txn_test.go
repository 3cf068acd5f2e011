package kafkasink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/logtest"
	"github.com/dota-data/ingestion-service/internal/match"
)

// outcomes records what the sink reported for each token.
type outcomes struct {
	mu   sync.Mutex
	errs map[uint64]error
	ch   chan struct{}
}

func newOutcomes() *outcomes { return &outcomes{errs: map[uint64]error{}, ch: make(chan struct{}, 1)} }

func (o *outcomes) done(token uint64, err error) {
	o.mu.Lock()
	o.errs[token] = err
	o.mu.Unlock()
	select {
	case o.ch <- struct{}{}:
	default:
	}
}

func (o *outcomes) count() (ok, failed int, last error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, err := range o.errs {
		if err == nil {
			ok++
		} else {
			failed, last = failed+1, err
		}
	}
	return ok, failed, last
}

func (o *outcomes) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if ok, failed, _ := o.count(); ok+failed >= n {
			return
		}
		select {
		case <-o.ch:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			ok, failed, _ := o.count()
			t.Fatalf("%d of %d outcomes (%d ok, %d failed)", ok+failed, n, ok, failed)
		}
	}
}

func produceRange(t *testing.T, s *Sink, o *outcomes, from, to int64) {
	t.Helper()
	for id := from; id < to; id++ {
		if err := s.Produce(context.Background(), match.Match{ID: id}, uint64(id), o.done); err != nil {
			t.Fatalf("Produce %d: %v", id, err)
		}
	}
}

func keys(t *testing.T, cluster *kafkatest.Cluster, topic string, committed bool) map[int64]int {
	t.Helper()
	read := cluster.ReadToEnd
	if committed {
		read = cluster.ReadCommitted
	}
	got := map[int64]int{}
	for _, r := range read(t, topic, 30*time.Second) {
		id, _ := strconv.ParseInt(string(r.Key), 10, 64)
		got[id]++
	}
	return got
}

func TestTransactionalSinkWritesOnlyWhileActive(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	cfg := Config{Brokers: cluster.Brokers, Topic: topic, TransactionalID: "txn-" + topic, CommitInterval: 20 * time.Millisecond}
	s, reg, _ := newSink(t, cfg)
	runSink(t, s)
	o := newOutcomes()

	if s.Active() {
		t.Fatal("a transactional sink is active before Activate")
	}
	if err := s.Produce(context.Background(), match.Match{ID: 1}, 1, o.done); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Produce while inactive = %v, want ErrNotLeader", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Activate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	produceRange(t, s, o, 1, 2001)
	o.waitFor(t, 2000)
	if ok, failed, err := o.count(); ok != 2000 || failed != 0 {
		t.Fatalf("%d delivered, %d failed (%v)", ok, failed, err)
	}
	if got := testutil.ToFloat64(s.metrics.transactions.WithLabelValues("committed")); got < 1 {
		t.Fatalf("committed transactions = %v", got)
	}
	got := keys(t, cluster, topic, true)
	if len(got) != 2000 {
		t.Fatalf("a committed read sees %d matches, want 2000", len(got))
	}
	_ = reg

	// Deactivate commits what is open and stops writing.
	produceRange(t, s, o, 2001, 2101)
	s.Deactivate(ctx)
	o.waitFor(t, 2100)
	if ok, failed, err := o.count(); ok != 2100 || failed != 0 {
		t.Fatalf("after Deactivate: %d delivered, %d failed (%v)", ok, failed, err)
	}
	if err := s.Produce(context.Background(), match.Match{ID: 9}, 9, o.done); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Produce after Deactivate = %v, want ErrNotLeader", err)
	}
}

// TestTransactionalSinkIsFenced: a second sink with the same transactional
// ID activates while the first still believes it leads. The first's open
// transaction is aborted by the broker: its records never reach a reader
// of committed data, they are reported failed (to be sent again by
// whoever leads), and the first sink stops writing.
func TestTransactionalSinkIsFenced(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	id := "txn-" + topic
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old, fenced := leadingSink(ctx, t, cluster, topic, id)
	o := newOutcomes()
	produceRange(t, old, o, 1, 501)
	if err := old.Flush(ctx); err != nil { // commits 1..500
		t.Fatal(err)
	}
	produceRange(t, old, o, 501, 1001) // left open: the commit interval is an hour
	if err := old.txn.cl.Flush(ctx); err != nil {
		t.Fatal(err) // acknowledged, not committed
	}

	// The new leader.
	next := takeOver(ctx, t, cluster, topic, id)
	o2 := newOutcomes()
	produceRange(t, next, o2, 2001, 2501)
	o2.waitFor(t, 500)

	// The old one tries to commit, and is refused.
	_ = old.Flush(ctx)
	select {
	case <-fenced:
	case <-time.After(30 * time.Second):
		t.Fatal("the old sink was not told it was fenced")
	}
	o.waitFor(t, 1000)
	ok, failed, last := o.count()
	if ok != 500 || failed != 500 || !errors.Is(last, ErrFenced) {
		t.Fatalf("old sink: %d delivered, %d failed (last %v); want 500 and 500 fenced", ok, failed, last)
	}
	if old.Active() {
		t.Fatal("a fenced sink is still active")
	}
	if err := old.Produce(context.Background(), match.Match{ID: 7}, 7, o.done); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Produce after fencing = %v", err)
	}
	got := keys(t, cluster, topic, true)
	for id := int64(1); id <= 500; id++ {
		if got[id] != 1 {
			t.Fatalf("committed match %d read %d times", id, got[id])
		}
	}
	for id := int64(501); id <= 1000; id++ {
		if got[id] != 0 {
			t.Fatalf("match %d of the fenced transaction is visible to a committed read", id)
		}
	}
	for id := int64(2001); id <= 2500; id++ {
		if got[id] != 1 {
			t.Fatalf("the new leader's match %d read %d times", id, got[id])
		}
	}

	// What a new leader reads back to skip: the committed matches only.
	recent, err := next.RecentIDs(ctx, time.Now().Add(-time.Minute), 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(recent) != 1000 || !recent[1] || !recent[500] || recent[501] || recent[1000] || !recent[2500] {
		t.Fatalf("RecentIDs holds %d IDs (1: %v, 501: %v, 2500: %v); want the 1,000 committed", len(recent), recent[1], recent[501], recent[2500])
	}
	if none, err := next.RecentIDs(ctx, time.Now().Add(time.Hour), 10_000); err != nil || len(none) != 0 {
		t.Fatalf("RecentIDs from the future = %d IDs, %v", len(none), err)
	}
}

// TestDeactivateAfterAFencedCommit: the leader loses its lead while its
// last transaction is open, and another producer has fenced it: the
// commit Deactivate makes finds it fenced, which closes the client; then
// Deactivate, and Close at shutdown, must not close it again (they did,
// on a nil client: a panic).
func TestDeactivateAfterAFencedCommit(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 1)
	id := "txn-" + topic
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old, fenced := leadingSink(ctx, t, cluster, topic, id)
	o := newOutcomes()
	produceRange(t, old, o, 1, 101) // left open: the commit interval is an hour
	if err := old.txn.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	next := takeOver(ctx, t, cluster, topic, id)
	o2 := newOutcomes()
	produceRange(t, next, o2, 201, 301)
	o2.waitFor(t, 100)
	old.Deactivate(ctx) // commits, is fenced, and must not close twice
	select {
	case <-fenced:
	case <-time.After(30 * time.Second):
		t.Fatal("the old sink was not told it was fenced")
	}
	old.Deactivate(ctx)
	if err := old.Close(ctx); err != nil {
		t.Logf("Close: %v", err)
	}
	o.waitFor(t, 100)
	if ok, failed, last := o.count(); ok != 0 || failed != 100 || !errors.Is(last, ErrFenced) {
		t.Fatalf("%d delivered, %d failed (last %v); want all 100 failed as fenced", ok, failed, last)
	}
}

// TestLeaderLogsNoClientChatter: a transactional leader committing every
// 20 ms logs nothing at info level but the service's own events: the
// client's lines (flushing, ending the transaction, ...) are debug.
func TestLeaderLogsNoClientChatter(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 1)
	s, _, logs := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic, TransactionalID: "txn-" + topic, CommitInterval: 20 * time.Millisecond})
	runSink(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Activate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	o := newOutcomes()
	for i := range 20 { // 20 batches over about 50 commits
		produceRange(t, s, o, int64(1+100*i), int64(101+100*i))
		time.Sleep(50 * time.Millisecond)
	}
	o.waitFor(t, 2000)
	var client int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["client"] == "franz-go" && l["level"] == "INFO" {
			client++
		}
	}
	if client != 0 {
		t.Errorf("%d info lines from the Kafka client over %d commits, want none", client, 50)
	}
}

// leadingSink starts a transactional sink with id that commits only when
// told (its interval is an hour) and activates it; the channel closes
// when it learns it was fenced.
func leadingSink(ctx context.Context, t *testing.T, cluster *kafkatest.Cluster, topic, id string) (*Sink, chan struct{}) {
	t.Helper()
	s, fenced, _ := leadingSinkWith(ctx, t, Config{Brokers: cluster.Brokers, Topic: topic, TransactionalID: id, CommitInterval: time.Hour})
	return s, fenced
}

// leadingSinkWith is leadingSink for cfg, and returns the sink's logs too.
func leadingSinkWith(ctx context.Context, t *testing.T, cfg Config) (*Sink, chan struct{}, *logtest.Buffer) {
	t.Helper()
	s, _, logs := newSink(t, cfg)
	runSink(t, s)
	fenced := make(chan struct{})
	if err := s.Activate(ctx, func() { close(fenced) }); err != nil {
		t.Fatal(err)
	}
	return s, fenced, logs
}

// takeOver starts and activates a second sink with id, committing every
// 20 ms: it fences the one before.
func takeOver(ctx context.Context, t *testing.T, cluster *kafkatest.Cluster, topic, id string) *Sink {
	t.Helper()
	next, _, _ := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic, TransactionalID: id, CommitInterval: 20 * time.Millisecond})
	runSink(t, next)
	if err := next.Activate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return next
}

// TestFencedSinkIsReadyAndLogsOnce: a fenced writer's 500 uncommitted
// records come back failed without a line each; the fencing is one line
// with the count; and the sink, standing by, reports ready again once the
// brokers answer (what the dropped writer failed is not Kafka's state).
func TestFencedSinkIsReadyAndLogsOnce(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	id := "txn-" + topic
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old, fenced, logs := leadingSinkWith(ctx, t, Config{Brokers: cluster.Brokers, Topic: topic, TransactionalID: id, CommitInterval: time.Hour, ProbeInterval: 50 * time.Millisecond})
	waitFor(t, "the leader ready", 10*time.Second, func() bool { return old.Status().Up })
	o := newOutcomes()
	produceRange(t, old, o, 1, 501)
	if err := old.txn.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	takeOver(ctx, t, cluster, topic, id)
	_ = old.Flush(ctx) // the commit is refused
	<-fenced
	o.waitFor(t, 500)
	if ok, failed, _ := o.count(); ok != 0 || failed != 500 {
		t.Fatalf("%d delivered, %d failed; want 500 failed", ok, failed)
	}
	waitFor(t, "the fenced sink, standing by, ready again", 10*time.Second, func() bool { return old.Status().Up })
	lines := logs.Lines(t, "This replica's Kafka writer stopped; it writes no more until it leads again")
	if len(lines) != 1 || lines[0]["uncommitted_records"] != float64(500) {
		t.Fatalf("fencing lines %v, want one counting 500 uncommitted records", lines)
	}
	if n := strings.Count(logs.String(), "Failed to publish"); n != 0 {
		t.Fatalf("%d per-record failure lines for a fencing:\n%s", n, logs.String())
	}
}

// TestACommitHeldByKafkaHoldsNoReader: the broker holds a commit (EndTxn)
// as a slow or cut link does. Produce waits for the next transaction, but
// Active, Buffered and a scrape of the metrics answer at once, and the
// sink turns not ready once the commit has waited StallAfter; released,
// the commit delivers every record and the sink is ready again.
func TestACommitHeldByKafkaHoldsNoReader(t *testing.T) {
	cluster := kafkatest.StartFake(t) // its broker holds the commit
	topic := cluster.Topic(t, 3)
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cluster.Fake.ControlKey(kmsg.EndTxn.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.Fake.KeepControl()
		first := false
		once.Do(func() { first = true })
		if first {
			close(held)
			cluster.Fake.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Config{Brokers: cluster.Brokers, Topic: topic, TransactionalID: "txn-" + topic,
		CommitInterval: 50 * time.Millisecond, ProbeInterval: 20 * time.Millisecond, StallAfter: 500 * time.Millisecond}
	s, reg, _ := newSink(t, cfg)
	runSink(t, s)
	if err := s.Activate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	o := newOutcomes()
	produceRange(t, s, o, 1, 101)
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("no commit reached the broker")
	}

	answers := make(chan string, 1)
	go func() {
		active, buffered := s.Active(), s.Buffered()
		_, err := reg.Gather()
		answers <- fmt.Sprintf("active %v, buffered %d, gather error %v", active, buffered, err)
	}()
	select {
	case a := <-answers:
		t.Logf("while the commit is held: %s", a)
	case <-time.After(5 * time.Second):
		t.Fatal("Active, Buffered or a scrape of the metrics waited for the held commit")
	}
	waitFor(t, "the sink not ready while its commit is held", 10*time.Second, func() bool {
		st := s.Status()
		return !st.Up && strings.Contains(st.Detail, "for Kafka to commit it")
	})

	close(release)
	o.waitFor(t, 100)
	if ok, failed, err := o.count(); ok != 100 || failed != 0 {
		t.Fatalf("after the commit went through: %d delivered, %d failed (%v)", ok, failed, err)
	}
	waitFor(t, "the sink ready again", 10*time.Second, func() bool { return s.Status().Up })
	if got := len(keys(t, cluster, topic, true)); got != 100 {
		t.Fatalf("a committed read sees %d matches, want 100", got)
	}
}

// TestHandOffWritesOutsideATransaction: an inactive transactional sink
// refuses records until HandOff, then writes them through its plain
// producer, outside any transaction, delivered as soon as acknowledged;
// HandOff(false) refuses again, and Activate ends a hand-off.
func TestHandOffWritesOutsideATransaction(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	s, _, _ := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic, TransactionalID: "txn-" + topic, CommitInterval: 20 * time.Millisecond})
	runSink(t, s)
	o := newOutcomes()
	s.HandOff(true)
	produceRange(t, s, o, 1, 301)
	o.waitFor(t, 300)
	if ok, failed, err := o.count(); ok != 300 || failed != 0 {
		t.Fatalf("handed on: %d delivered, %d failed (%v)", ok, failed, err)
	}
	recs := cluster.ReadCommitted(t, topic, 30*time.Second)
	for _, r := range recs {
		if r.Attrs.IsTransactional() {
			t.Fatalf("record %s was written in a transaction", r.Key)
		}
	}
	if len(recs) != 300 {
		t.Fatalf("a committed read sees %d records, want 300", len(recs))
	}
	s.HandOff(false)
	if err := s.Produce(context.Background(), match.Match{ID: 900}, 900, o.done); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Produce after HandOff(false) = %v, want ErrNotLeader", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.HandOff(true)
	if err := s.Activate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	s.Deactivate(ctx)
	if err := s.Produce(context.Background(), match.Match{ID: 901}, 901, o.done); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Produce after a lead that followed a hand-off = %v, want ErrNotLeader", err)
	}
}

// TestAbandonEndsACommitHeldByKafka: a commit the broker holds for ever
// ends on Abandon, its records handed back failed (the relay keeps them),
// and Close does not wait on Kafka either.
func TestAbandonEndsACommitHeldByKafka(t *testing.T) {
	cluster := kafkatest.StartFake(t) // its broker holds every commit
	topic := cluster.Topic(t, 3)
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	cluster.Fake.ControlKey(kmsg.EndTxn.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.Fake.KeepControl()
		select {
		case held <- struct{}{}:
		default:
		}
		cluster.Fake.SleepControl(func() { <-release })
		return nil, nil, false
	})
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, _, _ := leadingSinkWith(ctx, t, Config{Brokers: cluster.Brokers, Topic: topic, TransactionalID: "txn-" + topic, CommitInterval: 50 * time.Millisecond})
	o := newOutcomes()
	produceRange(t, s, o, 1, 101)
	if _, err := recv(ctx, held); err != nil {
		t.Fatal("no commit reached the broker")
	}
	start := time.Now()
	s.Abandon()
	o.waitFor(t, 100)
	if ok, failed, _ := o.count(); ok != 0 || failed != 100 {
		t.Fatalf("after Abandon: %d delivered, %d failed; want the 100 of the held commit failed", ok, failed)
	}
	t.Logf("the held commit's records came back %s after Abandon", time.Since(start).Round(time.Millisecond))
	closed := make(chan struct{})
	go func() {
		_ = s.Close(ctx)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited on Kafka after Abandon")
	}
}

// recv waits for a value on ch until ctx ends.
func recv[T any](ctx context.Context, ch <-chan T) (T, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
