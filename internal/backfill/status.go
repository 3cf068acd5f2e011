package backfill

import (
	"context"
	"fmt"
	"time"

	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/steamtxn"
)

// Progress is where a backfill stands, as its shards' committed cursors
// say.
type Progress struct {
	// Shards are the plan's shards, in order.
	Shards []ShardProgress `json:"shards"`
	// Seqs is the range's length; SeqsDone the seqs read of it.
	Seqs     int64 `json:"seqs"`
	SeqsDone int64 `json:"seqs_done"`
	// Matches counts the matches written.
	Matches int64 `json:"matches"`
	// SkippedSeqs counts the seqs stepped past.
	SkippedSeqs int64 `json:"skipped_seqs"`
	// Rate is the seqs a second over the last minutes, of the shards that
	// are not done; MatchRate the matches.
	Rate      float64 `json:"seqs_per_second"`
	MatchRate float64 `json:"matches_per_second"`
	// ETASeconds is the estimated time to finish at Rate, -1 if unknown.
	ETASeconds float64 `json:"eta_seconds"`
	// Finished reports that every shard is done.
	Finished bool `json:"finished"`
}

// ShardProgress is one shard's part of Progress.
type ShardProgress struct {
	Index int            `json:"shard"`
	Range steamseq.Range `json:"range"`
	// Started reports that the shard committed a page.
	Started bool `json:"started"`
	// Record is its last committed cursor record, when Started.
	steamtxn.ShardRecord
	// SeqsDone is the seqs read of its range.
	SeqsDone int64 `json:"seqs_done"`
	// Rate is its seqs a second over the last minutes.
	Rate       float64 `json:"seqs_per_second"`
	ETASeconds float64 `json:"eta_seconds"`
}

// Read reads the last committed cursor of each of shards from the cursor
// topic as a consumer of committed data, and sums them up.
func Read(ctx context.Context, kcfg kafkasink.Config, topics steamtxn.Topics, shards []steamseq.Range) (Progress, error) {
	keys := map[string]int{}
	for i, r := range shards {
		keys[steamtxn.ShardCursorKey(topics.IDs, r)] = i
	}
	recs, err := kafkasink.ReadCursors(ctx, kcfg, topics.Cursor, func(k string) bool { _, ok := keys[k]; return ok })
	if err != nil {
		return Progress{}, fmt.Errorf("backfill: read the cursor topic %s: %w", topics.Cursor, err)
	}
	p := Progress{Finished: len(shards) > 0, ETASeconds: -1}
	var remaining int64
	for i, r := range shards {
		sp := ShardProgress{Index: i, Range: r, ETASeconds: -1}
		sp.ShardRecord.ShardCursor = steamseq.StartShard(r)
		if b, ok := recs[steamtxn.ShardCursorKey(topics.IDs, r)]; ok {
			rec, err := steamtxn.DecodeShard(b)
			if err != nil {
				return Progress{}, fmt.Errorf("backfill: shard %d: %w", i, err)
			}
			sp.ShardRecord, sp.Started = rec, true
		}
		sp.SeqsDone = r.Len() - sp.Remaining()
		if seqs, matches, ok := sp.ShardRecord.Rate(); ok && !sp.ShardRecord.Done() && time.Since(sp.Updated) < steamtxn.RateWindow {
			sp.Rate = seqs
			p.Rate += seqs
			p.MatchRate += matches
			if seqs > 0 {
				sp.ETASeconds = float64(sp.Remaining()) / seqs
			}
		}
		if sp.ShardRecord.Done() {
			sp.ETASeconds = 0
		} else {
			p.Finished = false
		}
		p.Seqs += r.Len()
		p.SeqsDone += sp.SeqsDone
		p.Matches += sp.Matches
		p.SkippedSeqs += sp.SkippedSeqs()
		remaining += sp.Remaining()
		p.Shards = append(p.Shards, sp)
	}
	switch {
	case p.Finished:
		p.ETASeconds = 0
	case p.Rate > 0:
		p.ETASeconds = float64(remaining) / p.Rate
	}
	return p, nil
}
