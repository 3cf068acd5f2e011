// Package kafkasink publishes matches to a Kafka topic with franz-go.
//
// A Sink produces asynchronously: Publish hands a record to the client and
// returns, and the client batches, compresses and pipelines records to the
// partition leaders with acks=all and the idempotent producer. Every record
// that finally fails is logged with its match ID and counted; none is
// dropped silently. Publish blocks once MaxBufferedRecords await an
// acknowledgement, which is how backpressure reaches the stream reader.
package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/time/rate"

	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/match"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("kafka sink closed")

// Sink publishes matches to one Kafka topic. Create it with New; it is safe
// for concurrent use.
type Sink struct {
	cfg     Config
	client  *kgo.Client
	log     *slog.Logger
	metrics *metrics
	state   *health.State
	promise func(*kgo.Record, error)

	clientLog kgo.Logger
	txn       txn // with a TransactionalID: the fleet's single writer

	closed        atomic.Bool
	missingLogged atomic.Bool
	producerReady atomic.Bool // the idempotent producer has its ID
	published     atomic.Int64
	failed        atomic.Int64
	lastAckNS     atomic.Int64 // unix nanoseconds of the latest acknowledgement
	lastErrNS     atomic.Int64 // unix nanoseconds of the latest failed record
	lastErr       atomic.Pointer[string]
	wasUp         atomic.Bool   // readiness has been up once: a later down is an outage
	failLog       *rate.Limiter // "Failed to publish" lines
	failQuiet     atomic.Int64  // failures not logged since the last line
	failSummaryNS atomic.Int64  // unix nanoseconds of the last "Failed to publish more matches"

	// lastProduceNS is when the latest record was handed to the client,
	// and sendNow, while not nil, cancels the flush that sends records at
	// once after a pause (see sendAfterPause).
	lastProduceNS atomic.Int64
	sendNow       atomic.Pointer[context.CancelFunc]
}

// New returns a Sink for cfg. It does not contact the brokers: an
// unreachable cluster is reported by Status and retried, never fatal. It
// returns an error only for an invalid configuration, or if its metrics
// cannot be registered on reg.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	cfg = cfg.withDefaults()
	opts, err := cfg.clientOpts()
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	s := &Sink{
		cfg:     cfg,
		log:     log,
		state:   health.NewState("no metadata response from the brokers yet"),
		failLog: rate.NewLimiter(failLogRate, failLogBurst),
	}
	s.txn.abandoned, s.txn.abandon = context.WithCancel(context.Background())
	s.clientLog = ClientLogger(log.With("client", "franz-go"))
	opts = append([]kgo.Opt{kgo.WithLogger(s.clientLog)}, opts...)
	s.client, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: new client: %w", err)
	}
	s.metrics, err = newMetrics(reg)
	if err != nil {
		s.client.Close()
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	s.promise = s.onDelivery
	return s, nil
}

// DeliveryFunc is told the outcome of one record produced with Produce:
// err is nil once Kafka acknowledged it. It is called on a client goroutine
// and must not block.
type DeliveryFunc = func(token uint64, err error)

// record is one produced match: the client's record, the caller's token and
// callback, and room for the key and value, in one allocation. It is also
// the record's context (carrying no deadline or cancellation), which is how
// the promise finds it again without a lookup.
type record struct {
	kgo.Record
	ctx   recordContext
	token uint64
	done  DeliveryFunc
	plain bool // handed on through the plain client by an inactive transactional sink (HandOff)
	buf   [2*20 + len(`{"match_id":}`)]byte
}

// recordContext is a record's context: never cancelled, and pointing back
// at its record.
type recordContext struct {
	context.Context
	r *record
}

