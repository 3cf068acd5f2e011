package steamtxn

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamseq"
)

// ShardRecord is a backfill shard's cursor record, as each of its pages
// commits it: where the shard stands, and what `backfill status` shows
// of it.
type ShardRecord struct {
	steamseq.ShardCursor
	// Replica names the replica whose writer committed the record.
	Replica string `json:"replica,omitempty"`
	// Started is when the shard's first page was committed.
	Started time.Time `json:"first_commit"`
	// Updated is when this record was committed.
	Updated time.Time `json:"updated"`
	// Recent samples the position and the matches written over the last
	// RateWindow, oldest first, a sample every SampleEvery or more: the
	// shard's recent rate, from one record.
	Recent []Sample `json:"recent,omitempty"`
}

// Sample is where a shard stood at a moment.
type Sample struct {
	// At is the moment, in Unix seconds.
	At int64 `json:"t"`
	// Position is the shard's position then.
	Position int64 `json:"p"`
	// Matches is how many matches it had written then.
	Matches int64 `json:"m"`
}

// The span of ShardRecord.Recent.
const (
	// RateWindow is how far back the samples go.
	RateWindow = 10 * time.Minute
	// SampleEvery is the least time between two samples.
	SampleEvery = 30 * time.Second
)

// Rate returns the seqs and the matches a second over Recent, and false
// when Recent spans no time.
func (r ShardRecord) Rate() (seqs, matches float64, ok bool) {
	if len(r.Recent) < 2 {
		return 0, 0, false
	}
	a, b := r.Recent[0], r.Recent[len(r.Recent)-1]
	d := float64(b.At - a.At)
	if d <= 0 {
		return 0, 0, false
	}
	return float64(b.Position-a.Position) / d, float64(b.Matches-a.Matches) / d, true
}

// next returns the record after r for a page that leaves the shard at
// c, committed by replica at now.
func (r ShardRecord) next(c steamseq.ShardCursor, replica string, now time.Time) ShardRecord {
	out := ShardRecord{ShardCursor: c, Replica: replica, Started: r.Started, Updated: now}
	if out.Started.IsZero() {
		out.Started = now
	}
	cut := now.Add(-RateWindow).Unix()
	for _, s := range r.Recent {
		if s.At >= cut {
			out.Recent = append(out.Recent, s)
		}
	}
	// The last sample moves with the shard until it is SampleEvery past
	// the one before it; then it stays, and a new one moves on.
	s := Sample{At: now.Unix(), Position: c.Position, Matches: c.Matches}
	if n := len(out.Recent); n >= 2 && out.Recent[n-1].At-out.Recent[n-2].At < int64(SampleEvery/time.Second) {
		out.Recent[n-1] = s
	} else {
		out.Recent = append(out.Recent, s)
	}
	return out
}

// DecodeShard reads a cursor record a shard's pages wrote.
func DecodeShard(b []byte) (ShardRecord, error) {
	var r ShardRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return ShardRecord{}, fmt.Errorf("steamtxn: shard cursor %q: %w", b, err)
	}
	if err := r.Check(); err != nil {
		return ShardRecord{}, fmt.Errorf("steamtxn: shard cursor %q: %w", b, err)
	}
	return r, nil
}

// ShardWriter writes a backfill shard's pages: it is the shard's
// steamseq.ShardHandler. Each page is one transaction of its Pages, with
// the shard's ShardRecord as the cursor.
type ShardWriter struct {
	*Writer
	replica string
	rejects Rejecter
	last    ShardRecord
	now     func() time.Time
	record  func(ShardRecord)
}

// OnRecord makes the writer call f with each record it commits.
func (w *ShardWriter) OnRecord(f func(ShardRecord)) { w.record = f }

// Rejecter counts and logs an entry that holds no valid match (the
// pipeline).
type Rejecter interface {
	Reject(ctx context.Context, reason match.Reason, item []byte)
}

// NewShardWriter returns the writer of a shard whose last committed
// record is last (the zero ShardRecord before its first page), writing
// objects to matchesTopic unless it is empty, counting in m, handing
// rejected entries to rejects, and naming replica in its records. Give it
// Pages with Use before a scan.
func NewShardWriter(matchesTopic string, m *Metrics, rejects Rejecter, replica string, last ShardRecord) *ShardWriter {
	return &ShardWriter{Writer: NewWriter(matchesTopic, m), replica: replica, rejects: rejects, last: last, now: time.Now}
}

// MatchObject writes m and its object into the page at once: a shard
// reads each seq of its range once per committed page, so there is
// nothing to de-duplicate (a window of IDs seen would only drop a match
// read again after a page that did not commit).
func (w *ShardWriter) MatchObject(ctx context.Context, m match.Match, object []byte) error {
	w.started()
	w.object = object
	defer func() { w.object = nil }()
	return w.Publish(ctx, m)
}

// Reject hands the entry to the Rejecter: counted and logged, not
// written.
func (w *ShardWriter) Reject(ctx context.Context, reason match.Reason, item []byte) {
	w.rejects.Reject(ctx, reason, item)
}

// EndShardPage commits the page with the shard's record after it.
func (w *ShardWriter) EndShardPage(ctx context.Context, at steamseq.ShardCursor) error {
	rec := w.last.next(at, w.replica, w.now().UTC())
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("steamtxn: encode the shard cursor: %w", err)
	}
	if err := w.commit(ctx, b); err != nil {
		return err
	}
	w.last = rec
	if w.record != nil {
		w.record(rec)
	}
	return nil
}

// Last returns the last record the writer committed, or the one it
// started from.
func (w *ShardWriter) Last() ShardRecord { return w.last }
