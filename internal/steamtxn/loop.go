package steamtxn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/steamseq"
)

// TransactionalID returns the transactional ID of the single writer of a
// unit of work on topic: the forward scan (no unit), or a backfill shard
// (ShardUnit). Every process that may do that work uses the same ID, so
// that the one that starts last fences the others.
func TransactionalID(topic, unit string) string {
	if unit == "" {
		return kafkasink.TransactionalID("steam", topic)
	}
	return kafkasink.TransactionalID("steam", topic, unit)
}

// ShardUnit names the backfill shard over r: the unit of its
// transactional ID and the key of its cursor record.
func ShardUnit(r steamseq.Range) string {
	return fmt.Sprintf("backfill.%d-%d", r.From, r.To)
}

// ShardCursorKey returns the key of the cursor records of the shard over
// r whose matches go to topic.
func ShardCursorKey(topic string, r steamseq.Range) string {
	return topic + "." + ShardUnit(r)
}

// IsShardCursorKey reports whether key is a shard's cursor key for topic.
func IsShardCursorKey(topic, key string) bool {
	return strings.HasPrefix(key, topic+".backfill.")
}

// Job is one unit of exactly-once work: a scan that writes each page with
// its cursor in one Kafka transaction, through a transactional writer of
// its own.
type Job struct {
	// Name says which job it is, in logs.
	Name string
	// Pages configures the job's writer: its transactional ID, its cursor
	// topic and key, its topics.
	Pages kafkasink.PageConfig
	// Scan reads from the last committed cursor (nil when none was
	// committed yet) and writes through pages until ctx ends or it is
	// done, and returns nil then. An error makes the job start again
	// from the last committed cursor, with a new writer.
	Scan func(ctx context.Context, cursor []byte, pages *kafkasink.PageWriter) error
	// StopWhenFenced makes Run return when another writer with the same
	// transactional ID took over (a new owner of the work elsewhere);
	// without it Run logs an error, waits FencedWait and takes the work
	// back.
	StopWhenFenced bool
	// FencedWait is the wait after being fenced when not stopping;
	// default 30s.
	FencedWait time.Duration
}

// permanent reports whether err is one a restart cannot mend.
func permanent(err error) bool { return errors.Is(err, steamseq.ErrForeignTopic) }

// Run runs job until ctx ends. Each round starts a transactional writer
// (which fences any other writer of the job: the brokers abort its open
// transaction and refuse what it sends next), reads the job's last
// committed cursor and runs the scan from there; a page whose transaction
// failed makes the round end, and the next one read it from Steam again
// rather than keep it anywhere. While Kafka is down the writer cannot
// start and Steam is not called. Run returns nil when ctx ends or the
// scan is done, an error wrapping kafkasink.ErrFenced when the job was
// fenced and StopWhenFenced is set, and the error of a scan that no
// restart can mend (steamseq.ErrForeignTopic).
func Run(ctx context.Context, job Job, log *slog.Logger) error {
	if job.FencedWait == 0 {
		job.FencedWait = 30 * time.Second
	}
	for attempt := 0; ; attempt++ {
		pw, cursor, err := kafkasink.NewPageWriter(ctx, job.Pages, log.With("component", "kafka_pages"))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("Cannot start the transactional writer; Steam is not called until it starts",
				"job", job.Name, "error", err, "attempt", attempt+1)
			if !backoff.Wait(ctx, time.Duration(min(attempt+1, 10))*time.Second) {
				return nil
			}
			continue
		}
		attempt = 0
		err = job.Scan(ctx, cursor, pw)
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		pw.Close(closeCtx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if permanent(err) {
			return err
		}
		wait := time.Second
		if errors.Is(err, kafkasink.ErrFenced) {
			if job.StopWhenFenced {
				return fmt.Errorf("%s: %w", job.Name, err)
			}
			// Another process does this job with the same transactional
			// ID. Each resumes from the other's last commit, so nothing
			// is lost or repeated, but one is enough.
			log.Error("Another process took over this job (its transactional writer fenced this one); run one per topic",
				"job", job.Name, "transactional_id", job.Pages.TransactionalID)
			wait = job.FencedWait
		} else {
			log.Warn("Steam scan stopped; resuming from the last committed cursor", "job", job.Name, "error", err)
		}
		if !backoff.Wait(ctx, wait) {
			return nil
		}
	}
}
