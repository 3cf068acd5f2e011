package steamtxn

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/steamseq"
)

// Topics are the topics a Steam scan writes in each page's transaction.
type Topics struct {
	// IDs receives a record per match (the sink's topic,
	// KAFKA_PUBLISH_TOPIC).
	IDs string
	// Matches receives each match's whole object; empty writes none.
	Matches string
	// Cursor is the compacted topic of the scans' cursors.
	Cursor string
}

// PageConfig returns the configuration of the writer of the unit of work
// on topics (the forward scan with no unit, or ShardUnit): its
// transactional ID, its cursor key, and batches large enough for pages of
// match objects.
func PageConfig(kcfg kafkasink.Config, topics Topics, unit string) kafkasink.PageConfig {
	if topics.Matches != "" {
		// Match objects are about 14 KB: batches of most of a page
		// compress them to a sixth.
		kcfg.BatchMaxBytes = max(kcfg.BatchMaxBytes, 1<<20)
	}
	key := topics.IDs
	if unit != "" {
		key = topics.IDs + "." + unit
	}
	return kafkasink.PageConfig{
		Kafka:           kcfg,
		TransactionalID: TransactionalID(topics.IDs, unit),
		CursorTopic:     topics.Cursor,
		CursorKey:       key,
		Topics:          []string{topics.Matches},
	}
}

// Forward returns the forward scan's Job: sc writes through w, resuming
// from the last committed cursor, or, in a topic an earlier version
// wrote without a cursor topic, after the highest match_seq_num the
// sink's topic holds. stopWhenFenced is set in a fleet, where a fenced
// writer means that another replica leads.
func Forward(kcfg kafkasink.Config, topics Topics, sc *steamseq.Scanner, w *Writer, sink *kafkasink.Sink, stopWhenFenced bool, log *slog.Logger) Job {
	fallback := resumeFromTopic(sink, log)
	return Job{
		Name:           "forward scan",
		Pages:          PageConfig(kcfg, topics, ""),
		StopWhenFenced: stopWhenFenced,
		Scan: func(ctx context.Context, cursor []byte, pages *kafkasink.PageWriter) error {
			w.Use(pages)
			resume := func(ctx context.Context, behind, ceiling int64) (steamseq.Resume, error) {
				if cursor == nil {
					// A topic an earlier version wrote, or none; unless a
					// backfill wrote what it holds. Its records commit
					// with its shards' cursors, so reading the cursors
					// after the topic sees every shard whose records the
					// topic read saw (a read waits for the transactions
					// open when it begins, whose markers each partition
					// gets in its own time).
					res, ferr := fallback(ctx, behind, ceiling)
					backfilled, err := hasShardCursors(ctx, kcfg, topics)
					if err != nil {
						return steamseq.Resume{}, err
					}
					if backfilled {
						log.Info("No cursor of the forward scan yet, and the topic holds a backfill's records: starting as on an empty topic")
						return steamseq.Resume{}, nil
					}
					return res, ferr
				}
				c, err := DecodeCursor(cursor)
				if err != nil {
					return steamseq.Resume{}, err
				}
				res := steamseq.Resume{Found: true, Seq: c.Primary, Rescan: c.Rescan}
				if behind > 0 {
					readCtx, cancel := context.WithTimeout(ctx, time.Minute)
					defer cancel()
					if res.Delivered, err = sink.SeqsAbove(readCtx, c.Rescan, c.Primary); err != nil {
						return steamseq.Resume{}, fmt.Errorf("read the match_seq_nums delivered above %d in Kafka: %w", c.Rescan, err)
					}
				}
				log.Info("Resuming from the last committed cursor", "primary", c.Primary, "rescan", c.Rescan, "cursor_topic", topics.Cursor)
				return res, nil
			}
			return sc.Run(ctx, resume, w)
		},
	}
}

// resumeFromTopic finds where the scanner stopped in a topic that has no
// committed cursor (written by a version before the cursor topic): the
// highest match_seq_num and rescan position in its newest records, and
// the seqs delivered above the rescan position.
func resumeFromTopic(sink *kafkasink.Sink, log *slog.Logger) steamseq.ResumeFunc {
	return func(ctx context.Context, behind, ceiling int64) (steamseq.Resume, error) {
		readCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		st, err := sink.ScanState(readCtx, kafkasink.Plausible{Ceiling: ceiling, MaxGap: steamseq.MaxSeqJump})
		if err != nil {
			return steamseq.Resume{}, fmt.Errorf("read the highest match_seq_num in Kafka: %w", err)
		}
		if st.Implausible > 0 {
			log.Error("The topic holds records with an implausible match_seq_num, written by a version that did not bound them; resuming as if they were not there",
				"records", st.Implausible, "highest", st.HighestImplausible, "max_jump", steamseq.MaxSeqJump)
		}
		if st.Seq == 0 {
			return steamseq.Resume{Foreign: st.Records}, nil
		}
		res := steamseq.Resume{Found: true, Seq: st.Seq, Rescan: st.Rescan}
		if res.Rescan == 0 || res.Rescan > res.Seq {
			// Written by a version without the rescan: read the last
			// behind seqs again.
			res.Rescan = max(res.Seq-behind, 0)
		}
		if behind > 0 {
			if res.Delivered, err = sink.SeqsAbove(readCtx, res.Rescan, res.Seq); err != nil {
				return steamseq.Resume{}, fmt.Errorf("read the match_seq_nums delivered above %d in Kafka: %w", res.Rescan, err)
			}
		}
		log.Info("Resuming after the highest match_seq_num in Kafka", "match_seq_num", res.Seq,
			"rescan_after", res.Rescan, "delivered_above_rescan", len(res.Delivered))
		return res, nil
	}
}

// hasShardCursors reports whether the cursor topic holds a backfill
// shard's cursor for the topics.
func hasShardCursors(ctx context.Context, kcfg kafkasink.Config, topics Topics) (bool, error) {
	readCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	recs, err := kafkasink.ReadCursors(readCtx, kcfg, topics.Cursor, func(k string) bool { return IsShardCursorKey(topics.IDs, k) })
	if err != nil {
		return false, fmt.Errorf("read the cursor topic %s: %w", topics.Cursor, err)
	}
	return len(recs) > 0, nil
}
