package kafkasink

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// resumeTail is how many of the newest records of each partition
// HighestSeqNum reads.
const resumeTail = 1000

// HighestSeqNum reads back the newest committed records of every partition
// of the topic (up to 1,000 each) and returns the highest HeaderSeqNum
// among them, and false if none has one (an empty topic, or one written
// only by sources without sequence numbers). See ScanState.
func (s *Sink) HighestSeqNum(ctx context.Context) (int64, bool, error) {
	st, err := s.ScanState(ctx, Plausible{})
	return st.Seq, st.Seq > 0, err
}

// ScanState is what the newest records of the topic tell of a Steam scan.
type ScanState struct {
	// Seq is the highest HeaderSeqNum believed, 0 if none.
	Seq int64
	// Rescan is the highest HeaderRescanSeqNum believed, 0 if none.
	Rescan int64
	// Records reports that the records read were at least one.
	Records bool
	// Implausible counts the records whose HeaderSeqNum or
	// HeaderRescanSeqNum was not believed (see Plausible);
	// HighestImplausible is the highest such number.
	Implausible        int
	HighestImplausible int64
}

// Plausible says which sequence numbers ScanState believes. A version
// that did not bound the match_seq_nums it took could publish 2^63-1 or
// 10^15; resuming after one would skip every match to come.
type Plausible struct {
	// Ceiling, when positive, is the highest seq a scan can have reached.
	Ceiling int64
	// MaxGap, when positive, groups the seqs read where each lies within
	// MaxGap of the next, and believes only the largest group (the lowest
	// of equals): a scan moves through a dense sequence, so a record far
	// from all the others is not one of its positions.
	MaxGap int64
}

// ScanState reads back the newest committed records of every partition
// of the topic (up to 1,000 each) and returns the highest HeaderSeqNum and
// HeaderRescanSeqNum among them that p believes, and whether there were
// records at all. A header that is not a decimal number is ignored; a
// HeaderRescanSeqNum above its own record's HeaderSeqNum is not believed
// (the rescan trails the scan). It reads as a consumer of committed data
// does: records of aborted transactions do not count, and it waits for no
// open one. It needs the topic to exist (a missing one gives an error
// wrapping ErrTopicMissing), and returns ctx's error if the partitions
// cannot be read before ctx ends.
func (s *Sink) ScanState(ctx context.Context, p Plausible) (ScanState, error) {
	var st ScanState
	var seen []seqPair
	doubt := func(n int64) {
		st.Implausible++
		st.HighestImplausible = max(st.HighestImplausible, n)
	}
	err := readCommitted(ctx, s.cfg, s.cfg.Topic, func(_ int32, start, end int64) int64 {
		return max(start, end-resumeTail)
	}, func(r *kgo.Record) {
		st.Records = true
		seq, rescan := seqHeaders(r)
		switch {
		case seq == 0:
			return
		case p.Ceiling > 0 && seq > p.Ceiling:
			doubt(seq)
			return
		case rescan > seq:
			doubt(rescan)
			rescan = 0
		}
		seen = append(seen, seqPair{seq, rescan})
	})
	if err != nil {
		return ScanState{}, err
	}
	for _, q := range believed(seen, p.MaxGap, doubt) {
		st.Seq, st.Rescan = max(st.Seq, q.seq), max(st.Rescan, q.rescan)
	}
	return st, nil
}

type seqPair struct{ seq, rescan int64 }

// believed sorts pairs by seq and returns the largest group of them in
// which each seq lies within maxGap of the next (the lowest of equal
// groups), calling doubt with the seq of every pair left out. With no
// maxGap it returns them all.
func believed(pairs []seqPair, maxGap int64, doubt func(int64)) []seqPair {
	if maxGap <= 0 || len(pairs) == 0 {
		return pairs
	}
	slices.SortFunc(pairs, func(a, b seqPair) int { return cmp.Compare(a.seq, b.seq) })
	best, bestLen := 0, 0
	for i := 0; i < len(pairs); {
		j := i + 1
		for j < len(pairs) && pairs[j].seq-pairs[j-1].seq <= maxGap {
			j++
		}
		if j-i > bestLen {
			best, bestLen = i, j-i
		}
		i = j
	}
	for i, q := range pairs {
		if i < best || i >= best+bestLen {
			doubt(q.seq)
		}
	}
	return pairs[best : best+bestLen]
}

// seqHeaders returns the HeaderSeqNum and HeaderRescanSeqNum of r, 0 for
// one that is absent or not a positive decimal number.
func seqHeaders(r *kgo.Record) (seq, rescan int64) {
	for _, h := range r.Headers {
		var dst *int64
		switch h.Key {
		case HeaderSeqNum:
			dst = &seq
		case HeaderRescanSeqNum:
			dst = &rescan
		default:
			continue
		}
		if n, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && n > 0 {
			*dst = n
		}
	}
	return seq, rescan
}

// SeqsAbove returns the HeaderSeqNum of every committed record of the
// topic in floor+1..ceiling, in no order: the matches a Steam scan
// delivered above its rescan position (floor) up to its primary
// position (ceiling). A partition holds at most one record per seq of
// that range, the rescan's late records and the few duplicates of a
// crash besides, so reading back the last 2 × (ceiling − floor) + 1,000
// records of each partition finds them all, in one pass.
func (s *Sink) SeqsAbove(ctx context.Context, floor, ceiling int64) ([]int64, error) {
	if ceiling <= floor {
		return nil, nil
	}
	depth := 2*(ceiling-floor) + resumeTail
	var seqs []int64
	err := readCommitted(ctx, s.cfg, s.cfg.Topic, func(_ int32, start, end int64) int64 {
		return max(start, end-depth)
	}, func(r *kgo.Record) {
		if seq, _ := seqHeaders(r); seq > floor && seq <= ceiling {
			seqs = append(seqs, seq)
		}
	})
	if err != nil {
		return nil, err
	}
	return seqs, nil
}

// RecentIDs returns the match IDs of the committed records written to the
// topic since the given time (by record timestamp), at most max of them
// per partition (the newest). A new fleet leader uses them to skip, among
// the matches its standby window holds, those the old leader delivered.
func (s *Sink) RecentIDs(ctx context.Context, since time.Time, maxPerPartition int) (map[int64]bool, error) {
	adm := kadm.NewClient(s.client)
	after, err := adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), s.cfg.Topic)
	if err == nil {
		err = after.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s after %s: %w", s.cfg.Topic, since.Format(time.RFC3339), err)
	}
	ids := map[int64]bool{}
	err = readCommitted(ctx, s.cfg, s.cfg.Topic, func(p int32, start, end int64) int64 {
		from := end
		if o, ok := after.Lookup(s.cfg.Topic, p); ok && o.Offset >= 0 {
			from = o.Offset
		}
		return max(start, from, end-int64(maxPerPartition))
	}, func(r *kgo.Record) {
		if id, err := strconv.ParseInt(string(r.Key), 10, 64); err == nil {
			ids[id] = true
		}
	})
	return ids, err
}