// Record headers carry what a source knows of a match beyond its ID, as
// decimal ASCII, so that the value stays exactly {"match_id":N} for
// existing consumers. A header is present only when the source knows it.
const (
	// HeaderSeqNum is the match's Steam sequence number (match_seq_num).
	HeaderSeqNum = "match_seq_num"
	// HeaderStartTime is the match's start, in Unix seconds.
	HeaderStartTime = "start_time"
	// HeaderRescanSeqNum is the Steam scanner's rescan position when the
	// match was found (match.Match.RescanSeq): where a restarted rescan
	// resumes.
	HeaderRescanSeqNum = "rescan_seq_num"
)

// headers returns the headers of m, in one allocation.
// encode sets r's key (the decimal match ID), value ({"match_id":N}) and
// sequence headers for m, the key and value appended to buf.
func encode(r *kgo.Record, m match.Match, buf []byte) {
	b := m.AppendKey(buf)
	k := len(b)
	b = m.AppendValue(b)
	r.Key, r.Value = b[:k:k], b[k:]
	if m.SeqNum != 0 || m.StartTime != 0 || m.RescanSeq != 0 {
		r.Headers = headers(m)
	}
}

func headers(m match.Match) []kgo.RecordHeader {
	var h struct {
		hs  [3]kgo.RecordHeader
		buf [60]byte
	}
	hp := &h
	out := hp.hs[:0]
	b := hp.buf[:0]
	if m.SeqNum != 0 {
		n := len(b)
		b = strconv.AppendInt(b, m.SeqNum, 10)
		out = append(out, kgo.RecordHeader{Key: HeaderSeqNum, Value: b[n:len(b):len(b)]})
	}
	if m.StartTime != 0 {
		n := len(b)
		b = strconv.AppendInt(b, m.StartTime, 10)
		out = append(out, kgo.RecordHeader{Key: HeaderStartTime, Value: b[n:len(b):len(b)]})
	}
	if m.RescanSeq != 0 {
		n := len(b)
		b = strconv.AppendInt(b, m.RescanSeq, 10)
		out = append(out, kgo.RecordHeader{Key: HeaderRescanSeqNum, Value: b[n:len(b):len(b)]})
	}
	return out
}

// Publish produces m with no delivery callback; see Produce.
func (s *Sink) Publish(ctx context.Context, m match.Match) error {
	return s.Produce(ctx, m, 0, nil)
}

// Produce hands m to the client as one record: key the decimal match ID,
// value exactly {"match_id":N}. It returns once the record is buffered, not
// when it is acknowledged; done, if not nil, is then called with token and
// the outcome, which is also counted and, on failure, logged with the match
// ID. It blocks while MaxBufferedRecords are buffered; if ctx ends while it
// waits, the record fails with ctx's error. It returns ctx's error without
// producing if ctx has already ended, and ErrClosed after Close; done is
// not called then.
func (s *Sink) Produce(ctx context.Context, m match.Match, token uint64, done DeliveryFunc) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &record{token: token, done: done}
	encode(&r.Record, m, r.buf[:0])
	r.Timestamp = time.Now()
	r.ctx = recordContext{Context: context.Background(), r: r}
	r.Record.Context = &r.ctx
	if s.transactional() {
		s.txn.gate.RLock()
		defer s.txn.gate.RUnlock()
		if s.txn.cl == nil {
			if !s.txn.handoff.Load() {
				return ErrNotLeader
			}
			r.plain = true
			s.client.Produce(ctx, &r.Record, s.promise)
			return nil
		}
		s.txn.cl.Produce(ctx, &r.Record, s.promise)
		return nil
	}
	s.client.Produce(ctx, &r.Record, s.promise)
	s.sendAfterPause(r.Timestamp.UnixNano())
	return nil
}

