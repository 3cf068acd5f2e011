// Package steamseq finds every finished public Dota 2 match by paging
// through Steam's match sequence, the GetMatchHistoryBySequenceNum
// endpoint of the Steam Web API, in match_seq_num order.
//
// A Scanner starts where the last run stopped (a ResumeFunc says where),
// asks for the page from the next sequence number on, hands each match to
// a Handler in order and asks for the page after the last one it got. When
// a page comes back less than 90% full it has caught up with Steam and
// waits IdleWait before asking again. It keeps to one call per MinInterval
// and backs off, with jitter and honouring Retry-After, when Steam
// refuses, fails or answers nonsense. The Steam API key never appears in
// its logs, errors or metrics.
package steamseq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/match"
)

// Handler receives the matches the scanner finds, in match_seq_num order.
type Handler interface {
	// Match publishes one match. An error means it was not accepted (the
	// service is shutting down, or the buffer dropped it).
	Match(ctx context.Context, m match.Match) error
	// Reject counts and logs an item that should have held a match but
	// did not.
	Reject(ctx context.Context, reason match.Reason, item []byte)
}

// ResumeFunc returns the highest match_seq_num already delivered, and
// false if there is none.
type ResumeFunc func(ctx context.Context) (seq int64, ok bool, err error)

// maxRejectItem is how much of a rejected entry the Handler is shown.
const maxRejectItem = 256

// Scanner pages through Steam's match sequence. Create it with New; its
// methods other than Run are safe to call at any time, from any goroutine.
type Scanner struct {
	cfg      Config
	base     string // BaseURL without a trailing slash
	log      *slog.Logger
	state    *health.State
	metrics  *metrics
	redactor *strings.Replacer

	running  atomic.Bool
	position atomic.Int64
	head     atomic.Int64

	// Owned by Run.
	lastCall  time.Time // start of the last call
	notBefore time.Time // no call before this, after failures
	failures  int       // failed calls in a row
}

// New returns a Scanner for cfg. It fails if cfg has no Key, a BaseURL
// that is not http(s), MatchesRequested outside 1..100 or a negative
// StartSeqNum, or if the metrics cannot be registered on reg. It makes no
// call to Steam.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Scanner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("steam scanner: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("steam scanner: %w", err)
	}
	return &Scanner{
		cfg:      cfg,
		base:     strings.TrimSuffix(cfg.BaseURL, "/"),
		log:      log,
		state:    health.NewState("not started"),
		metrics:  m,
		redactor: strings.NewReplacer(cfg.Key, "REDACTED", url.QueryEscape(cfg.Key), "REDACTED"),
	}, nil
}

// Position returns the last match_seq_num handed on or skipped: the
// scanner's next page starts after it. Before the first page it is the
// one before the start position; it is 0 until the start is known.
func (s *Scanner) Position() int64 { return s.position.Load() }

// Head returns the newest match_seq_num known to exist on Steam, or 0 if
// none is known yet.
func (s *Scanner) Head() int64 { return s.head.Load() }

// Status reports whether the last call to Steam succeeded. It is down
// before the start position is known and after a failed call, with the
// reason; up, it tells the position and the lag.
func (s *Scanner) Status() health.Status { return s.state.Status() }

// Run scans until ctx ends or h refuses a match.
//
// It first finds the start: after the seq resume reports, else at
// Config.StartSeqNum, else at the newest match Steam reports. Errors from
// resume are logged and retried with backoff, as are all failed calls to
// Steam. Then it pages forward for ever, handing each match to h.Match and
// each entry without a valid match_id to h.Reject, in match_seq_num order.
// h gets a context that is not cancelled with ctx, so that a page already
// fetched is handed on in full during shutdown.
//
// Run returns nil when ctx ends. If h.Match returns an error while ctx is
// live, Run returns it wrapped; Position is then the seq before the
// refused match. Run returns an error at once if it is already running or
// resume reports a negative seq.
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
	next, fromHead, err := s.start(ctx, resume)
	if err != nil || next == 0 {
		return err
	}
	s.setPosition(next - 1)
	s.state.Set(true, s.detail())
	hctx := context.WithoutCancel(ctx)
	var nextHead, idleUntil time.Time
	if fromHead {
		nextHead = time.Now().Add(s.cfg.HeadInterval)
	}
	for ctx.Err() == nil {
		if s.cfg.HeadInterval > 0 && !time.Now().Before(nextHead) {
			if !s.pace(ctx, time.Time{}) {
				return nil
			}
			nextHead = time.Now().Add(s.cfg.HeadInterval)
			if head, err := s.fetchHead(ctx); err == nil {
				s.setHead(max(head, s.Head()))
				s.succeeded()
				s.state.Set(true, s.detail())
			} else if ctx.Err() == nil {
				s.failed(endpointHistory, "", err)
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
		if !s.pace(ctx, idleUntil) {
			return nil
		}
		entries, err := s.fetchPage(ctx, next)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.failed(endpointSequence, "", err)
			continue
		}
		s.succeeded()
		if err := s.handOn(hctx, h, entries); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("steam scanner: %w", err)
		}
		if len(entries) > 0 {
			next = entries[len(entries)-1].m.SeqNum + 1
			if next-1 > s.Head() {
				s.setHead(next - 1) // it exists, so the head is at least there
			}
		}
		idleUntil = time.Time{}
		if len(entries)*10 < s.cfg.MatchesRequested*9 {
			// Caught up with Steam: give it time to finish more matches.
			idleUntil = time.Now().Add(s.cfg.IdleWait)
		}
		s.state.Set(true, s.detail())
		s.log.Debug("Steam page handed on", "matches", len(entries), "next", next, "head", s.Head())
	}
	return nil
}

