// Package relay carries accepted matches from the stream reader to Kafka
// without losing them: a bounded in-memory queue in front of the Kafka
// producer, a disk spool behind it for when Kafka is slow, down or the
// process dies, and an acknowledgement tracker that deletes spooled records
// only once Kafka has them.
//
// Three modes trade memory, disk and safety (Mode). In every mode memory is
// bounded; when the relay is full it either blocks the reader or drops the
// newest matches, counting and logging each (WhenFull).
package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/spool"
)

// Mode says where accepted matches wait for Kafka.
type Mode string

const (
	// Overflow keeps matches in memory and spills to the disk spool once
	// MaxRecords are waiting; a backlog on disk is replayed in order. Records
	// in memory when the process is killed are lost; on a clean shutdown
	// they are written to the spool.
	Overflow Mode = "overflow"
	// Disk writes every accepted match to the spool before producing it, so
	// that even SIGKILL loses nothing that was accepted.
	Disk Mode = "disk"
	// Memory uses no disk at all: a crash, or Kafka still down at shutdown,
	// loses what is waiting.
	Memory Mode = "memory"
)

// WhenFull says what Publish does when nothing more can be held.
type WhenFull string

const (
	// Block makes Publish wait for room: the stream reader stops reading.
	Block WhenFull = "block"
	// DropNewest makes Publish drop the match, counting it and logging it at
	// error level.
	DropNewest WhenFull = "drop_newest"
)

// Producer sends a match downstream and reports the outcome of each token
// exactly once, through done, unless it returns an error.
type Producer interface {
	Produce(ctx context.Context, m match.Match, token uint64, done func(token uint64, err error)) error
}

// Spool is the disk queue the relay spills to.
type Spool interface {
	Append(payload []byte, at time.Time) (spool.Pos, error)
	Next(dst []byte) (payload []byte, pos spool.Pos, at time.Time, ok bool, err error)
	Commit(pos spool.Pos) error
	Stats() spool.Stats
	Close() error
}

// Config configures a Relay. Zero fields take the default in their comment.
type Config struct {
	// Mode is Overflow (default), Disk or Memory.
	Mode Mode
	// WhenFull is Block (default) or DropNewest.
	WhenFull WhenFull
	// MaxRecords caps the matches waiting in memory; default 100000.
	MaxRecords int
	// MaxInFlight caps the matches handed to the Producer and not yet
	// acknowledged; default 10000. Keep it at most the producer's own buffer
	// so that Produce does not block.
	MaxInFlight int
	// RetryBackoff is the wait before a failed delivery is tried again
	// the first time; default 1s. The failures are grouped by cause
	// (Classify): each further failure of a cause in a row doubles the
	// wait of every match it holds, with jitter, up to RetryBackoffMax;
	// a cause no retry can mend (a record too large, access refused)
	// waits ten times as long. A delivery of a cause starts it over.
	RetryBackoff time.Duration
	// RetryBackoffMax caps the wait; default 5s (50s for a cause no retry
	// can mend). The Kafka client retries what a retry may mend by itself
	// unless KAFKA_DELIVERY_TIMEOUT is set, so most failures the relay
	// sees are refusals, or a fleet's writer giving its records back.
	RetryBackoffMax time.Duration
	// Classify names the cause of a failed delivery, and reports whether
	// a retry cannot mend it; nil takes every failure as one cause that a
	// retry may mend.
	Classify func(error) (cause string, permanent bool)
	// ReportEvery is how often, at most, a cause whose matches are held
	// is logged; default 10s.
	ReportEvery time.Duration
	// CommitInterval is how often acknowledged spool records are committed;
	// default 50ms.
	CommitInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = Overflow
	}
	if c.WhenFull == "" {
		c.WhenFull = Block
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = 100_000
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 10_000
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = time.Second
	}
	if c.RetryBackoffMax == 0 {
		c.RetryBackoffMax = 5 * time.Second
	}
	c.RetryBackoffMax = max(c.RetryBackoffMax, c.RetryBackoff)
	if c.Classify == nil {
		c.Classify = func(error) (string, bool) { return "delivery failed", false }
	}
	if c.ReportEvery == 0 {
		c.ReportEvery = 10 * time.Second
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 50 * time.Millisecond
	}
	return c
}

// Errors.
var (
	// ErrClosed is returned by Publish once the relay is closed.
	ErrClosed = errors.New("relay closed")
	// ErrDropped is returned by Publish for a match dropped because the relay
	// is full and WhenFull is DropNewest.
	ErrDropped = errors.New("relay full: match dropped")
)

