// Package dedup remembers the match IDs seen recently, so that a stream
// that re-sends matches (after a reconnect, say) does not make duplicate
// records.
package dedup

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is a bounded set of recently seen IDs: it forgets an ID once
// MaxCount newer IDs were seen, or once it is older than MaxAge. It is not
// safe for concurrent use; the stream reader owns it.
type Window struct {
	maxCount int
	maxAge   time.Duration
	seen     set
	now      func() time.Time
	// ring holds IDs in arrival order, with their arrival times.
	ids   []int64
	times []int64
	head  int // oldest
	n     int
}

// Limit is a window's bound: a count of IDs, or an age.
type Limit struct {
	// Count keeps the last Count IDs; zero for none.
	Count int
	// Age keeps IDs seen within Age; zero for none. An age window also
	// holds at most MaxAgeEntries IDs, to bound memory at any rate.
	Age time.Duration
}

// MaxAgeEntries caps an age window.
const MaxAgeEntries = 1 << 20

// ParseLimit reads a limit: a count ("50000") or a duration ("10m"). "0"
// disables de-duplication.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 10_000_000 {
			return Limit{}, fmt.Errorf("count %d out of range 0..10000000", n)
		}
		return Limit{Count: n}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return Limit{}, fmt.Errorf("want a count such as 50000 or a duration such as 10m")
	}
	return Limit{Age: d}, nil
}

// String returns the limit as ParseLimit reads it.
func (l Limit) String() string {
	if l.Age > 0 {
		return l.Age.String()
	}
	return strconv.Itoa(l.Count)
}

// New returns a window with the given limit, or nil if the limit keeps
// nothing; a nil *Window sees no duplicates.
func New(l Limit) *Window {
	capacity := l.Count
	if l.Age > 0 {
		capacity = MaxAgeEntries
	}
	if capacity <= 0 {
		return nil
	}
	initial := min(capacity, 1<<12)
	return &Window{
		maxCount: capacity,
		maxAge:   l.Age,
		seen:     newSet(),
		now:      time.Now,
		ids:      make([]int64, initial),
		times:    make([]int64, initial),
	}
}

// Seen reports whether id is in the window, and adds it if not. Only an
// age window reads the clock. Match IDs are positive: an ID that is not is
// never reported seen, nor kept.
func (w *Window) Seen(id int64) bool {
	if w == nil || id <= 0 {
		return false
	}
	var ns int64
	if w.maxAge > 0 {
		ns = w.now().UnixNano()
		w.expire(ns)
	}
	// Insert first, then make room: one probe, and the set briefly holds
	// one ID more than the window.
	if w.seen.add(id) {
		return true
	}
	if w.n == w.maxCount {
		w.evict()
	} else if w.n == len(w.ids) {
		w.grow()
	}
	i := (w.head + w.n) % len(w.ids)
	w.ids[i], w.times[i] = id, ns
	w.n++
	return false
}

// Len returns how many IDs the window holds.
func (w *Window) Len() int {
	if w == nil {
		return 0
	}
	return w.n
}

func (w *Window) expire(now int64) {
	if w.maxAge <= 0 {
		return
	}
	limit := now - int64(w.maxAge)
	for w.n > 0 && w.times[w.head] < limit {
		w.evict()
	}
}

func (w *Window) evict() {
	w.seen.remove(w.ids[w.head])
	w.head = (w.head + 1) % len(w.ids)
	w.n--
}

// grow doubles the ring, up to maxCount, keeping arrival order.
func (w *Window) grow() {
	size := min(2*len(w.ids), w.maxCount)
	ids, times := make([]int64, size), make([]int64, size)
	for j := 0; j < w.n; j++ {
		k := (w.head + j) % len(w.ids)
		ids[j], times[j] = w.ids[k], w.times[k]
	}
	w.ids, w.times, w.head = ids, times, 0
}