// start returns the first seq to ask for and whether it is the head. It
// returns 0 and no error if ctx ends first.
func (s *Scanner) start(ctx context.Context, resume ResumeFunc) (next int64, fromHead bool, err error) {
	s.state.Set(false, "waiting for a start position")
	var seq int64
	var ok bool
	for attempt := 0; ; attempt++ {
		seq, ok, err = resume(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return 0, false, nil
		}
		delay := s.backoff(attempt, 0)
		s.state.Set(false, "waiting for a start position: resume: "+s.redact(err.Error()))
		s.log.Warn("Cannot read the resume position, retrying",
			"error", s.redact(err.Error()), "attempt", attempt+1, "retry_in", delay.String())
		if !backoff.Wait(ctx, delay) {
			return 0, false, nil
		}
	}
	switch {
	case ok && seq < 0:
		return 0, false, fmt.Errorf("steam scanner: resume position %d is negative", seq)
	case ok:
		s.log.Info("Steam scanner resuming", "after_seq", seq)
		return seq + 1, false, nil
	case s.cfg.StartSeqNum > 0:
		s.log.Info("Steam scanner starting at the configured seq", "start_seq", s.cfg.StartSeqNum)
		return s.cfg.StartSeqNum, false, nil
	}
	for {
		if !s.pace(ctx, time.Time{}) {
			return 0, false, nil
		}
		head, err := s.fetchHead(ctx)
		if err == nil {
			s.succeeded()
			s.setHead(head)
			s.log.Info("Steam scanner starting at the newest match", "start_seq", head)
			return head, true, nil
		}
		if ctx.Err() != nil {
			return 0, false, nil
		}
		s.failed(endpointHistory, "waiting for a start position: ", err)
	}
}

// handOn gives the entries of a page to h, moving the position past each
// one it takes. It stops at the first match h refuses.
func (s *Scanner) handOn(ctx context.Context, h Handler, entries []entry) error {
	for _, e := range entries {
		if e.reason != "" {
			h.Reject(ctx, e.reason, e.raw[:min(len(e.raw), maxRejectItem)])
		} else {
			if err := h.Match(ctx, e.m); err != nil {
				return fmt.Errorf("handler refused match %d (seq %d): %w", e.m.ID, e.m.SeqNum, err)
			}
			s.metrics.matches.Inc()
		}
		s.setPosition(e.m.SeqNum)
	}
	return nil
}

// fetchPage asks for the page from start on.
func (s *Scanner) fetchPage(ctx context.Context, start int64) ([]entry, error) {
	began := time.Now()
	body, err := s.get(ctx, "GetMatchHistoryBySequenceNum", sequencePath, url.Values{
		"start_at_match_seq_num": {strconv.FormatInt(start, 10)},
		"matches_requested":      {strconv.Itoa(s.cfg.MatchesRequested)},
	})
	var entries []entry
	if err == nil {
		entries, err = decodePage(body, start)
		if err != nil {
			err = s.badResponse("GetMatchHistoryBySequenceNum", err)
		}
	}
	s.observe(ctx, endpointSequence, began, err)
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// fetchHead asks GetMatchHistory for the newest match_seq_num.
func (s *Scanner) fetchHead(ctx context.Context) (int64, error) {
	began := time.Now()
	body, err := s.get(ctx, "GetMatchHistory", historyPath, nil)
	var head int64
	if err == nil {
		head, err = decodeHead(body)
		if err != nil {
			err = s.badResponse("GetMatchHistory", err)
		}
	}
	s.observe(ctx, endpointHistory, began, err)
	return head, err
}

// observe records a call, unless it was cut short by ctx.
func (s *Scanner) observe(ctx context.Context, endpoint string, began time.Time, err error) {
	if err != nil && ctx.Err() != nil {
		return
	}
	s.metrics.duration.WithLabelValues(endpoint).Observe(time.Since(began).Seconds())
	s.metrics.requests.WithLabelValues(endpoint, outcomeOf(err)).Inc()
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
	if head := s.head.Load(); head > 0 {
		s.metrics.lag.Set(float64(max(head-s.position.Load(), 0)))
	}
}

// detail describes the position for Status.
func (s *Scanner) detail() string {
	pos, head := s.Position(), s.Head()
	if head == 0 {
		return fmt.Sprintf("at seq %d, head unknown", pos)
	}
	return fmt.Sprintf("at seq %d, lag %d", pos, max(head-pos, 0))
}