// Relay hands accepted matches to a Producer. Publish is called by one
// goroutine (the stream reader), Run by another.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	prod    Producer
	spool   Spool // nil in Memory mode
	metrics *Metrics
	done    func(uint64, error)

	mu       sync.Mutex
	ring     ring
	spilling bool // new matches go to the spool until it is caught up
	full     bool // the last Publish found no room
	closed   bool
	inputEnd bool
	putBuf   [maxPayload]byte

	space   chan struct{} // room freed
	work    chan struct{} // something to forward, or an acknowledgement
	closing chan struct{} // closed by Abort

	// In flight: owned by the Run goroutine, but for state, which done sets.
	slots         []slot
	nextToken     uint64
	frontier      uint64 // lowest token not yet acknowledged
	waiting       atomic.Bool
	failMu        sync.Mutex
	failed        []failure
	nFailed       atomic.Int64
	failedSpare   []failure
	retries       []retry
	causes        map[string]*cause      // the causes of failed deliveries, while they hold matches or last failed
	held          atomic.Pointer[string] // what is held, for Status
	reportedAt    time.Time
	readBuf       []byte
	pendingCommit spool.Pos
	havePending   bool
	lastCommit    time.Time
	oldestNS      atomic.Int64

	// skipIDs, while not nil, are the IDs of held matches not to send:
	// the topic holds them (see SkipDelivered). skipped counts those
	// passed over.
	skipIDs map[int64]bool
	skipped int

	clock         atomic.Int64 // coarse time, unix nanoseconds; see tickClock
	inFlightCount atomic.Int64
	state         *health.State
	dropped       atomic.Int64
}

type slotState = uint32

const (
	slotFree slotState = iota
	slotPending
	slotAcked
	slotFailed
)

type slot struct {
	m       match.Match
	at      int64
	pos     spool.Pos
	spooled bool
	state   atomic.Uint32
	cause   *cause // of its last failure, until it is acknowledged; the relay loop's
}

// New returns a Relay in front of prod. sp is the spool, required unless
// the mode is Memory (where it is ignored). It fails for an unknown mode or
// policy.
func New(cfg Config, prod Producer, sp Spool, log *slog.Logger, m *Metrics) (*Relay, error) {
	cfg = cfg.withDefaults()
	switch cfg.Mode {
	case Overflow, Disk:
		if sp == nil {
			return nil, fmt.Errorf("relay: mode %s needs a spool", cfg.Mode)
		}
	case Memory:
		sp = nil
	default:
		return nil, fmt.Errorf("relay: unknown mode %q", cfg.Mode)
	}
	if cfg.WhenFull != Block && cfg.WhenFull != DropNewest {
		return nil, fmt.Errorf("relay: unknown full policy %q", cfg.WhenFull)
	}
	if m == nil {
		m, _ = NewMetrics(nil)
	}
	r := &Relay{
		cfg:     cfg,
		log:     log,
		prod:    prod,
		spool:   sp,
		metrics: m,
		ring:    newRing(cfg.MaxRecords),
		space:   make(chan struct{}, 1),
		work:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		slots:   make([]slot, cfg.MaxInFlight),
		readBuf: make([]byte, 0, 64),
		state:   health.NewState("accepting"),
		causes:  map[string]*cause{},
	}
	r.state.Set(true, "accepting")
	r.done = r.delivered
	if sp != nil && sp.Stats().Unread > 0 {
		// A backlog from an earlier run goes first; new matches queue
		// behind it.
		r.spilling = true
		log.Info("Replaying spooled matches from an earlier run", "records", sp.Stats().Unread)
	}
	m.attach(r)
	return r, nil
}

// A spooled match is a version byte, then little-endian fields: version 1
// holds the ID; version 2, written when the match has a sequence number
// or a start time, adds those; version 3, written when it also has a
// rescan position, adds that.
const (
	payloadV1  = 1 + 8
	payloadV2  = 1 + 3*8
	payloadV3  = 1 + 4*8
	maxPayload = payloadV3
)

func encode(dst *[maxPayload]byte, m match.Match) []byte {
	binary.LittleEndian.PutUint64(dst[1:], uint64(m.ID))
	if m.SeqNum == 0 && m.StartTime == 0 && m.RescanSeq == 0 {
		dst[0] = 1
		return dst[:payloadV1]
	}
	binary.LittleEndian.PutUint64(dst[9:], uint64(m.SeqNum))
	binary.LittleEndian.PutUint64(dst[17:], uint64(m.StartTime))
	if m.RescanSeq == 0 {
		dst[0] = 2
		return dst[:payloadV2]
	}
	dst[0] = 3
	binary.LittleEndian.PutUint64(dst[25:], uint64(m.RescanSeq))
	return dst[:payloadV3]
}