// sendAfterPause sends a record handed over after a pause longer than the
// linger at once, rather than have it linger. No other record would join
// its batch in time: a stream that slow gains nothing from the linger but
// its latency, and its timer costs a wake-up of the process per record
// (two, and the runtime's monitor's, since the poller counts in whole
// milliseconds), which at a live stream's rates is most of the CPU the
// service uses. A record that follows within the linger lingers as
// always, so that a busy stream is batched exactly as configured: it also
// ends the flush that sends at once, if one still runs.
//
// Sending at once is a flush of the client, in the background: franz-go
// sends a flushing client's records without lingering. It ends when the
// client holds no more records, or when cancelled.
func (s *Sink) sendAfterPause(now int64) {
	if s.cfg.Linger <= 0 {
		return
	}
	if now-s.lastProduceNS.Swap(now) <= int64(s.cfg.Linger) {
		// A load first: a busy stream has no flush to end, and should not
		// pay an exchange per record for it.
		if s.sendNow.Load() != nil {
			if c := s.sendNow.Swap(nil); c != nil {
				(*c)()
			}
		}
		return
	}
	if s.sendNow.Load() != nil {
		return // a flush already sends everything at once
	}
	ctx, cancel := context.WithCancel(context.Background())
	if !s.sendNow.CompareAndSwap(nil, &cancel) {
		cancel()
		return
	}
	go func() {
		_ = s.client.Flush(ctx)
		s.sendNow.CompareAndSwap(&cancel, nil)
		cancel()
	}()
}

func (s *Sink) onDelivery(kr *kgo.Record, err error) {
	r := kr.Context.(*recordContext).r
	switch {
	case err != nil:
		s.deliveryFailed(r, err)
	case s.transactional() && !r.plain:
		// Acknowledged, but delivered only once its transaction commits.
		s.txn.mu.Lock()
		s.txn.pending = append(s.txn.pending, r)
		s.txn.mu.Unlock()
	default:
		s.delivered(r)
	}
}

// delivered counts r as published and tells its owner.
func (s *Sink) delivered(r *record) {
	now := time.Now()
	s.published.Add(1)
	s.lastAckNS.Store(now.UnixNano())
	s.metrics.published.Inc()
	s.metrics.latency.Observe(now.Sub(r.Timestamp).Seconds())
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("Published match", "match_id", string(r.Key), "partition", r.Partition, "offset", r.Offset)
	}
	r.tell(nil)
}

// deliveryFailed counts and logs r as failed and tells its owner. A record
// withdrawn rather than refused (the sink is closing, or its owner's
// context ended: both happen at shutdown) is handed back without being
// logged or counted as a failure: its owner keeps it for the next start or
// reports it lost.
func (s *Sink) deliveryFailed(r *record, err error) {
	if s.closed.Load() || withdrawn(err) {
		r.tell(err)
		return
	}
	if s.transactional() && (errors.Is(err, ErrFenced) || isFenced(err)) {
		// Another replica's writer took over: the fencing is logged once,
		// with its count, and says nothing of Kafka's health.
		s.metrics.failed.WithLabelValues("fenced").Inc()
		r.tell(err)
		return
	}
	perm := s.countFailure(err)
	if !errors.Is(err, ErrNotLeader) {
		if !s.failLog.Allow() {
			s.failQuiet.Add(1)
		} else {
			attrs := []any{"match_id", string(r.Key), "topic", r.Topic, "error", err, "permanent", perm}
			if n := s.failQuiet.Swap(0); n > 0 {
				attrs = append(attrs, "suppressed_since_last", n)
			}
			s.log.Error("Failed to publish match", attrs...)
		}
	}
	r.tell(err)
}

// deliveryFailedQuietly counts r as failed, as deliveryFailed does, and
// tells its owner, without a line of its own: the caller logs the batch.
func (s *Sink) deliveryFailedQuietly(r *record, err error) {
	s.countFailure(err)
	r.tell(err)
}

// tell gives r's owner its outcome, if it asked for it.
func (r *record) tell(err error) {
	if r.done != nil {
		r.done(r.token, err)
	}
}

