// Package steamseq finds every finished public Dota 2 match by paging
// through Steam's match sequence, the GetMatchHistoryBySequenceNum
// endpoint of the Steam Web API, in match_seq_num order.
//
// A Scanner starts where the last run stopped (a ResumeFunc says where)
// and runs two cursors. The primary one asks for the page from the next
// sequence number on, hands each match to a Handler in order and asks for
// the page after the last one it got; when a page comes back less than
// 90% full it has caught up with Steam and waits IdleWait before asking
// again (odota/core svc/scanner.ts). The rescan trails it, RescanBehind
// seqs or RescanDelay behind, and hands on the matches Steam listed late,
// at their original seq, after the primary cursor had passed them
// (OpenDota's second scanner, ecosystem.config.js SCANNER_OFFSET); it
// calls only with the capacity the primary cursor leaves.
//
// Calls are spread over several keys, each paced on its own: Steam allows
// a key about one call every 5 s and refuses more with HTTP 429 and no
// Retry-After, so each key learns its interval (see keys.go). A page that
// keeps failing with status 2 ("Error retrieving match data.") is
// narrowed down to the match that fails, which is stepped past after
// SkipTries tries over SkipAfter, counted, and read again by the rescan.
// Other failures back off with jitter, honouring Retry-After. No Steam API
// key ever appears in its logs, errors or metrics.
package steamseq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/match"
)

// Handler receives the matches the scanner finds. The primary cursor
// hands them on in match_seq_num order; the rescan hands on, from its
// own goroutine, the matches Steam listed late, lower in the sequence.
type Handler interface {
	// Match publishes one match. An error means it was not accepted (the
	// service is shutting down, or the buffer dropped it). It must be
	// safe to call from two goroutines.
	Match(ctx context.Context, m match.Match) error
	// Reject counts and logs an item that should have held a match but
	// did not.
	Reject(ctx context.Context, reason match.Reason, item []byte)
}

// PageHandler is a Handler that writes what the scanner finds a page at a
// time, each page with the cursor after it (in one Kafka transaction, so
// that a page and the position past it land together or not at all).
// The scanner hands it each match with its object's bytes exactly as
// Steam sent them, then ends the page; pages of the two cursors never
// interleave. An error from either makes Run return, and the scan must
// start again from the last cursor the handler wrote.
type PageHandler interface {
	Handler
	// MatchObject is Match with the match object as Steam served it.
	MatchObject(ctx context.Context, m match.Match, object []byte) error
	// EndPage ends a page: at is where both cursors stand after it.
	EndPage(ctx context.Context, at Cursor) error
}

// Cursor is where a scan stands: each cursor has handled every seq up to
// and including its position.
type Cursor struct {
	Primary int64 `json:"primary"`
	Rescan  int64 `json:"rescan"`
}

// Resume is where an earlier scan stopped.
type Resume struct {
	// Found reports that an earlier scan delivered matches; the other
	// fields are then set.
	Found bool
	// Seq is the highest match_seq_num delivered: the primary cursor
	// resumes after it.
	Seq int64
	// Rescan is the rescan's position: it resumes after it. A store that
	// does not know it gives Seq minus the behind the ResumeFunc was
	// called with (at least 0).
	Rescan int64
	// Delivered holds the match_seq_nums delivered above Rescan, in any
	// order: the rescan publishes none of them again.
	Delivered []int64
	// Foreign reports, when Found is false, that the store holds records
	// but none from a scan (no match_seq_num): the scanner then refuses to
	// start unless Config.StartSeqNum is set, rather than start at the
	// head silently.
	Foreign bool
}

// ResumeFunc returns where an earlier scan stopped. behind is the
// rescan's distance (Config.RescanBehind, or 0 with the rescan off), for
// a store that holds no rescan position. ceiling, when positive, is the
// highest match_seq_num a scan can have delivered (MaxSeqJump past the
// newest one the scanner knows): a store must pass over any record above
// it, written by a version that did not bound the seqs it took, rather
// than resume after it. Without a ceiling a store still passes over seqs
// lying more than MaxSeqJump from the rest of what it holds.
type ResumeFunc func(ctx context.Context, behind, ceiling int64) (Resume, error)

// ErrForeignTopic is returned by Run when the ResumeFunc reports records
// that no scan wrote and Config.StartSeqNum is not set.
var ErrForeignTopic = errors.New("the topic holds records but none with a match_seq_num, so where to start is unknown")

