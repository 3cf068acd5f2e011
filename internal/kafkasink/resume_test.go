package kafkasink

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/match"
)

// publishAll publishes ms and waits for every acknowledgement.
func publishAll(t *testing.T, s *Sink, ms []match.Match) {
	t.Helper()
	ctx := context.Background()
	for _, m := range ms {
		if err := s.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	flushCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.Flush(flushCtx); err != nil {
		t.Fatal(err)
	}
}

func highest(t *testing.T, s *Sink) (int64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seq, ok, err := s.HighestSeqNum(ctx)
	if err != nil {
		t.Fatalf("HighestSeqNum: %v", err)
	}
	return seq, ok
}

func TestHighestSeqNum(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	s, _, _ := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic})

	if seq, ok := highest(t, s); ok {
		t.Fatalf("empty topic: HighestSeqNum = %d, true; want none", seq)
	}
	// Records without a sequence number (another source) give none.
	publishAll(t, s, []match.Match{{ID: 1}, {ID: 2}, {ID: 3}})
	if seq, ok := highest(t, s); ok {
		t.Fatalf("topic without sequence numbers: HighestSeqNum = %d, true; want none", seq)
	}
	// More records than the tail read back per partition: the newest
	// hold the highest sequence number.
	var ms []match.Match
	for i := int64(1); i <= 5000; i++ {
		ms = append(ms, match.Match{ID: 8_000_000_000 + i, SeqNum: 7_000_000_000 + i, StartTime: 1_700_000_000 + i})
	}
	publishAll(t, s, ms)
	if seq, ok := highest(t, s); !ok || seq != 7_000_005_000 {
		t.Fatalf("HighestSeqNum = %d, %v; want 7000005000, true", seq, ok)
	}
	// A later record without one does not hide it.
	publishAll(t, s, []match.Match{{ID: 9}})
	if seq, ok := highest(t, s); !ok || seq != 7_000_005_000 {
		t.Fatalf("after a record without a header: HighestSeqNum = %d, %v", seq, ok)
	}
}

func TestHeadersCarrySequenceNumberAndStartTime(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 1)
	s, _, _ := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic})
	publishAll(t, s, []match.Match{{ID: 10, SeqNum: 20, StartTime: 30}, {ID: 11}, {ID: 12, SeqNum: 22}})
	recs := cluster.ReadAll(t, topic, 3, 30*time.Second)
	want := []map[string]string{
		{HeaderSeqNum: "20", HeaderStartTime: "30"},
		{},
		{HeaderSeqNum: "22"},
	}
	for i, r := range recs {
		got := map[string]string{}
		for _, h := range r.Headers {
			got[h.Key] = string(h.Value)
		}
		if len(got) != len(want[i]) {
			t.Errorf("record %d (key %s) headers %v, want %v", i, r.Key, got, want[i])
			continue
		}
		for k, v := range want[i] {
			if got[k] != v {
				t.Errorf("record %d (key %s) header %s = %q, want %q", i, r.Key, k, got[k], v)
			}
		}
		if id, _ := strconv.ParseInt(string(r.Key), 10, 64); string(r.Value) != `{"match_id":`+strconv.FormatInt(id, 10)+`}` {
			t.Errorf("record %d value %s", i, r.Value)
		}
	}
}
