package kafkasink

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadCursors reads a compacted cursor topic (such as a PageWriter's
// CursorTopic) from its start to its end, as a consumer of committed data
// does, and returns the last committed value of each key that match
// accepts; a nil match accepts every key. A record with a nil value is a
// tombstone: it deletes its key. Values written in aborted transactions
// are not read. Every value committed before the call is read: a
// transaction open then is waited for (see readCommitted). It
// reaches the cluster as cfg says (ConnOpts: Brokers, Security,
// ExtraOpts); cfg.Topic is not used. A topic that does not exist (after a
// few seconds' wait for one created a moment ago) gives an error wrapping
// ErrTopicMissing, and it returns ctx's error if the topic cannot be read
// before ctx ends. An empty topic gives an empty map.
func ReadCursors(ctx context.Context, cfg Config, topic string, match func(key string) bool) (map[string][]byte, error) {
	cursors := map[string][]byte{}
	err := readCommitted(ctx, cfg, topic, func(_ int32, start, _ int64) int64 {
		return start
	}, func(r *kgo.Record) {
		key := string(r.Key)
		if match != nil && !match(key) {
			return
		}
		if r.Value == nil {
			delete(cursors, key)
			return
		}
		cursors[key] = r.Value
	})
	if err != nil {
		return nil, fmt.Errorf("read cursors: %w", err)
	}
	return cursors, nil
}
