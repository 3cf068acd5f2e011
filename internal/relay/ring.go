package relay

import "github.com/dota-data/ingestion-service/internal/match"

// ring is a fixed-capacity FIFO of matches with their arrival times. It
// keeps IDs apart from the rest, and allocates room for sequence numbers
// start times and rescan positions only once a match carrying them
// arrives, so that a source without them pays 16 bytes a match.
type ring struct {
	ids     []int64
	times   []int64
	seqs    []int64 // nil until a match has a SeqNum or StartTime
	starts  []int64
	rescans []int64
	head    int
	n       int
}

func newRing(capacity int) ring {
	return ring{ids: make([]int64, capacity), times: make([]int64, capacity)}
}

func (q *ring) full() bool { return q.n == len(q.ids) }

func (q *ring) push(m match.Match, at int64) {
	i := q.head + q.n
	if i >= len(q.ids) {
		i -= len(q.ids)
	}
	q.ids[i], q.times[i] = m.ID, at
	if q.seqs == nil && (m.SeqNum != 0 || m.StartTime != 0 || m.RescanSeq != 0) {
		q.seqs, q.starts, q.rescans = make([]int64, len(q.ids)), make([]int64, len(q.ids)), make([]int64, len(q.ids))
	}
	if q.seqs != nil {
		q.seqs[i], q.starts[i], q.rescans[i] = m.SeqNum, m.StartTime, m.RescanSeq
	}
	q.n++
}

func (q *ring) pop() (m match.Match, at int64) {
	m.ID, at = q.ids[q.head], q.times[q.head]
	if q.seqs != nil {
		m.SeqNum, m.StartTime, m.RescanSeq = q.seqs[q.head], q.starts[q.head], q.rescans[q.head]
	}
	q.head++
	if q.head == len(q.ids) {
		q.head = 0
	}
	q.n--
	return m, at
}

// oldest returns the arrival time of the head, or 0 when empty.
func (q *ring) oldest() int64 {
	if q.n == 0 {
		return 0
	}
	return q.times[q.head]
}