// maxRejectItem is how much of a rejected entry the Handler is shown.
const maxRejectItem = 256

// Scanner is the forward scan: it pages through Steam's match sequence
// from where the last run stopped toward the head, and for ever after.
// Create it with New, or NewScanner on a Client it shares with backfill
// shards; its methods other than Run are safe to call at any time, from
// any goroutine.
type Scanner struct {
	cfg     Config
	cl      *Client
	log     *slog.Logger
	state   *health.State
	metrics *metrics
	hooks   *scanHooks

	running  atomic.Bool
	position atomic.Int64
	head     atomic.Int64
	rescanAt atomic.Int64

	mu        sync.Mutex
	delivered []int64        // seqs delivered above the rescan position, ascending
	marks     []mark         // when the primary cursor reached where, oldest first
	progress  chan struct{}  // closed and replaced when the primary cursor moves
	bogus     map[int64]bool // implausible seqs seen
	stepped   []SeqRange     // seqs the primary cursor stepped past, above the rescan's position
	bogusNew  []entry        // implausible entries not yet reported

	late lateFound // the rescan's, for its log

	// pages holds a token while a page goes to a PageHandler: pages of
	// the two cursors never interleave, and neither cursor calls Steam
	// while the other's page is being written (Kafka down: nothing
	// piles up).
	pages chan struct{}
}

// mark says that the primary cursor was at seq at time at.
type mark struct {
	at  time.Time
	seq int64
}

// New returns a Scanner for cfg with a Client of its own (NewClient),
// both registering their metrics on reg. It fails as NewClient does, or
// for a negative StartSeqNum. It makes no call to Steam.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Scanner, error) {
	cl, err := NewClient(cfg, log, reg)
	if err != nil {
		return nil, err
	}
	return NewScanner(cl, cfg, log, reg)
}

// NewScanner returns the forward Scanner for cfg's scan settings
// (StartSeqNum, IdleWait, RescanBehind, RescanDelay, HeadInterval),
// calling Steam through cl, whose keys its primary cursor takes first.
// It registers its metrics on reg, and fails if it cannot or if
// StartSeqNum is negative. It makes no call to Steam.
func NewScanner(cl *Client, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Scanner, error) {
	cfg = cfg.withDefaults()
	if cfg.StartSeqNum < 0 {
		return nil, fmt.Errorf("steam scanner: start seq num %d is negative", cfg.StartSeqNum)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("steam scanner: %w", err)
	}
	s := &Scanner{
		cfg:      cfg,
		cl:       cl,
		log:      log,
		state:    health.NewState("not started"),
		metrics:  m,
		progress: make(chan struct{}),
		pages:    make(chan struct{}, 1),
		bogus:    map[int64]bool{},
	}
	s.hooks = &scanHooks{
		log:         log,
		state:       s.state,
		beforePage:  s.awaitPages,
		ceiling:     func(start int64) int64 { return max(s.Head(), start) + MaxSeqJump },
		implausible: s.noteImplausible,
		skipped: func(c *cursor, from, to int64) string {
			if c.name == cursorRescan || s.cfg.RescanBehind < 0 {
				return "no later read: a match there is lost unless Steam serves it by another way"
			}
			s.noteStepped(from, to)
			return "the rescan reads this range once more later"
		},
		steppedPast: s.wasStepped,
	}
	return s, nil
}

// Client returns the Client the Scanner calls Steam through.
func (s *Scanner) Client() *Client { return s.cl }

// Position returns the last match_seq_num the primary cursor handed on
// or skipped: its next page starts after it. Before the first page it is
// the one before the start position; it is 0 until the start is known.
func (s *Scanner) Position() int64 { return s.position.Load() }

// RescanPosition returns the last match_seq_num the rescan has read past,
// or 0 until the start is known.
func (s *Scanner) RescanPosition() int64 { return s.rescanAt.Load() }

// Head returns the newest match_seq_num known to exist on Steam, or 0 if
// none is known yet.
func (s *Scanner) Head() int64 { return s.head.Load() }

// KeyIntervals returns the interval each key has learnt, in the order of
// Config.Keys.
func (s *Scanner) KeyIntervals() []time.Duration { return s.cl.KeyIntervals() }

// Status reports whether the last call to Steam succeeded. It is down
// before the start position is known and after a failed call, with the
// reason; up, it tells the position and the lags.
func (s *Scanner) Status() health.Status { return s.state.Status() }

