package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/match"
)

// PageConfig configures a PageWriter.
type PageConfig struct {
	// Kafka gives the brokers, security, compression and batching, and the
	// default topic of records that name none.
	Kafka Config
	// TransactionalID identifies the single writer: a PageWriter that
	// starts with it fences any other.
	TransactionalID string
	// CursorTopic is the compacted topic of cursors, created (one
	// partition, cleanup.policy=compact) if it does not exist.
	CursorTopic string
	// CursorKey keys this source's cursor records.
	CursorKey string
	// Topics are the other topics the pages write to besides
	// Kafka.Topic (checked, like it, at start: created when
	// Kafka.CreateTopic is set, else reported missing).
	Topics []string
}

// ErrPageNotCommitted is returned by Commit when the page's transaction
// was aborted: none of its records is visible to a consumer of committed
// data, and the source must be read again from the last committed cursor.
var ErrPageNotCommitted = errors.New("kafka page writer: the page's transaction was not committed")

// PageWriter writes a replayable source's output in Kafka transactions:
// the records of a page, to any topics, and a cursor record that says
// where the source stands after it, committed together. It is the
// offsets-topic pattern of Kafka Connect's exactly-once sources (KIP-618):
// a consumer reading committed data sees each record once, and a source
// that starts again resumes from the cursor of the last committed page,
// so what an aborted transaction held is read from the source again and
// nothing needs a spool. A PageWriter is for one goroutine at a time.
type PageWriter struct {
	cfg PageConfig
	cl  *kgo.Client
	log *slog.Logger

	mu      sync.Mutex
	open    bool  // a transaction is open
	closed  bool  // Close was called: no transaction opens again
	failed  error // the first record of the open transaction that failed
	records int   // records in the open transaction
}

// NewPageWriter starts the transactional producer (fencing any other
// writer with cfg.TransactionalID: the brokers abort its open transaction
// and refuse what it sends next), makes sure the cursor topic exists, and
// returns the writer with the last committed cursor value for
// cfg.CursorKey, nil if there is none.
func NewPageWriter(ctx context.Context, cfg PageConfig, log *slog.Logger) (*PageWriter, []byte, error) {
	if cfg.TransactionalID == "" || cfg.CursorTopic == "" || cfg.CursorKey == "" {
		return nil, nil, errors.New("kafka page writer: TransactionalID, CursorTopic and CursorKey are required")
	}
	kcfg := cfg.Kafka.withDefaults()
	opts, err := kcfg.clientOpts()
	if err != nil {
		return nil, nil, fmt.Errorf("kafka page writer: %w", err)
	}
	opts = append(opts,
		kgo.WithLogger(ClientLogger(log.With("client", "franz-go"))),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.TransactionTimeout(time.Minute),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka page writer: new client: %w", err)
	}
	w := &PageWriter{cfg: cfg, cl: cl, log: log}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return nil, nil, fmt.Errorf("kafka page writer: start the transactional producer %q: %w", cfg.TransactionalID, err)
	}
	created, err := w.ensureCursorTopic(ctx)
	if err != nil {
		cl.Close()
		return nil, nil, err
	}
	if err := w.ensureTopics(ctx, append([]string{kcfg.Topic}, cfg.Topics...)); err != nil {
		cl.Close()
		return nil, nil, err
	}
	if created {
		return w, nil, nil // a new cursor topic holds no cursor
	}
	cursor, err := w.lastCursor(ctx)
	if err != nil {
		cl.Close()
		return nil, nil, err
	}
	return w, cursor, nil
}

// ensureCursorTopic creates the cursor topic, compacted, of one
// partition, unless it exists, and reports whether it created it.
func (w *PageWriter) ensureCursorTopic(ctx context.Context) (bool, error) {
	compact := "compact"
	spec := topicSpec{partitions: 1, rf: w.cfg.Kafka.withDefaults().topicSpec().rf, configs: map[string]*string{"cleanup.policy": &compact}}
	created, err := createTopic(ctx, w.cl, w.cfg.CursorTopic, spec, w.log)
	if err != nil {
		return false, fmt.Errorf("kafka page writer: the cursor topic: %w", err)
	}
	return created, nil
}

