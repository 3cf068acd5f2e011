package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// resumeTail is how many of the newest records of each partition
// HighestSeqNum reads.
const resumeTail = 1000

// HighestSeqNum reads back the newest records of every partition of the
// topic (up to 1,000 each) and returns the highest HeaderSeqNum among
// them, and false if none has one (an empty topic, or one written only by
// sources without sequence numbers). A record whose header is not a
// positive decimal number is ignored. It needs the topic to exist, and
// returns ctx's error if the partitions cannot be read before ctx ends.
func (s *Sink) HighestSeqNum(ctx context.Context) (int64, bool, error) {
	adm := kadm.NewClient(s.client)
	starts, err := adm.ListStartOffsets(ctx, s.cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, false, fmt.Errorf("list start offsets of %s: %w", s.cfg.Topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, s.cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, false, fmt.Errorf("list end offsets of %s: %w", s.cfg.Topic, err)
	}
	from := map[int32]kgo.Offset{}
	want := map[int32]int64{} // partition -> its last offset
	ends.Each(func(e kadm.ListedOffset) {
		start, ok := starts.Lookup(e.Topic, e.Partition)
		if !ok || e.Offset <= start.Offset {
			return
		}
		at := max(start.Offset, e.Offset-resumeTail)
		from[e.Partition] = kgo.NewOffset().At(at)
		want[e.Partition] = e.Offset - 1
	})
	if len(from) == 0 {
		return 0, false, nil
	}

	opts, err := s.cfg.Security.Opts()
	if err != nil {
		return 0, false, err
	}
	opts = append(opts,
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ClientID(s.cfg.ClientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.cfg.Topic: from}),
		// Control records (transaction markers) may end a partition: keep
		// them so that reaching its last offset is seen.
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, false, fmt.Errorf("read back %s: %w", s.cfg.Topic, err)
	}
	defer cl.Close()

	var highest int64
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, false, fmt.Errorf("read back %s: %d partitions unread: %w", s.cfg.Topic, len(want), err)
		}
		var fetchErr error
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				fetchErr = fmt.Errorf("read back partition %d of %s: %w", p, s.cfg.Topic, err)
			}
		})
		if fetchErr != nil {
			return 0, false, fetchErr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if last, ok := want[r.Partition]; ok && r.Offset >= last {
				delete(want, r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			for _, h := range r.Headers {
				if h.Key != HeaderSeqNum {
					continue
				}
				if n, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && n > highest {
					highest = n
				}
			}
		})
	}
	return highest, highest > 0, nil
}