// Decode reads a match from a spooled record's payload, as the relay wrote
// it: a version byte, then the ID (version 1), or the ID, the sequence
// number and the start time (version 2), and the rescan position
// (version 3), each 8 bytes little endian.
func Decode(p []byte) (match.Match, error) {
	switch {
	case len(p) == payloadV1 && p[0] == 1:
		return match.New(int64(binary.LittleEndian.Uint64(p[1:])))
	case (len(p) == payloadV2 && p[0] == 2) || (len(p) == payloadV3 && p[0] == 3):
		m, err := match.New(int64(binary.LittleEndian.Uint64(p[1:])))
		if err != nil {
			return m, err
		}
		m.SeqNum = int64(binary.LittleEndian.Uint64(p[9:]))
		m.StartTime = int64(binary.LittleEndian.Uint64(p[17:]))
		if p[0] == 3 {
			m.RescanSeq = int64(binary.LittleEndian.Uint64(p[25:]))
		}
		return m, nil
	}
	return match.Match{}, fmt.Errorf("spooled record of %d bytes, version %d: not a match", len(p), firstByte(p))
}

func firstByte(p []byte) int {
	if len(p) == 0 {
		return -1
	}
	return int(p[0])
}

// Publish accepts m for delivery. It returns nil once m is held in memory or on
// disk. When the relay is full it blocks until there is room or ctx ends
// (Block), or returns ErrDropped (DropNewest); it returns ErrClosed after
// Abort or Close.
func (r *Relay) Publish(ctx context.Context, m match.Match) error {
	// The arrival time is the relay's coarse clock, which a busy relay
	// reads every 256 matches; the time now if the relay is idle (its
	// clock is as old as its last wake-up) or before Run has started.
	now := time.Unix(0, r.clock.Load())
	if now.UnixNano() == 0 || r.waiting.Load() {
		now = time.Now()
	}
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return ErrClosed
		}
		err := r.putLocked(m, now)
		if err == nil {
			if r.full {
				r.full = false
				r.state.Set(true, "accepting")
			}
			r.mu.Unlock()
			r.signal(r.work)
			return nil
		}
		if !errors.Is(err, errNoRoom) {
			r.mu.Unlock()
			return err
		}
		wasFull := r.full
		if !wasFull {
			r.full = true
			what := "reading paused"
			if r.cfg.WhenFull == DropNewest {
				what = "dropping new matches"
			}
			r.state.Set(false, "full, "+what)
		}
		r.mu.Unlock()
		if r.cfg.WhenFull == DropNewest {
			// The caller logs and counts the drop with the match ID.
			r.dropped.Add(1)
			return ErrDropped
		}
		if !wasFull {
			r.log.Warn("Relay full, reading paused until Kafka catches up", "mode", string(r.cfg.Mode))
		}
		select {
		case <-r.space:
		case <-r.closing:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var errNoRoom = errors.New("no room")

func (r *Relay) putLocked(m match.Match, now time.Time) error {
	switch {
	case r.cfg.Mode == Disk || (r.cfg.Mode == Overflow && (r.spilling || r.ring.full())):
		_, err := r.spool.Append(encode(&r.putBuf, m), now)
		if errors.Is(err, spool.ErrFull) {
			return errNoRoom
		}
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if !r.spilling && r.cfg.Mode == Overflow {
			r.log.Info("Memory buffer full, spilling to the disk spool", "max_records", r.cfg.MaxRecords)
		}
		r.spilling = true
		return nil
	case r.ring.full():
		return errNoRoom
	default:
		r.ring.push(m, now.UnixNano())
		return nil
	}
}

// signal wakes whoever waits on c, without blocking.
func (r *Relay) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// delivered records the outcome of one token; it runs on producer
// goroutines.
func (r *Relay) delivered(token uint64, err error) {
	s := &r.slots[token%uint64(len(r.slots))]
	if err == nil {
		s.state.Store(slotAcked)
	} else {
		s.state.Store(slotFailed)
		r.failMu.Lock()
		r.failed = append(r.failed, failure{token: token, err: err})
		r.nFailed.Store(int64(len(r.failed)))
		r.failMu.Unlock()
	}
	if err != nil || r.waiting.Load() {
		r.signal(r.work)
	}
}

// CloseInput tells the relay that no more matches will be Publish: Run returns
// once everything held is acknowledged.
func (r *Relay) CloseInput() {
	r.mu.Lock()
	r.inputEnd = true
	r.mu.Unlock()
	r.signal(r.work)
}

// Abort makes blocked and future Publish calls return ErrClosed. It is safe to call
// more than once.
func (r *Relay) Abort() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.closing)
	}
}