// ensureTopics checks that each topic exists with a leader for every
// partition, as the sink checks its own, creating a missing one when
// Kafka.CreateTopic is set.
func (w *PageWriter) ensureTopics(ctx context.Context, topics []string) error {
	kcfg := w.cfg.Kafka.withDefaults()
	for _, topic := range topics {
		if topic == "" {
			continue
		}
		err := topicLed(ctx, w.cl, topic)
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			if !kcfg.CreateTopic {
				return fmt.Errorf("kafka page writer: topic %s: %w", topic, ErrTopicMissing)
			}
			if _, err := createTopic(ctx, w.cl, topic, kcfg.topicSpec(), w.log); err != nil {
				return fmt.Errorf("kafka page writer: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("kafka page writer: topic %s: %w", topic, err)
		}
	}
	return nil
}

// lastCursor returns the last committed cursor value for the key (see
// ReadCursors), nil if there is none.
func (w *PageWriter) lastCursor(ctx context.Context) ([]byte, error) {
	key := w.cfg.CursorKey
	cursors, err := ReadCursors(ctx, w.cfg.Kafka, w.cfg.CursorTopic, func(k string) bool { return k == key })
	if err != nil {
		return nil, fmt.Errorf("kafka page writer: %w", err)
	}
	return cursors[key], nil
}

// Add hands r to the page's transaction, opening one if none is open. It
// returns once r is buffered; Commit says whether it was written.
func (w *PageWriter) Add(ctx context.Context, r *kgo.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.beginLocked(); err != nil {
		return err
	}
	w.records++
	w.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
		if err != nil {
			w.mu.Lock()
			if w.failed == nil {
				w.failed = err
			}
			w.mu.Unlock()
		}
	})
	return nil
}

// beginLocked opens a transaction unless one is open. A closed writer
// opens none: the rest of a page whose start Close aborted must not be
// committed without it.
func (w *PageWriter) beginLocked() error {
	if w.open {
		return nil
	}
	if w.closed {
		return fmt.Errorf("%w: the writer was closed", ErrPageNotCommitted)
	}
	if err := w.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("kafka page writer: begin a transaction: %w", err)
	}
	w.open, w.failed, w.records = true, nil, 0
	return nil
}

// Commit ends the page: it adds the cursor record and commits the
// transaction. On any failure it aborts, and returns an error that wraps
// ErrPageNotCommitted, and ErrFenced if another writer has taken over
// (this one can then write no more).
func (w *PageWriter) Commit(ctx context.Context, cursor []byte) error {
	w.mu.Lock()
	if err := w.beginLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	w.mu.Unlock()
	if err := w.Add(ctx, &kgo.Record{Topic: w.cfg.CursorTopic, Key: []byte(w.cfg.CursorKey), Value: cursor}); err != nil {
		return err
	}
	ferr := w.cl.Flush(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.open {
		// Close ended the transaction meanwhile (the client would take
		// a commit of no transaction for a success).
		return fmt.Errorf("%w: the writer was closed", ErrPageNotCommitted)
	}
	err := endTransaction(ctx, w.cl, errors.Join(ferr, w.failed))
	w.open = false
	switch {
	case err == nil:
		return nil
	case isFenced(err):
		return fmt.Errorf("%w: %w: %w", ErrPageNotCommitted, ErrFenced, err)
	}
	return fmt.Errorf("%w: %w", ErrPageNotCommitted, err)
}

// Close aborts a transaction left open and closes the producer. It may be
// called while Commit runs (a crash, in tests): the page is then either
// committed before Close, or reported not committed.
func (w *PageWriter) Close(ctx context.Context) {
	w.mu.Lock()
	open := w.open
	w.open, w.closed = false, true
	w.mu.Unlock()
	if open {
		_ = w.cl.AbortBufferedRecords(ctx)
		_ = w.cl.EndTransaction(ctx, kgo.TryAbort)
	}
	w.cl.Close()
}

// IDRecord returns the record Produce writes for m: key the decimal
// match ID, value exactly {"match_id":N}, and m's sequence headers. Its
// topic is empty: the client's default topic.
func IDRecord(m match.Match) *kgo.Record {
	r := &kgo.Record{}
	encode(r, m, make([]byte, 0, 48))
	return r
}

// ObjectRecord returns the record of m's whole match object in topic: the
// key and headers of IDRecord, the value the object's bytes as given (not
// decoded and encoded again: some of its integers do not survive a
// float64).
func ObjectRecord(topic string, m match.Match, object []byte) *kgo.Record {
	r := IDRecord(m)
	r.Topic, r.Value = topic, object
	return r
}

// CountCommitted counts n of the sink topic's records that another writer
// (a PageWriter) committed as published, in Published and the published
// metric, and as a sign that Kafka takes records.
func (s *Sink) CountCommitted(n int) {
	if n <= 0 {
		return
	}
	s.published.Add(int64(n))
	s.lastAckNS.Store(time.Now().UnixNano())
	s.metrics.published.Add(float64(n))
}