// Run scans until ctx ends or h refuses a match.
//
// It first finds the start: after the Seq resume reports, else at
// Config.StartSeqNum, else (if resume reports nothing at all, not even
// foreign records) at the newest match Steam reports, with a warning.
// Errors from resume are logged and retried with backoff, as are all
// failed calls to Steam. Then the primary cursor pages forward for ever,
// handing each match to h.Match and each entry without a valid match_id
// to h.Reject, in match_seq_num order, while the rescan (unless
// Config.RescanBehind is negative) trails it and hands on what it finds
// that was not delivered before. h gets a context that is not cancelled
// with ctx, so that a page already fetched is handed on in full during
// shutdown.
//
// Run returns nil when ctx ends. If h.Match returns an error while ctx is
// live, Run returns it wrapped; the positions are then before the refused
// match. Run returns an error at once if it is already running, if resume
// reports a negative seq, or ErrForeignTopic (wrapped).
func (s *Scanner) Run(ctx context.Context, resume ResumeFunc, h Handler) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("steam scanner: already running")
	}
	defer s.running.Store(false)
	err := s.run(ctx, resume, h)
	if err != nil {
		s.state.Set(false, "stopped: "+err.Error())
	} else {
		s.state.Set(false, "stopped")
	}
	return err
}

func (s *Scanner) run(ctx context.Context, resume ResumeFunc, h Handler) error {
	st, err := s.start(ctx, resume)
	if err != nil || st.next == 0 {
		return err
	}
	s.mu.Lock()
	s.delivered = st.delivered
	s.marks = []mark{{at: time.Now(), seq: st.next - 1}}
	s.mu.Unlock()
	s.setRescan(st.rescan)
	s.setPosition(st.next - 1)
	s.state.Set(true, s.detail())

	g, gctx := errgroup.WithContext(ctx)
	hctx := context.WithoutCancel(ctx)
	g.Go(func() error { return s.runPrimary(gctx, hctx, h, st.next, st.fromHead) })
	if s.cfg.RescanBehind >= 0 {
		g.Go(func() error { return s.runRescan(gctx, hctx, h) })
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// startAt is where a Run starts.
type startAt struct {
	next      int64 // the primary cursor's first seq; 0 if ctx ended first
	fromHead  bool
	rescan    int64
	delivered []int64 // ascending, above rescan
}

// start finds where to start. It returns a zero next and no error if ctx
// ends first.
func (s *Scanner) start(ctx context.Context, resume ResumeFunc) (startAt, error) {
	s.state.Set(false, "waiting for a start position")
	behind := max(s.cfg.RescanBehind, 0)
	// The newest seq, when known (a replica that led before), bounds
	// where an earlier scan can have stopped.
	var ceiling int64
	if head := s.Head(); head > 0 {
		ceiling = head + MaxSeqJump
	}
	var res Resume
	for attempt := 0; ; attempt++ {
		var err error
		res, err = resume(ctx, behind, ceiling)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return startAt{}, nil
		}
		delay := s.cl.backoff(attempt, 0)
		s.state.Set(false, "waiting for a start position: resume: "+s.cl.redact(err.Error()))
		s.log.Warn("Cannot read the resume position, retrying",
			"error", s.cl.redact(err.Error()), "attempt", attempt+1, "retry_in", delay.String())
		if !backoff.Wait(ctx, delay) {
			return startAt{}, nil
		}
	}
	switch {
	case res.Found && (res.Seq < 0 || res.Rescan < 0):
		return startAt{}, fmt.Errorf("steam scanner: resume position %d (rescan %d) is negative", res.Seq, res.Rescan)
	case res.Found && (ceiling > 0 && max(res.Seq, res.Rescan) > ceiling || res.Seq > math.MaxInt64-MaxSeqJump):
		return startAt{}, fmt.Errorf("steam scanner: resume position %d (rescan %d) is implausible: more than %d past the newest match_seq_num known, %d",
			res.Seq, res.Rescan, MaxSeqJump, ceiling-MaxSeqJump)
	case res.Found:
		rescan := min(res.Rescan, res.Seq)
		s.log.Info("Steam scanner resuming", "after_seq", res.Seq, "rescan_after_seq", rescan, "delivered_in_rescan_window", len(res.Delivered))
		return startAt{next: res.Seq + 1, rescan: rescan, delivered: deliveredAbove(res.Delivered, rescan)}, nil
	case s.cfg.StartSeqNum > 0:
		s.log.Info("Steam scanner starting at the configured seq", "start_seq", s.cfg.StartSeqNum)
		return startAt{next: s.cfg.StartSeqNum, rescan: s.cfg.StartSeqNum - 1}, nil
	case res.Foreign:
		return startAt{}, fmt.Errorf("steam scanner: %w; set STEAM_START_SEQ_NUM to say where to start", ErrForeignTopic)
	}
	c := &cursor{name: cursorPrimary, prio: prioForward, scan: s.hooks}
	for {
		head, err := s.cl.headCall(ctx, c)
		if err == nil {
			s.setHead(head)
			s.log.Warn("Steam scanner starting at the newest match: nothing was delivered before, and STEAM_START_SEQ_NUM is not set (a first run)", "start_seq", head)
			return startAt{next: head, fromHead: true, rescan: head - 1}, nil
		}
		if ctx.Err() != nil {
			return startAt{}, nil
		}
	}
}

// deliveredAbove returns the seqs above floor, sorted, without repeats.
func deliveredAbove(seqs []int64, floor int64) []int64 {
	out := make([]int64, 0, len(seqs))
	for _, q := range seqs {
		if q > floor {
			out = append(out, q)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// runPrimary pages forward from next for ever.
func (s *Scanner) runPrimary(ctx, hctx context.Context, h Handler, next int64, fromHead bool) error {
	c := &cursor{name: cursorPrimary, prio: prioForward, next: next, scan: s.hooks}
	var nextHead, idleUntil time.Time
	if fromHead {
		nextHead = time.Now().Add(s.cfg.HeadInterval)
	}
	for ctx.Err() == nil {
		if s.cfg.HeadInterval > 0 && !time.Now().Before(nextHead) {
			nextHead = time.Now().Add(s.cfg.HeadInterval)
			if head, err := s.cl.headCall(ctx, c); err == nil {
				if known := max(s.Head(), s.Position()); head > known+MaxSeqJump {
					s.log.Error("Steam reported an implausible newest match_seq_num; ignored",
						"head", head, "known", known, "max_jump", MaxSeqJump)
				} else {
					s.setHead(max(head, s.Head()))
				}
				s.state.Set(true, s.detail())
			}
			continue
		}
		if s.cfg.HeadInterval > 0 && idleUntil.After(nextHead) {
			// Refresh the head while idle, then come back to the page.
			if !backoff.Wait(ctx, time.Until(nextHead)) {
				return nil
			}
			continue
		}
		entries, n, ok := s.cl.fetch(ctx, c, idleUntil)
		s.reportImplausible(hctx, h)
		if !ok {
			continue
		}
		var err error
		if c.hidden {
			err = s.page(hctx, h, func() error { s.setPosition(c.next - 1); return nil })
		} else {
			err = s.page(hctx, h, func() error { return s.handOn(hctx, h, entries) })
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("steam scanner: %w", err)
		}
		if c.hidden {
			continue
		}
		if len(entries) > 0 {
			c.next = entries[len(entries)-1].m.SeqNum + 1
			if c.next-1 > s.Head() {
				s.setHead(c.next - 1) // it exists, so the head is at least there
			}
		}
		s.moved(c.next - 1)
		idleUntil = time.Time{}
		caughtUp := len(entries)*10 < n*9 && n == s.cfg.MatchesRequested
		if caughtUp {
			// Caught up with Steam: give it time to finish more matches.
			idleUntil = time.Now().Add(s.cfg.IdleWait)
		}
		s.cl.pool.allowLow(caughtUp)
		s.state.Set(true, s.detail())
		s.log.Debug("Steam page handed on", "matches", len(entries), "next", c.next, "head", s.Head())
	}
	return nil
}

// handOn gives the entries of a page to h, moving the position past each
// one it takes. It stops at the first match h refuses.
func (s *Scanner) handOn(ctx context.Context, h Handler, entries []entry) error {
	for _, e := range entries {
		if e.reason != "" {
			h.Reject(ctx, e.reason, e.raw[:min(len(e.raw), maxRejectItem)])
			s.addDelivered(e.m.SeqNum) // handled: the rescan rejects it no second time
		} else {
			m := e.m
			if s.cfg.RescanBehind >= 0 {
				m.RescanSeq = s.RescanPosition()
			}
			if err := s.hand(ctx, h, m, e.raw); err != nil {
				return fmt.Errorf("handler refused match %d (seq %d): %w", e.m.ID, e.m.SeqNum, err)
			}
			s.metrics.matches.Inc()
			s.addDelivered(e.m.SeqNum)
		}
		s.setPosition(e.m.SeqNum)
	}
	return nil
}

// hand gives m to h, with its object if h takes pages.
func (s *Scanner) hand(ctx context.Context, h Handler, m match.Match, object []byte) error {
	if ph, ok := h.(PageHandler); ok {
		return ph.MatchObject(ctx, m, object)
	}
	return h.Match(ctx, m)
}

// page runs handle, which hands on one page, and ends the page for a
// PageHandler with where the cursors then stand. Pages of the two cursors
// do not interleave.
func (s *Scanner) page(ctx context.Context, h Handler, handle func() error) error {
	ph, ok := h.(PageHandler)
	if !ok {
		return handle()
	}
	s.pages <- struct{}{}
	defer func() { <-s.pages }()
	if err := handle(); err != nil {
		return err
	}
	if err := ph.EndPage(ctx, Cursor{Primary: s.Position(), Rescan: s.RescanPosition()}); err != nil {
		return fmt.Errorf("end the page: %w", err)
	}
	return nil
}

// awaitPages returns once no page is being handed to a PageHandler (at
// once with a plain Handler), or with ctx's error: a cursor does not call
// Steam while the other cursor's page is still being written, so that a
// Kafka outage holds at most the page of the open transaction.
func (s *Scanner) awaitPages(ctx context.Context) error {
	select {
	case s.pages <- struct{}{}:
		<-s.pages
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// noteImplausible keeps, for reportImplausible, the entries of a page
// whose seq was implausible and had not been seen before.
func (s *Scanner) noteImplausible(es []entry) {
	if len(es) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range es {
		if s.bogus[e.m.SeqNum] {
			continue
		}
		if len(s.bogus) >= maxBogus {
			clear(s.bogus)
		}
		s.bogus[e.m.SeqNum] = true
		s.bogusNew = append(s.bogusNew, e)
	}
}

// maxBogus bounds the memory of implausible seqs already reported.
const maxBogus = 1000

// reportImplausible rejects, once each, the entries with an implausible
// seq that pages have held since the last call.
func (s *Scanner) reportImplausible(ctx context.Context, h Handler) {
	s.mu.Lock()
	es := s.bogusNew
	s.bogusNew = nil
	s.mu.Unlock()
	for _, e := range es {
		h.Reject(ctx, e.reason, e.raw[:min(len(e.raw), maxRejectItem)])
		s.log.Error("Steam listed a match with an implausible match_seq_num; rejected, and the position stays",
			"match_seq_num", e.m.SeqNum, "head", s.Head(), "position", s.Position(), "max_jump", MaxSeqJump)
	}
}

func (s *Scanner) setPosition(seq int64) {
	s.position.Store(seq)
	s.metrics.position.Set(float64(seq))
	s.updateLag()
}

func (s *Scanner) setHead(seq int64) {
	s.head.Store(seq)
	s.metrics.head.Set(float64(seq))
	s.updateLag()
}

func (s *Scanner) updateLag() {
	pos := s.position.Load()
	if head := s.head.Load(); head > 0 {
		s.metrics.lag.Set(float64(max(head-pos, 0)))
	}
	s.metrics.rescanLag.Set(float64(max(pos-s.rescanAt.Load(), 0)))
}

func (s *Scanner) setRescan(seq int64) {
	s.rescanAt.Store(seq)
	s.metrics.rescanPosition.Set(float64(seq))
	s.updateLag()
}

// detail describes the positions for Status.
func (s *Scanner) detail() string {
	pos, head := s.Position(), s.Head()
	var b strings.Builder
	if head == 0 {
		fmt.Fprintf(&b, "at seq %d, head unknown", pos)
	} else {
		fmt.Fprintf(&b, "at seq %d, lag %d", pos, max(head-pos, 0))
	}
	if s.cfg.RescanBehind >= 0 {
		fmt.Fprintf(&b, "; rescan at seq %d, %d behind", s.RescanPosition(), max(pos-s.RescanPosition(), 0))
	}
	return b.String()
}
