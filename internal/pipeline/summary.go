package pipeline

import (
	"context"
	"log/slog"
	"time"
)

// Delivery reports what became of published matches.
type Delivery interface {
	// Published counts matches acknowledged downstream.
	Published() int64
	// Failed counts matches that finally failed.
	Failed() int64
	// Buffered counts matches awaiting an acknowledgement.
	Buffered() int64
	// Spooled counts matches waiting in the disk spool.
	Spooled() int64
}

// LogSummaries logs, every interval until ctx ends, one info line with the
// totals so far and the rates over the last interval, so that an operator
// sees progress without per-match lines. Its counts add up: every frame
// received was accepted, rejected, a duplicate or dropped. It returns nil when ctx ends.
func (p *Pipeline) LogSummaries(ctx context.Context, every time.Duration, d Delivery) error {
	t := time.NewTicker(every)
	defer t.Stop()
	last := p.Counts()
	lastPublished := d.Published()
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		c := p.Counts()
		published := d.Published()
		secs := now.Sub(lastAt).Seconds()
		p.log.LogAttrs(ctx, slog.LevelInfo, "Ingestion progress",
			slog.Int64("received", c.Received),
			slog.Int64("accepted", c.Accepted),
			slog.Int64("rejected", c.Rejected),
			slog.Int64("duplicates", c.Duplicates),
			slog.Int64("dropped", c.Dropped),
			slog.Int64("published", published),
			slog.Int64("failed", d.Failed()),
			slog.Int64("buffered", d.Buffered()),
			slog.Int64("spooled", d.Spooled()),
			slog.Float64("received_per_s", round1(float64(c.Received-last.Received)/secs)),
			slog.Float64("published_per_s", round1(float64(published-lastPublished)/secs)),
		)
		last, lastPublished, lastAt = c, published, now
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
