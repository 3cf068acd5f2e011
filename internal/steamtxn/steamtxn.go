// Package steamtxn writes what the Steam scanner finds to Kafka exactly
// once. Each page the scanner ends is one Kafka transaction: the page's
// ID records, its match objects (when a matches topic is set), and the
// scanner's cursor after it. A consumer reading committed data sees every
// match once in each topic; a scan that starts again resumes from the
// last committed cursor, so a page whose transaction did not commit is
// simply read from Steam again. The sequence can be replayed, so nothing
// needs a spool.
package steamtxn

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamseq"
)

// Pages is the transactional writer the Writer puts pages through
// (kafkasink.PageWriter).
type Pages interface {
	// Add hands a record to the open transaction.
	Add(ctx context.Context, r *kgo.Record) error
	// Commit writes the cursor and commits the transaction.
	Commit(ctx context.Context, cursor []byte) error
}

// Front counts, de-duplicates and logs the matches (the pipeline): the
// Writer hands each match to it, and it hands the accepted ones back to
// the Writer's Publish.
type Front interface {
	Match(ctx context.Context, m match.Match) error
	Reject(ctx context.Context, reason match.Reason, item []byte)
}

// Writer is the scanner's steamseq.PageHandler, and its Front's
// Publisher. It is used by one scanner at a time, which never interleaves
// pages.
type Writer struct {
	matchesTopic string
	m            *Metrics
	front        Front
	pages        Pages

	object      []byte // of the match in the Front's hands
	pageMatches int
	pageBytes   int
	pageStart   time.Time // when the page's first match came
	onCommit    func(matches int)
}

// Metrics are the Writers' metrics, shared by every Writer of a process
// (the forward scan's and each backfill shard's).
type Metrics struct {
	transactions *prometheus.CounterVec
	objectBytes  prometheus.Counter
	cursor       *prometheus.GaugeVec
	latency      prometheus.Histogram
}

// New returns a Writer that writes the match objects to matchesTopic
// unless it is empty, with Metrics of its own registered on reg
// (NewMetrics). Set its Front, and give it Pages with Use, before a scan.
func New(matchesTopic string, reg prometheus.Registerer) (*Writer, error) {
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	return NewWriter(matchesTopic, m), nil
}

// NewWriter returns a Writer that writes the match objects to
// matchesTopic unless it is empty, counting in m.
func NewWriter(matchesTopic string, m *Metrics) *Writer {
	return &Writer{matchesTopic: matchesTopic, m: m}
}

// NewMetrics registers on reg ingestion_steam_transactions_total{outcome},
// ingestion_steam_matches_topic_bytes_total,
// ingestion_steam_committed_cursor{cursor} and
// ingestion_steam_page_commit_seconds, and fails if it cannot.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestion_steam_transactions_total",
			Help: "Kafka transactions of the Steam scanner's pages, by outcome (committed, aborted).",
		}, []string{"outcome"}),
		objectBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_steam_matches_topic_bytes_total",
			Help: "Bytes of match objects committed to STEAM_MATCHES_TOPIC, before compression.",
		}),
		cursor: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ingestion_steam_committed_cursor",
			Help: "The match_seq_num each cursor (primary, rescan) stood at in the last committed transaction.",
		}, []string{"cursor"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ingestion_steam_page_commit_seconds",
			Help:    "Time from a page's first match, decoded from Steam's answer, to the commit of its transaction.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
	}
	for _, c := range []prometheus.Collector{m.transactions, m.objectBytes, m.cursor, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("steamtxn: register metrics: %w", err)
		}
	}
	m.transactions.WithLabelValues("committed")
	m.transactions.WithLabelValues("aborted")
	return m, nil
}

// SetFront sets the Front every match goes through.
func (w *Writer) SetFront(f Front) { w.front = f }

// OnCommit makes the Writer call f with the number of matches of each
// page it commits.
func (w *Writer) OnCommit(f func(matches int)) { w.onCommit = f }

// Use makes the Writer write through pages from now on (the writer of
// one scan), forgetting what an earlier one left of a page.
func (w *Writer) Use(pages Pages) {
	w.pages, w.object, w.pageMatches, w.pageBytes, w.pageStart = pages, nil, 0, 0, time.Time{}
}

// Match hands m, which came without its object, to the Front; with a
// matches topic there is nothing to write for it, which is an error.
func (w *Writer) Match(ctx context.Context, m match.Match) error {
	if w.matchesTopic != "" {
		return fmt.Errorf("steamtxn: match %d came without its object, and STEAM_MATCHES_TOPIC wants it", m.ID)
	}
	w.started()
	return w.front.Match(ctx, m)
}

// MatchObject hands m to the Front, which publishes it to the Writer with
// object unless it skips it.
func (w *Writer) MatchObject(ctx context.Context, m match.Match, object []byte) error {
	w.started()
	w.object = object
	defer func() { w.object = nil }()
	return w.front.Match(ctx, m)
}

// started notes when the page's first match came.
func (w *Writer) started() {
	if w.pageStart.IsZero() {
		w.pageStart = time.Now()
	}
}

// Publish writes m's ID record, and its object to the matches topic, into
// the page. It is the Front's Publisher.
func (w *Writer) Publish(ctx context.Context, m match.Match) error {
	if err := w.pages.Add(ctx, kafkasink.IDRecord(m)); err != nil {
		return err
	}
	w.pageMatches++
	if w.matchesTopic == "" || w.object == nil {
		return nil
	}
	w.pageBytes += len(w.object)
	return w.pages.Add(ctx, kafkasink.ObjectRecord(w.matchesTopic, m, w.object))
}

// Reject hands the entry to the Front: it is counted and logged, not
// written.
func (w *Writer) Reject(ctx context.Context, reason match.Reason, item []byte) {
	w.front.Reject(ctx, reason, item)
}

// EndPage commits the page with the forward scan's cursor after it.
func (w *Writer) EndPage(ctx context.Context, at steamseq.Cursor) error {
	cursor, err := json.Marshal(at)
	if err != nil {
		return fmt.Errorf("steamtxn: encode the cursor: %w", err)
	}
	if err := w.commit(ctx, cursor); err != nil {
		return err
	}
	w.m.cursor.WithLabelValues("primary").Set(float64(at.Primary))
	w.m.cursor.WithLabelValues("rescan").Set(float64(at.Rescan))
	return nil
}

// commit commits the page with the cursor record, and counts it.
func (w *Writer) commit(ctx context.Context, cursor []byte) error {
	matches, bytes, start := w.pageMatches, w.pageBytes, w.pageStart
	w.pageMatches, w.pageBytes, w.pageStart = 0, 0, time.Time{}
	if err := w.pages.Commit(ctx, cursor); err != nil {
		w.m.transactions.WithLabelValues("aborted").Inc()
		return err
	}
	if w.onCommit != nil {
		w.onCommit(matches)
	}
	w.m.transactions.WithLabelValues("committed").Inc()
	if !start.IsZero() {
		w.m.latency.Observe(time.Since(start).Seconds())
	}
	w.m.objectBytes.Add(float64(bytes))
	return nil
}

// DecodeCursor reads a cursor EndPage wrote.
func DecodeCursor(b []byte) (steamseq.Cursor, error) {
	var c steamseq.Cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return steamseq.Cursor{}, fmt.Errorf("steamtxn: cursor %q: %w", b, err)
	}
	if c.Primary < 0 || c.Rescan < 0 || c.Rescan > c.Primary {
		return steamseq.Cursor{}, fmt.Errorf("steamtxn: cursor %q: positions out of order", b)
	}
	return c, nil
}
