package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// delivery is what a consumer saw of one scenario's topic.
type delivery struct {
	// recv[i] is when the record of ID firstID+i was first consumed, in
	// nanoseconds since the scenario's base time; 0 means not yet.
	recv       []int64
	got        int   // distinct IDs consumed
	duplicates int   // records of an ID already consumed (at-least-once)
	last       int64 // latest entry of recv
}

// consume reads topic from its start until every one of the n IDs from
// firstID on has arrived, checking each record's key and value. It fails
// on a wrong record, and, when ctx ends first, names what is missing.
//
// A record keyed warmUpKey is not a match: the scenario writes one before
// the service starts, and consume closes warm when it reads it, so that
// the consumer's start-up is not counted as the service's latency.
func consume(ctx context.Context, brokers []string, topic string, firstID int64, n int, base time.Time, warm chan<- struct{}) (*delivery, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer cl.Close()
	d := &delivery{recv: make([]int64, n)}
	for d.got < n {
		fetches := cl.PollFetches(ctx)
		now := int64(time.Since(base))
		if ctx.Err() != nil {
			return d, d.missing(ctx, firstID)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s/%d: %w", t, p, err))
		})
		if ferr != nil {
			return d, ferr
		}
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			if string(r.Key) == warmUpKey {
				if warm != nil {
					close(warm)
					warm = nil
				}
				continue
			}
			id, ok := parseID(r.Key)
			if !ok || id < firstID || id >= firstID+int64(n) {
				return d, fmt.Errorf("unexpected key %q at %s/%d@%d", r.Key, r.Topic, r.Partition, r.Offset)
			}
			if !validValue(r.Value, r.Key) {
				return d, fmt.Errorf("record of match %d has value %q, want {\"match_id\":%d}", id, r.Value, id)
			}
			i := id - firstID
			if d.recv[i] != 0 {
				d.duplicates++
				continue
			}
			d.recv[i] = now
			d.last = now
			d.got++
		}
	}
	return d, nil
}

// warmUpKey keys the record that warms the consumer up.
const warmUpKey = "warm-up"

// missing describes the IDs not consumed when ctx ended.
func (d *delivery) missing(ctx context.Context, firstID int64) error {
	first := int64(-1)
	for i, t := range d.recv {
		if t == 0 {
			first = firstID + int64(i)
			break
		}
	}
	return fmt.Errorf("%d of %d IDs missing (first %d): %w",
		len(d.recv)-d.got, len(d.recv), first, context.Cause(ctx))
}

// parseID parses a positive decimal match ID without allocating.
func parseID(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v > 0
}

// validValue reports whether value is exactly {"match_id":<key>}.
func validValue(value, key []byte) bool {
	const prefix = `{"match_id":`
	return len(value) == len(prefix)+len(key)+1 &&
		string(value[:len(prefix)]) == prefix &&
		bytes.Equal(value[len(prefix):len(value)-1], key) &&
		value[len(value)-1] == '}'
}