// countFailure counts a failed record, and keeps err for readiness. It
// reports whether err is permanent.
func (s *Sink) countFailure(err error) bool {
	s.failed.Add(1)
	s.lastErrNS.Store(time.Now().UnixNano())
	msg := err.Error()
	perm := permanent(err)
	if perm {
		msg = "permanent, retrying will not help (fix the topic or the broker's settings, or the ACLs): " + msg
	}
	s.lastErr.Store(&msg)
	s.metrics.failed.WithLabelValues(errorClass(err)).Inc()
	return perm
}

// withdrawn reports whether err is this process giving a record up, not
// Kafka refusing it.
func withdrawn(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed)
}

// The "Failed to publish" lines: three at once, then at most one every
// ten seconds, each with the count of those left out since the one before
// (and a summary of the rest at a probe, at most every ten seconds). A broker refusing every
// record would otherwise log each one, and each retry of it; the relay
// that holds them for a retry reports them by cause.
const (
	failLogRate      = 0.1
	failLogBurst     = 3
	failSummaryEvery = 10 * time.Second
)

// Classify names the cause of a delivery error, as the
// ingestion_publish_errors_total metric labels it, and reports whether
// retrying cannot mend it (a record too large, access refused, an
// invalid record): the relay groups and paces its retries by it.
func Classify(err error) (cause string, permanentErr bool) {
	return errorClass(err), permanent(err)
}

