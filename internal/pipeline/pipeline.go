// Package pipeline is the ingest use case: it turns each frame of the
// match stream into a validated match and hands it to a Publisher, and it
// counts and reports what happened to every frame. It knows nothing of
// WebSocket or Kafka.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/dota-data/ingestion-service/internal/dedup"
	"github.com/dota-data/ingestion-service/internal/match"
)

// Publisher delivers valid matches downstream.
type Publisher interface {
	// Publish accepts m for delivery, blocking while the publisher is full.
	// An error means m was not accepted.
	Publish(ctx context.Context, m match.Match) error
}

// Options tunes a Pipeline. Zero fields take the default in their comment.
type Options struct {
	// RejectLogRate caps rejection log lines per second; default 5. Lines
	// over the cap are counted and the count is reported on the next line.
	RejectLogRate float64
	// RejectLogBurst is how many rejection lines may be logged at once;
	// default 20.
	RejectLogBurst int
	// FrameLogBytes is how much of a rejected frame its log line quotes;
	// default 256.
	FrameLogBytes int
	// Dedup, when not nil, drops a match whose ID it has seen recently, so
	// that a stream re-sending matches does not duplicate records. The
	// Pipeline owns it from then on.
	Dedup *dedup.Window
}

// Pipeline validates frames and publishes the matches they hold. Its
// methods are safe for concurrent use, though a Source calls them from one
// goroutine.
type Pipeline struct {
	pub  Publisher
	log  *slog.Logger
	opts Options

	frames     prometheus.Counter
	accepted   prometheus.Counter
	rejected   map[match.Reason]prometheus.Counter
	dropped    prometheus.Counter
	duplicates prometheus.Counter

	nFrames, nAccepted, nRejected, nDropped, nDuplicates atomic.Int64

	rejectLog  *rate.Limiter
	suppressed atomic.Int64
}

// New returns a Pipeline publishing to pub, with its metrics registered on
// reg. It fails only if the metrics cannot be registered.
func New(pub Publisher, log *slog.Logger, reg prometheus.Registerer, opts Options) (*Pipeline, error) {
	if opts.RejectLogRate == 0 {
		opts.RejectLogRate = 5
	}
	if opts.RejectLogBurst == 0 {
		opts.RejectLogBurst = 20
	}
	if opts.FrameLogBytes == 0 {
		opts.FrameLogBytes = 256
	}
	p := &Pipeline{
		pub:  pub,
		log:  log,
		opts: opts,
		frames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_frames_received_total",
			Help: "Frames read from the match stream, valid or not.",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_matches_accepted_total",
			Help: "Valid matches handed to the Kafka publisher.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_matches_dropped_total",
			Help: "Valid matches not accepted for delivery: the buffer was full under drop_newest, or the service was shutting down.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_duplicates_total",
			Help: "Valid matches skipped because their ID was seen within the de-duplication window.",
		}),
		rejected:  make(map[match.Reason]prometheus.Counter, len(match.Reasons)),
		rejectLog: rate.NewLimiter(rate.Limit(opts.RejectLogRate), opts.RejectLogBurst),
	}
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ingestion_frames_rejected_total",
		Help: "Frames that held no valid match, by reason.",
	}, []string{"reason"})
	for _, r := range match.Reasons {
		p.rejected[r] = rejected.WithLabelValues(string(r))
	}
	for _, c := range []prometheus.Collector{p.frames, p.accepted, p.dropped, p.duplicates, rejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pipeline: register metrics: %w", err)
		}
	}
	return p, nil
}

// Frame validates one frame and publishes the match it holds. A frame that
// holds no valid match is counted by reason, logged (rate-limited, with a
// truncated copy) and dropped; the stream goes on.
func (p *Pipeline) Frame(ctx context.Context, frame []byte) {
	p.nFrames.Add(1)
	p.frames.Inc()
	m, err := match.Parse(frame)
	if err != nil {
		reason, _ := match.ReasonOf(err)
		p.reject(ctx, reason, int64(len(frame)), frame)
		return
	}
	_ = p.publish(ctx, m)
}

// Match publishes a match that a source found without a frame to parse
// (a log line, an API page): it is de-duplicated, published and counted
// like a frame's match. It returns the Publisher's error if the match was
// not accepted (it is then counted as dropped and logged), and nil for an
// accepted match or a skipped duplicate. A match with an ID that is not
// positive is rejected with reason NotPositive.
func (p *Pipeline) Match(ctx context.Context, m match.Match) error {
	p.nFrames.Add(1)
	p.frames.Inc()
	if m.ID <= 0 {
		p.reject(ctx, match.NotPositive, 0, strconv.AppendInt(nil, m.ID, 10))
		return nil
	}
	return p.publish(ctx, m)
}

// Reject counts and logs an item that a source found should have held a
// match but did not, like a rejected frame.
func (p *Pipeline) Reject(ctx context.Context, reason match.Reason, item []byte) {
	p.nFrames.Add(1)
	p.frames.Inc()
	p.reject(ctx, reason, int64(len(item)), item)
}

func (p *Pipeline) publish(ctx context.Context, m match.Match) error {
	if p.opts.Dedup.Seen(m.ID) {
		p.nDuplicates.Add(1)
		p.duplicates.Inc()
		if p.log.Enabled(ctx, slog.LevelDebug) {
			p.log.Debug("Duplicate match skipped", "match_id", m.ID)
		}
		return nil
	}
	if err := p.pub.Publish(ctx, m); err != nil {
		p.nDropped.Add(1)
		p.dropped.Inc()
		p.log.Error("Match dropped", "match_id", m.ID, "error", err)
		return err
	}
	p.nAccepted.Add(1)
	p.accepted.Inc()
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.Debug("Accepted match", "match_id", m.ID)
	}
	return nil
}

// Oversized counts and logs a frame the source skipped for its size.
func (p *Pipeline) Oversized(ctx context.Context, size int64, head []byte) {
	p.nFrames.Add(1)
	p.frames.Inc()
	p.reject(ctx, match.TooLarge, size, head)
}

func (p *Pipeline) reject(ctx context.Context, reason match.Reason, size int64, frame []byte) {
	p.nRejected.Add(1)
	p.rejected[reason].Inc()
	if !p.rejectLog.Allow() {
		p.suppressed.Add(1)
		return
	}
	truncated := len(frame) > p.opts.FrameLogBytes
	if truncated {
		frame = frame[:p.opts.FrameLogBytes]
	}
	attrs := []any{"reason", string(reason), "frame", string(frame), "frame_bytes", size, "truncated", truncated || int64(len(frame)) < size}
	if n := p.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, "suppressed_since_last", n)
	}
	p.log.WarnContext(ctx, "Rejected frame", attrs...)
}

// Counts are running totals since the Pipeline was created.
type Counts struct {
	// Received counts frames, valid or not.
	Received int64
	// Accepted counts matches handed to the Publisher.
	Accepted int64
	// Rejected counts frames with no valid match.
	Rejected int64
	// Dropped counts valid matches the Publisher refused.
	Dropped int64
	// Duplicates counts valid matches skipped as seen recently.
	Duplicates int64
}

// Counts returns the totals so far.
func (p *Pipeline) Counts() Counts {
	return Counts{
		Received:   p.nFrames.Load(),
		Accepted:   p.nAccepted.Load(),
		Rejected:   p.nRejected.Load(),
		Dropped:    p.nDropped.Load(),
		Duplicates: p.nDuplicates.Load(),
	}
}
