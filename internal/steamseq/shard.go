package steamseq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/match"
)

// Range is a bounded part of the sequence: the seqs From to To-1.
type Range struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// Len returns how many seqs r holds.
func (r Range) Len() int64 { return max(r.To-r.From, 0) }

// String writes r as [From,To).
func (r Range) String() string { return fmt.Sprintf("[%d,%d)", r.From, r.To) }

// SeqRange is a run of seqs, First to Last, both included.
type SeqRange struct {
	First int64 `json:"first"`
	Last  int64 `json:"last"`
}

// ShardCursor is where a backfill shard stands: what its pages'
// transactions commit with them.
type ShardCursor struct {
	// Range is the shard's part of the sequence.
	Range
	// Position is the last seq handled: every seq of the range up to it
	// was read and its match written, or stepped past. From-1 before the
	// first page.
	Position int64 `json:"position"`
	// Matches counts the matches the shard wrote.
	Matches int64 `json:"matches"`
	// Skipped are the seqs stepped past because Steam kept failing to
	// serve them, for a later run to read again.
	Skipped []SeqRange `json:"skipped,omitempty"`
}

// StartShard returns the cursor of a shard over r that has read nothing.
func StartShard(r Range) ShardCursor { return ShardCursor{Range: r, Position: r.From - 1} }

// Done reports whether the shard has handled its whole range.
func (c ShardCursor) Done() bool { return c.Position >= c.To-1 }

// Remaining returns how many seqs of the range are left to read.
func (c ShardCursor) Remaining() int64 { return max(c.To-1-c.Position, 0) }

// SkippedSeqs returns how many seqs the shard stepped past.
func (c ShardCursor) SkippedSeqs() int64 {
	var n int64
	for _, s := range c.Skipped {
		n += s.Last - s.First + 1
	}
	return n
}

// Check reports what makes c impossible: an empty range, or a position
// outside it.
func (c ShardCursor) Check() error {
	switch {
	case c.From < 1 || c.To <= c.From:
		return fmt.Errorf("shard range %s is empty or starts below 1", c.Range)
	case c.Position < c.From-1 || c.Position >= c.To:
		return fmt.Errorf("shard position %d is outside %s", c.Position, c.Range)
	case c.Matches < 0:
		return fmt.Errorf("shard matches %d is negative", c.Matches)
	}
	return nil
}

// ShardHandler takes a backfill shard's pages: each match with its object
// exactly as Steam served it, the entries that hold no valid match, and
// the end of each page with the shard's cursor after it, in one Kafka
// transaction. An error from MatchObject or EndPage ends ScanShard: the
// shard must start again from the last cursor the handler committed.
type ShardHandler interface {
	// MatchObject writes one match of the page.
	MatchObject(ctx context.Context, m match.Match, object []byte) error
	// Reject counts and logs an entry that holds no valid match.
	Reject(ctx context.Context, reason match.Reason, item []byte)
	// EndShardPage ends the page: at is where the shard stands after it.
	EndShardPage(ctx context.Context, at ShardCursor) error
}

// ScanShard reads the shard's range from the seq after at.Position to its
// end, and returns nil once the page that reaches the end is committed,
// or when ctx ends. Matches at or past the range's end are not the
// shard's and are not handed on; a thin or empty page inside the range is
// not the head (the scan goes on at once); a broken match is narrowed
// down and stepped past as by the forward scan, and its seqs are kept in
// the cursor's Skipped. Its calls take the Client's keys after the
// forward scan's. A shard that is done makes no call. It returns an error
// when h does, or for an impossible cursor.
func (s *Client) ScanShard(ctx context.Context, at ShardCursor, h ShardHandler, log *slog.Logger, state *health.State) error {
	if err := at.Check(); err != nil {
		return fmt.Errorf("steam backfill: %w", err)
	}
	if state == nil {
		state = health.NewState("")
	}
	cur := at
	cur.Skipped = append([]SeqRange(nil), at.Skipped...)
	hooks := &scanHooks{
		log:     log,
		state:   state,
		ceiling: func(start int64) int64 { return max(start, cur.To) + MaxSeqJump },
		skipped: func(_ *cursor, from, to int64) string {
			cur.Skipped = append(cur.Skipped, SeqRange{First: from, Last: min(to, cur.To-1)})
			return "kept with the shard's cursor, for a later run to read again"
		},
	}
	c := &cursor{name: cursorBackfill, prio: prioBackfill, next: cur.Position + 1, scan: hooks}
	hctx := context.WithoutCancel(ctx)
	for !cur.Done() && ctx.Err() == nil {
		entries, _, ok := s.fetch(ctx, c, time.Time{})
		if !ok {
			continue
		}
		if len(entries) == 0 && !c.hidden {
			// Nothing listed from here on: the range reaches past the
			// head. Wait for Steam to list more.
			state.Set(true, fmt.Sprintf("at seq %d of %s, past Steam's newest match; waiting", cur.Position, cur.Range))
			if !backoff.Wait(ctx, s.cfg.IdleWait) {
				break
			}
			continue
		}
		written := 0
		for _, e := range entries {
			if e.m.SeqNum >= cur.To {
				break
			}
			if e.reason != "" {
				h.Reject(hctx, e.reason, e.raw[:min(len(e.raw), maxRejectItem)])
			} else {
				if err := h.MatchObject(hctx, e.m, e.raw); err != nil {
					return fmt.Errorf("steam backfill %s: handler refused match %d (seq %d): %w", cur.Range, e.m.ID, e.m.SeqNum, err)
				}
				written++
			}
			c.next = e.m.SeqNum + 1
		}
		if len(entries) > 0 && entries[len(entries)-1].m.SeqNum >= cur.To {
			c.next = cur.To // the page reached past the range: it is read
		}
		next := min(c.next, cur.To)
		cur.Position = next - 1
		cur.Matches += int64(written)
		if err := h.EndShardPage(hctx, cur); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("steam backfill %s: end the page: %w", cur.Range, err)
		}
		state.Set(true, fmt.Sprintf("at seq %d of %s, %d left", cur.Position, cur.Range, cur.Remaining()))
	}
	if cur.Done() {
		state.Set(true, fmt.Sprintf("done: %s, %d matches, %d seqs skipped", cur.Range, cur.Matches, cur.SkippedSeqs()))
	}
	return nil
}
