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

// Rejecter counts and logs an entry that held no valid match (the
// pipeline does).
type Rejecter interface {
	Reject(ctx context.Context, reason match.Reason, item []byte)
}

// Writer is the scanner's steamseq.PageHandler. It is used by one scanner
// at a time, which never interleaves pages.
type Writer struct {
	pages        Pages
	matchesTopic string
	rejects      Rejecter
	m            *metrics

	pageMatches int
	pageBytes   int
}

type metrics struct {
	transactions *prometheus.CounterVec
	objectBytes  prometheus.Counter
	cursor       *prometheus.GaugeVec
}

// New returns a Writer that writes through pages, the match objects to
// matchesTopic unless it is empty, and hands rejected entries to rejects.
// It registers on reg ingestion_steam_transactions_total{outcome},
// ingestion_steam_matches_topic_bytes_total and
// ingestion_steam_committed_cursor{cursor}, and fails if it cannot.
func New(pages Pages, matchesTopic string, rejects Rejecter, reg prometheus.Registerer) (*Writer, error) {
	m := &metrics{
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
	}
	for _, c := range []prometheus.Collector{m.transactions, m.objectBytes, m.cursor} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("steamtxn: register metrics: %w", err)
		}
	}
	m.transactions.WithLabelValues("committed")
	m.transactions.WithLabelValues("aborted")
	return &Writer{pages: pages, matchesTopic: matchesTopic, rejects: rejects, m: m}, nil
}

// Match writes m's ID record into the page; with a matches topic it needs
// the object, which MatchObject gives.
func (w *Writer) Match(ctx context.Context, m match.Match) error {
	if w.matchesTopic != "" {
		return fmt.Errorf("steamtxn: match %d came without its object, and STEAM_MATCHES_TOPIC wants it", m.ID)
	}
	w.pageMatches++
	return w.pages.Add(ctx, kafkasink.IDRecord(m))
}

// MatchObject writes m's ID record, and its object to the matches topic,
// into the page.
func (w *Writer) MatchObject(ctx context.Context, m match.Match, object []byte) error {
	if err := w.pages.Add(ctx, kafkasink.IDRecord(m)); err != nil {
		return err
	}
	w.pageMatches++
	if w.matchesTopic == "" {
		return nil
	}
	w.pageBytes += len(object)
	return w.pages.Add(ctx, kafkasink.ObjectRecord(w.matchesTopic, m, object))
}

// Reject hands the entry to the Rejecter: it is counted and logged, not
// written.
func (w *Writer) Reject(ctx context.Context, reason match.Reason, item []byte) {
	w.rejects.Reject(ctx, reason, item)
}

// EndPage commits the page with the cursor after it.
func (w *Writer) EndPage(ctx context.Context, at steamseq.Cursor) error {
	cursor, err := json.Marshal(at)
	if err != nil {
		return fmt.Errorf("steamtxn: encode the cursor: %w", err)
	}
	bytes := w.pageBytes
	w.pageMatches, w.pageBytes = 0, 0
	if err := w.pages.Commit(ctx, cursor); err != nil {
		w.m.transactions.WithLabelValues("aborted").Inc()
		return err
	}
	w.m.transactions.WithLabelValues("committed").Inc()
	w.m.objectBytes.Add(float64(bytes))
	w.m.cursor.WithLabelValues("primary").Set(float64(at.Primary))
	w.m.cursor.WithLabelValues("rescan").Set(float64(at.Rescan))
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
