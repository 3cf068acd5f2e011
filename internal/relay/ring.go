package relay

// ring is a fixed-capacity FIFO of match IDs with their arrival times.
type ring struct {
	ids   []int64
	times []int64
	head  int
	n     int
}

func newRing(capacity int) ring {
	return ring{ids: make([]int64, capacity), times: make([]int64, capacity)}
}

func (q *ring) full() bool { return q.n == len(q.ids) }

func (q *ring) push(id, at int64) {
	i := q.head + q.n
	if i >= len(q.ids) {
		i -= len(q.ids)
	}
	q.ids[i], q.times[i] = id, at
	q.n++
}

func (q *ring) pop() (id, at int64) {
	id, at = q.ids[q.head], q.times[q.head]
	q.head++
	if q.head == len(q.ids) {
		q.head = 0
	}
	q.n--
	return id, at
}

// oldest returns the arrival time of the head, or 0 when empty.
func (q *ring) oldest() int64 {
	if q.n == 0 {
		return 0
	}
	return q.times[q.head]
}