// permanent reports whether err will recur however often the record is
// retried: the record or the request is refused for what it is, or the
// client is not allowed to write the topic.
func permanent(err error) bool {
	for _, e := range []*kerr.Error{
		kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord, kerr.CorruptMessage,
		kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed,
		kerr.InvalidTopicException, kerr.UnsupportedForMessageFormat, kerr.InvalidRequiredAcks,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// errorClass maps a delivery error to a low-cardinality metric label.
func errorClass(err error) string {
	var ke *kerr.Error
	switch {
	case errors.Is(err, ErrFenced):
		return "fenced"
	case errors.Is(err, ErrNotLeader):
		return "not_leader"
	case errors.Is(err, kgo.ErrClientClosed):
		return "client_closed"
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "delivery_timeout"
	case errors.Is(err, kgo.ErrRecordRetries):
		return "retries_exhausted"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.As(err, &ke):
		return ke.Message
	}
	return "other"
}

// Published returns how many records Kafka has acknowledged.
func (s *Sink) Published() int64 { return s.published.Load() }

// Failed returns how many records finally failed.
func (s *Sink) Failed() int64 { return s.failed.Load() }

// Buffered returns how many records await an acknowledgement.
func (s *Sink) Buffered() int64 {
	n := s.client.BufferedProduceRecords() // a transactional sink's hand-off
	if cl := s.txn.live.Load(); cl != nil {
		n += cl.BufferedProduceRecords()
	}
	return n
}

// Status reports whether Kafka currently accepts the sink's records.
func (s *Sink) Status() health.Status { return s.state.Status() }

// Run keeps Status current until ctx ends: every ProbeInterval it asks the
// brokers for the topic's metadata, and it also reports not ready while
// records fail or stay unacknowledged for StallAfter. It returns nil when
// ctx ends.
func (s *Sink) Run(ctx context.Context) error {
	if s.transactional() {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() { defer close(done); s.runCommits(ctx) }()
	}
	if !s.transactional() {
		// Load the idempotent producer's ID now, not when the first match
		// arrives: on a fresh cluster the brokers may take a few retries
		// (and a second) to hand one out. Readiness waits for it.
		go s.loadProducerID(ctx)
	}
	t := time.NewTicker(s.cfg.ProbeInterval)
	defer t.Stop()
	for {
		s.probe(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// loadProducerID loads the idempotent producer's ID, retrying every
// second until it succeeds or ctx ends.
func (s *Sink) loadProducerID(ctx context.Context) {
	for {
		_, _, err := s.client.ProducerID(ctx)
		if err == nil {
			s.producerReady.Store(true)
			s.probe(ctx) // ready now, not at the next probe
			return
		}
		s.log.Debug("Loading the producer ID failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *Sink) probe(ctx context.Context) {
	if last := s.failSummaryNS.Load(); time.Since(time.Unix(0, last)) < failSummaryEvery {
		// Summarised a moment ago: the count waits for the next.
	} else if n := s.failQuiet.Swap(0); n > 0 {
		s.failSummaryNS.Store(time.Now().UnixNano())
		reason := ""
		if p := s.lastErr.Load(); p != nil {
			reason = *p
		}
		s.log.Error("Failed to publish more matches", "count", n, "last_error", reason)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	defer cancel()
	err := s.checkTopic(ctx)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		err = s.missingTopic(ctx)
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return // shutting down
		}
		s.setDown(fmt.Sprintf("metadata for topic %q: %v", s.cfg.Topic, err))
		return
	}
	now := time.Now()
	lastAck := time.Unix(0, s.lastAckNS.Load())
	if s.transactional() && !s.Active() {
		// A standby writes nothing: it is ready if it could lead, and
		// the brokers answering is Kafka's part of that (its membership
		// is the fleet check's). What a writer it dropped failed, it no
		// longer sends.
		s.markUp()
		return
	}
	if errNS := s.lastErrNS.Load(); errNS != 0 && errNS > s.lastAckNS.Load() {
		reason := "unknown error"
		if p := s.lastErr.Load(); p != nil {
			reason = *p
		}
		s.setDown("records are failing: " + reason)
		return
	}
	if ns := s.txn.endingNS.Load(); ns != 0 && now.Sub(time.Unix(0, ns)) > s.cfg.StallAfter {
		s.setDown(fmt.Sprintf("a transaction has waited %s for Kafka to commit it", now.Sub(time.Unix(0, ns)).Round(time.Second)))
		return
	}
	if buffered := s.Buffered(); buffered > 0 && s.lastAckNS.Load() != 0 && now.Sub(lastAck) > s.cfg.StallAfter {
		s.setDown(fmt.Sprintf("%d records buffered and none acknowledged for %s", buffered, now.Sub(lastAck).Round(time.Second)))
		return
	}
	if !s.transactional() && !s.producerReady.Load() {
		s.setDown("waiting for the brokers to hand the producer an ID")
		return
	}
	s.markUp()
}

// markUp reports the sink ready, logging the end of an outage.
func (s *Sink) markUp() {
	s.missingLogged.Store(false)
	if st := s.state.Status(); !st.Up && s.wasUp.Load() {
		s.log.Info("Kafka ready again", "down_for", time.Since(st.Since).Round(time.Millisecond).String(), "was", st.Detail)
	}
	s.wasUp.Store(true)
	s.state.Set(true, fmt.Sprintf("topic %q reachable", s.cfg.Topic))
	s.metrics.up.Set(1)
}

func (s *Sink) setDown(detail string) {
	if s.state.Status().Up {
		s.log.Warn("Kafka not ready", "reason", detail) // once an outage; "Kafka ready again" ends it
	}
	s.state.Set(false, detail)
	s.metrics.up.Set(0)
}

// ErrTopicMissing is reported while the topic does not exist and
// CreateTopic is off.
var ErrTopicMissing = errors.New("topic does not exist; create it, or set KAFKA_CREATE_TOPIC=true to let the service create it")

// missingTopic creates the topic if configured to, else reports it missing
// (logging that once per disappearance).
func (s *Sink) missingTopic(ctx context.Context) error {
	if !s.cfg.CreateTopic {
		if !s.missingLogged.Swap(true) {
			s.log.Error("Kafka topic does not exist; records wait until it is created",
				"topic", s.cfg.Topic, "setting", "KAFKA_CREATE_TOPIC", "fix", "create the topic, or set KAFKA_CREATE_TOPIC=true")
		}
		return ErrTopicMissing
	}
	if _, err := createTopic(ctx, s.client, s.cfg.Topic, s.cfg.topicSpec(), s.log); err != nil {
		return err
	}
	return s.checkTopic(ctx)
}

// checkTopic asks the cluster for the topic's metadata and checks that
// every partition has a leader.
func (s *Sink) checkTopic(ctx context.Context) error { return topicLed(ctx, s.client, s.cfg.Topic) }

// topicLed asks the cluster for topic's metadata and checks that every
// partition has a leader. A missing topic is kerr.UnknownTopicOrPartition.
func topicLed(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("broker answered for %d topics", len(resp.Topics))
	}
	rt := resp.Topics[0]
	if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
		return err
	}
	if len(rt.Partitions) == 0 {
		return errors.New("topic has no partitions")
	}
	for _, p := range rt.Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			return fmt.Errorf("partition %d: %w", p.Partition, err)
		}
		if p.Leader < 0 {
			return fmt.Errorf("partition %d has no leader", p.Partition)
		}
	}
	return nil
}

// topicSpec is what a topic the service creates is made with.
type topicSpec struct {
	partitions int32 // -1: the brokers' num.partitions
	rf         int16 // -1: the brokers' default.replication.factor
	configs    map[string]*string
}

// topicSpec is the spec of the topics the sink and the page writers
// create: the configured partitions and replication factor.
func (c Config) topicSpec() topicSpec {
	spec := topicSpec{partitions: c.TopicPartitions, rf: c.TopicReplicationFactor}
	if spec.partitions == 0 {
		spec.partitions = -1
	}
	if spec.rf == 0 {
		spec.rf = -1
	}
	return spec
}

// createTopic creates topic to spec and logs what the brokers made of it
// (the partitions and replication factor they chose for a -1). It reports
// whether this call created it: a topic that exists already is no error
// and no news (another part of the service, or another replica, created
// it a moment ago, or the client's retry found its first request done),
// so it logs nothing.
func createTopic(ctx context.Context, cl *kgo.Client, topic string, spec topicSpec, log *slog.Logger) (created bool, err error) {
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, spec.partitions, spec.rf, spec.configs, topic)
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create topic %s: %w", topic, err)
	}
	attrs := []any{"topic", topic, "partitions", resp.NumPartitions, "replication_factor", resp.ReplicationFactor}
	if p := spec.configs["cleanup.policy"]; p != nil {
		attrs = append(attrs, "cleanup_policy", *p)
	}
	log.Info("Created Kafka topic", attrs...)
	return true, nil
}

