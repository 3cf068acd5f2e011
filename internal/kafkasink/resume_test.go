package kafkasink

import (
	"context"
	"slices"
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
	publishAll(t, s, []match.Match{{ID: 10, SeqNum: 20, StartTime: 30}, {ID: 11}, {ID: 12, SeqNum: 22}, {ID: 13, SeqNum: 23, StartTime: 31, RescanSeq: 5}})
	recs := cluster.ReadAll(t, topic, 4, 30*time.Second)
	want := []map[string]string{
		{HeaderSeqNum: "20", HeaderStartTime: "30"},
		{},
		{HeaderSeqNum: "22"},
		{HeaderSeqNum: "23", HeaderStartTime: "31", HeaderRescanSeqNum: "5"},
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

// TestScanStateAndSeqsAbove: the topic tells a restarted scanner where both
// of its cursors stood and which seqs it delivered above the rescan's
// position, deeper in the partitions than the newest records, with the
// rescan's late records (low seqs, written late) mixed in.
func TestScanStateAndSeqsAbove(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	s, _, _ := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, err := s.ScanState(ctx, Plausible{})
	if err != nil || st != (ScanState{}) {
		t.Fatalf("empty topic: %+v, %v", st, err)
	}
	publishAll(t, s, []match.Match{{ID: 1}, {ID: 2}})
	if st, err = s.ScanState(ctx, Plausible{}); err != nil || st != (ScanState{Records: true}) {
		t.Fatalf("records of another source: %+v, %v; want records and no seq", st, err)
	}

	// A scan of 20,000 seqs (far more than a first read-back chunk per
	// partition), its rescan 12,000 behind; every 500th seq was listed
	// late and published by the rescan after the primary had moved on.
	const first, n, behind = int64(7_000_000_000), int64(20_000), int64(12_000)
	var ms []match.Match
	var late []match.Match
	for i := range n {
		seq := first + i
		if i%500 == 250 {
			late = append(late, match.Match{ID: 8_000_000_000 + i, SeqNum: seq, RescanSeq: seq})
			continue
		}
		ms = append(ms, match.Match{ID: 8_000_000_000 + i, SeqNum: seq, RescanSeq: max(seq-behind, first)})
		if i%1000 == 999 && len(late) > 0 && late[0].SeqNum < seq-behind {
			ms = append(ms, late[0])
			late = late[1:]
		}
	}
	publishAll(t, s, ms)
	st, err = s.ScanState(ctx, Plausible{})
	if err != nil || st.Seq != first+n-1 || st.Rescan != first+n-1-behind || !st.Records {
		t.Fatalf("ScanState = %+v, %v; want seq %d, rescan %d", st, err, first+n-1, first+n-1-behind)
	}
	floor := st.Rescan
	seqs, err := s.SeqsAbove(ctx, floor, st.Seq)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]bool{}
	for _, m := range ms {
		if m.SeqNum > floor {
			want[m.SeqNum] = true
		}
	}
	got := map[int64]int{}
	for _, q := range seqs {
		got[q]++
	}
	if len(seqs) != len(want) || len(got) != len(want) {
		t.Fatalf("SeqsAbove(%d): %d seqs, %d distinct; want the %d delivered above it", floor, len(seqs), len(got), len(want))
	}
	for q := range want {
		if got[q] != 1 {
			t.Fatalf("SeqsAbove(%d) lacks %d", floor, q)
		}
	}
	if seqs, err := s.SeqsAbove(ctx, first+n, first+2*n); err != nil || len(seqs) != 0 {
		t.Fatalf("SeqsAbove(beyond the last) = %d seqs, %v", len(seqs), err)
	}
}

// TestScanStateBelievesOnlyPlausibleSeqs: records an earlier version
// published with a bogus match_seq_num (2^63-1, 10^15) do not set where
// the scan resumes, whether or not the newest seq is known to bound them;
// they are counted, and the highest plausible seq stands.
func TestScanStateBelievesOnlyPlausibleSeqs(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 2)
	s, _, _ := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const first, maxGap = int64(7_000_000_000), int64(10_000_000)
	var ms []match.Match
	for i := range int64(100) {
		ms = append(ms, match.Match{ID: 8_000_000_000 + i, SeqNum: first + i, RescanSeq: first + i - 50})
	}
	ms = append(ms,
		match.Match{ID: 9_000_000_001, SeqNum: 1<<63 - 1},
		match.Match{ID: 9_000_000_002, SeqNum: 1<<63 - 2}, // two bogus ones close together
		match.Match{ID: 9_000_000_003, SeqNum: 1_000_000_000_000_000, RescanSeq: first},
		match.Match{ID: 9_000_000_004, SeqNum: first + 100, RescanSeq: 1<<63 - 1}, // its seq is fine
	)
	publishAll(t, s, ms)
	if st, err := s.ScanState(ctx, Plausible{}); err != nil || st.Seq != 1<<63-1 {
		t.Fatalf("believing everything: %+v, %v; want the bogus seq to show (so the bounds are what the test exercises)", st, err)
	}
	for _, tt := range []struct {
		name string
		p    Plausible
	}{
		{"ceiling", Plausible{Ceiling: first + 200}},
		{"gap", Plausible{MaxGap: maxGap}},
		{"both", Plausible{Ceiling: first + 200, MaxGap: maxGap}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, err := s.ScanState(ctx, tt.p)
			want := ScanState{Seq: first + 100, Rescan: first + 49, Records: true, Implausible: 4, HighestImplausible: 1<<63 - 1}
			if err != nil || st != want {
				t.Fatalf("ScanState = %+v, %v; want %+v", st, err, want)
			}
		})
	}
}

func TestBelievedKeepsTheLargestDenseGroup(t *testing.T) {
	for _, tt := range []struct {
		name    string
		seqs    []int64
		want    []int64
		doubted []int64
		maxGap  int64
	}{
		{"all dense", []int64{5, 3, 4}, []int64{3, 4, 5}, nil, 10},
		{"outlier above", []int64{1, 2, 3, 1000}, []int64{1, 2, 3}, []int64{1000}, 10},
		{"outlier below", []int64{1, 500, 501, 502}, []int64{500, 501, 502}, []int64{1}, 10},
		{"equal groups: the lower", []int64{1, 2, 100, 101}, []int64{1, 2}, []int64{100, 101}, 10},
		{"no gap rule", []int64{1, 1000}, []int64{1, 1000}, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var pairs []seqPair
			for _, q := range tt.seqs {
				pairs = append(pairs, seqPair{seq: q})
			}
			var doubted []int64
			var got []int64
			for _, q := range believed(pairs, tt.maxGap, func(n int64) { doubted = append(doubted, n) }) {
				got = append(got, q.seq)
			}
			if tt.maxGap == 0 {
				slices.Sort(got)
			}
			if !slices.Equal(got, tt.want) || !slices.Equal(doubted, tt.doubted) {
				t.Fatalf("believed %v, doubted %v; want %v and %v", got, doubted, tt.want, tt.doubted)
			}
		})
	}
}
