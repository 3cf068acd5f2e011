package fleet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/match"
)

// MaxWindowRecords caps a standby window, whatever its age, so that a
// standby's memory stays bounded at any rate.
const MaxWindowRecords = 1 << 20

// Window is a standby's memory of the matches it read recently: the
// pipeline publishes to it instead of Kafka while the replica does not
// lead, and on promotion Drain hands them on, so that what the old leader
// had not yet written is not lost. It forgets a match once it is older
// than the window's age, or once MaxWindowRecords newer ones arrived;
// while Keep says so (Kafka is out of this replica's reach, so no leader
// can be known to write) it forgets by number alone. It is safe for
// concurrent use.
type Window struct {
	age  time.Duration
	now  func() time.Time
	keep atomic.Bool
	// keptUntil is when keeping last ended, in Unix nanoseconds: what was
	// kept stays a window longer.
	keptUntil atomic.Int64

	mu    sync.Mutex
	ms    []match.Match
	times []int64
	head  int
	n     int

	size prometheus.Gauge
}

// NewWindow returns a Window keeping matches for age, with its size
// exported as ingestion_standby_window_records on reg.
func NewWindow(age time.Duration, reg prometheus.Registerer) (*Window, error) {
	if age <= 0 {
		return nil, fmt.Errorf("fleet: standby window %s is not positive", age)
	}
	w := &Window{
		age:   age,
		now:   time.Now,
		ms:    make([]match.Match, 1024),
		times: make([]int64, 1024),
		size: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingestion_standby_window_records",
			Help: "Matches a standby holds to publish should it become the leader.",
		}),
	}
	if err := reg.Register(w.size); err != nil {
		return nil, fmt.Errorf("fleet: register metrics: %w", err)
	}
	return w, nil
}

// Publish keeps m. It never fails; it satisfies the pipeline's Publisher.
func (w *Window) Publish(_ context.Context, m match.Match) error {
	now := w.now().UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now)
	if w.n == len(w.ms) {
		if w.n == MaxWindowRecords {
			w.pop()
		} else {
			w.grow()
		}
	}
	i := (w.head + w.n) % len(w.ms)
	w.ms[i], w.times[i] = m, now
	w.n++
	w.size.Set(float64(w.n))
	return nil
}

// Keep makes the window keep every match it holds, whatever its age
// (up to MaxWindowRecords), while on is true and for the window's age
// after: while this replica cannot reach Kafka or the fleet's group, it
// cannot tell whether a leader writes what the stream sends, and when
// every replica is cut off for longer than the window's age, what the
// first to lead again holds is all the fleet has of the outage. The age
// after lets a leader take over (within a session timeout, shorter than
// the window) before the standbys forget the outage, and lets the replica
// that becomes that leader keep it until it publishes it.
func (w *Window) Keep(on bool) {
	if !on && w.keep.Load() {
		w.keptUntil.Store(w.now().UnixNano())
	}
	w.keep.Store(on)
}

// Drain returns the matches still within the window, oldest first, and
// when the oldest of them arrived (zero if none), and empties it.
func (w *Window) Drain() ([]match.Match, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(w.now().UnixNano())
	var oldest time.Time
	if w.n > 0 {
		oldest = time.Unix(0, w.times[w.head])
	}
	out := make([]match.Match, 0, w.n)
	for w.n > 0 {
		out = append(out, w.pop())
	}
	w.size.Set(0)
	return out, oldest
}

// Len returns how many matches the window holds.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *Window) expire(now int64) {
	if w.keep.Load() || now < w.keptUntil.Load()+int64(w.age) {
		return
	}
	limit := now - int64(w.age)
	for w.n > 0 && w.times[w.head] < limit {
		w.pop()
	}
}

func (w *Window) pop() match.Match {
	m := w.ms[w.head]
	w.head = (w.head + 1) % len(w.ms)
	w.n--
	return m
}

func (w *Window) grow() {
	size := min(2*len(w.ms), MaxWindowRecords)
	ms, times := make([]match.Match, size), make([]int64, size)
	for j := range w.n {
		k := (w.head + j) % len(w.ms)
		ms[j], times[j] = w.ms[k], w.times[k]
	}
	w.ms, w.times, w.head = ms, times, 0
}
