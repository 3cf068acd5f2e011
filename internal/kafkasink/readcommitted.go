package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/backoff"
)

// readCommitted reads every partition of topic as a consumer of committed
// data does, with a client of its own built from cfg (ConnOpts): from the
// offset from chooses, given the partition's start offset and its end
// offset (high watermark) when the read begins, up to that end. It hands
// each record to each, in offset order within a partition, but not the
// transaction markers; records of aborted transactions are not read.
// Everything committed before it began is read: a transaction still open
// then, anywhere before the end, is waited for until it commits or aborts
// (the last stable offset stays at its first record until then, and a
// read that stopped there would miss what other writers committed after
// it: a unit's cursor older than its last, whose page a new owner would
// write again). A partition for which from returns its end offset or more
// is not read.
//
// A topic created a moment ago may not be known to every broker yet:
// listing its offsets is retried for a few seconds while the brokers call
// it unknown or leaderless. A topic still unknown gives an error wrapping
// ErrTopicMissing. It returns an error wrapping ctx's error if the
// partitions cannot be read before ctx ends.
func readCommitted(ctx context.Context, cfg Config, topic string, from func(p int32, start, end int64) int64, each func(*kgo.Record)) error {
	opts, err := cfg.ConnOpts()
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) may end a partition: keep
		// them so that reaching its last offset is seen.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("read %s: new client: %w", topic, err)
	}
	defer cl.Close()

	starts, ends, err := listEnds(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		return err
	}
	offsets := map[int32]kgo.Offset{}
	last := map[int32]int64{} // partition -> its last offset to read
	ends.Each(func(e kadm.ListedOffset) {
		start, ok := starts.Lookup(e.Topic, e.Partition)
		if !ok || e.Offset <= start.Offset {
			return
		}
		at := from(e.Partition, start.Offset, e.Offset)
		if at >= e.Offset {
			return
		}
		offsets[e.Partition] = kgo.NewOffset().At(at)
		last[e.Partition] = e.Offset - 1
	})
	if len(offsets) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets})

	for len(last) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %d partitions unread: %w", topic, len(last), err)
		}
		var fetchErr error
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				fetchErr = errors.Join(fetchErr, fmt.Errorf("partition %d: %w", p, err))
			}
		})
		if fetchErr != nil {
			return fmt.Errorf("read %s: %w", topic, fetchErr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if l, ok := last[r.Partition]; ok && r.Offset >= l {
				delete(last, r.Partition)
			}
			if !r.Attrs.IsControl() {
				each(r)
			}
		})
	}
	return nil
}

// listEnds lists the start offset and the end offset (high watermark)
// of every partition of topic, retrying for a few seconds while the brokers call
// the topic unknown or leaderless (it may have been created a moment ago).
func listEnds(ctx context.Context, adm *kadm.Client, topic string) (starts, ends kadm.ListedOffsets, err error) {
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		starts, err = adm.ListStartOffsets(ctx, topic)
		if err == nil {
			err = starts.Error()
		}
		if err != nil {
			err = fmt.Errorf("list start offsets of %s: %w", topic, err)
		} else {
			ends, err = adm.ListEndOffsets(ctx, topic)
			if err == nil {
				err = ends.Error()
			}
			if err != nil {
				err = fmt.Errorf("list end offsets of %s: %w", topic, err)
			}
		}
		if err == nil || wait > 5*time.Second || !topicSettling(err) {
			break
		}
		if !backoff.Wait(ctx, wait) {
			return nil, nil, fmt.Errorf("%w: %w", err, ctx.Err())
		}
	}
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return nil, nil, fmt.Errorf("topic %s: %w: %w", topic, ErrTopicMissing, err)
	case err != nil:
		return nil, nil, err
	}
	return starts, ends, nil
}

// topicSettling reports whether err is what brokers answer for a topic
// created a moment ago that not all of them know yet.
func topicSettling(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.LeaderNotAvailable) ||
		errors.Is(err, kerr.NotLeaderForPartition)
}