// Flush sends every buffered record now, without waiting for the linger,
// and returns once all are acknowledged or failed, or ctx ends.
func (s *Sink) Flush(ctx context.Context) error {
	if s.transactional() {
		// Commit now: what the transaction holds is delivered.
		s.txn.gate.Lock()
		defer s.txn.gate.Unlock()
		if s.txn.cl != nil {
			s.endLocked(ctx, true)
		}
		return ctx.Err()
	}
	return s.client.Flush(ctx)
}

// Close stops accepting records, waits until every buffered record is
// acknowledged or ctx ends, then closes the client. Records not
// acknowledged by then are handed back to their owners failed, without
// being logged or counted as failures (they are not Kafka's refusals), and
// Close returns an error saying how many there were.
func (s *Sink) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	if c := s.sendNow.Swap(nil); c != nil {
		(*c)()
	}
	if s.transactional() {
		s.Deactivate(ctx) // commits what it can; the rest is handed back
	}
	var err error
	if ferr := s.client.Flush(ctx); ferr != nil {
		// Counted before the client fails them: they are buffered until
		// their outcome is known.
		err = fmt.Errorf("kafka sink: %d records not acknowledged at close: %w", s.client.BufferedProduceRecords(), ferr)
	}
	s.client.Close()
	s.state.Set(false, "closed")
	return err
}
