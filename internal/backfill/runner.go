package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/steamtxn"
)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// Shards is how many shards the range is split into.
	Shards int
	// Range returns the range as seqs (see Resolve); it is called once,
	// when Run starts.
	Range func(ctx context.Context) (steamseq.Range, error)
	// Kafka gives the brokers, security and batching of the shards'
	// writers.
	Kafka kafkasink.Config
	// Topics are the topics the shards write.
	Topics steamtxn.Topics
	// Replica names this replica in the shards' cursor records.
	Replica string
	// Committed, when set, is told how many matches each committed page
	// of a shard held (the sink's published count).
	Committed func(matches int)
	// RetryFenced is how long a shard whose writer another replica fenced
	// waits before this replica, if it still holds the shard, takes it
	// back: the group's session timeout.
	RetryFenced time.Duration
}

// Runner scans the backfill shards this replica holds, each under a
// transactional writer of its own, and starts and stops them as the
// holding changes (Hold, Release). Every shard's calls share one
// steamseq.Client, after the forward scan's. Create it with NewRunner and
// run it with Run.
type Runner struct {
	cfg     RunnerConfig
	cl      *steamseq.Client
	writers *steamtxn.Metrics
	rejects steamtxn.Rejecter
	log     *slog.Logger
	m       *metrics
	state   *health.State

	mu      sync.Mutex
	shards  []steamseq.Range // the range's shards, once resolved
	held    map[int]bool
	jobs    map[int]*job
	records map[int]steamtxn.ShardRecord // the last seen of each shard held
	done    map[int]bool
	fenced  map[int]time.Time // when a shard's writer was fenced
	wake    chan struct{}
	allDone bool // logged
}

// job is a shard's scan that is running.
type job struct {
	cancel context.CancelFunc
	ended  chan struct{}
}

// NewRunner returns a Runner of cfg's shards calling Steam through cl,
// counting its pages in writers, handing rejected entries to rejects, and
// registering the backfill's metrics on reg. It holds no shard until
// Hold.
func NewRunner(cfg RunnerConfig, cl *steamseq.Client, writers *steamtxn.Metrics, rejects steamtxn.Rejecter, log *slog.Logger, reg prometheus.Registerer) (*Runner, error) {
	if cfg.Shards < 1 || cfg.Range == nil {
		return nil, errors.New("backfill: no shard, or no range")
	}
	m, err := newMetrics(reg, cfg.Shards)
	if err != nil {
		return nil, err
	}
	return &Runner{
		cfg: cfg, cl: cl, writers: writers, rejects: rejects, log: log, m: m,
		state:   health.NewState("finding the range's seqs"),
		held:    map[int]bool{},
		jobs:    map[int]*job{},
		records: map[int]steamtxn.ShardRecord{},
		done:    map[int]bool{},
		fenced:  map[int]time.Time{},
		wake:    make(chan struct{}, 1),
	}, nil
}

// Hold sets the shards this replica holds (by index in the plan): the
// ones it no longer holds stop (Hold waits for them), the new ones start.
func (r *Runner) Hold(shards []int) {
	r.mu.Lock()
	var drop []int
	for i := range r.held {
		if !slices.Contains(shards, i) {
			drop = append(drop, i)
		}
	}
	r.mu.Unlock()
	r.Release(drop)
	r.mu.Lock()
	for _, i := range shards {
		if i >= 0 && i < r.cfg.Shards {
			r.held[i] = true
		}
	}
	r.mu.Unlock()
	r.poke()
}

// Release stops the scans of shards and waits for them (a page being
// committed finishes first), up to 10 s; this replica holds them no more.
func (r *Runner) Release(shards []int) {
	r.mu.Lock()
	var waits []chan struct{}
	for _, i := range shards {
		delete(r.held, i)
		delete(r.records, i)
		r.m.forget(i)
		if j := r.jobs[i]; j != nil {
			j.cancel()
			waits = append(waits, j.ended)
		}
	}
	r.mu.Unlock()
	timeout := time.After(10 * time.Second)
	for _, w := range waits {
		select {
		case <-w:
		case <-timeout:
			r.log.Warn("A backfill shard given up did not stop within 10s; its writer is fenced when the new holder starts")
			return
		}
	}
	r.updateState()
}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Shards returns the range's shards, in order, once Run has found the
// range; nil before.
func (r *Runner) Shards() []steamseq.Range {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shards
}

// Run finds the range, then starts the scans of the shards held, and
// again those that stopped with an error, until ctx ends; then it stops
// them all and returns nil. It returns an error if the range cannot be
// split into the shards.
func (r *Runner) Run(ctx context.Context) error {
	rng, err := r.cfg.Range(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("backfill: %w", err)
	}
	shards := Split(rng, r.cfg.Shards)
	if len(shards) != r.cfg.Shards {
		return fmt.Errorf("backfill: the range %s holds fewer seqs than the %d shards (STEAM_BACKFILL_SHARDS)", rng, r.cfg.Shards)
	}
	r.mu.Lock()
	r.shards = shards
	r.mu.Unlock()
	r.log.Info("Backfill range split into shards", "range", rng.String(), "seqs", rng.Len(), "shards", len(shards), "seqs_per_shard", shards[0].Len())
	g, gctx := errgroup.WithContext(ctx)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		r.startHeld(gctx, g)
		select {
		case <-ctx.Done():
			r.mu.Lock()
			for _, j := range r.jobs {
				j.cancel()
			}
			r.mu.Unlock()
			_ = g.Wait()
			r.state.Set(false, "stopped")
			return nil
		case <-r.wake:
		case <-tick.C:
		}
	}
}

// startHeld starts a scan for each shard held that has none, is not
// done, and is not waiting after being fenced.
func (r *Runner) startHeld(ctx context.Context, g *errgroup.Group) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.held {
		if r.jobs[i] != nil || r.done[i] || time.Since(r.fenced[i]) < r.cfg.RetryFenced {
			continue
		}
		jctx, cancel := context.WithCancel(ctx)
		j := &job{cancel: cancel, ended: make(chan struct{})}
		r.jobs[i] = j
		g.Go(func() error {
			defer close(j.ended)
			err := r.runShard(jctx, i)
			cancel()
			r.mu.Lock()
			delete(r.jobs, i)
			if errors.Is(err, kafkasink.ErrFenced) {
				r.fenced[i] = time.Now()
			}
			r.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				r.log.Warn("A backfill shard stopped; taken back later if this replica still holds it", "shard", i, "error", err)
			}
			r.poke()
			return nil
		})
	}
	r.updateStateLocked()
}

// runShard scans shard i from its last committed cursor to its end.
func (r *Runner) runShard(ctx context.Context, i int) error {
	rng := r.Shards()[i]
	log := r.log.With("shard", i, "range", rng.String())
	job := steamtxn.Job{
		Name:           "backfill shard " + strconv.Itoa(i) + " " + rng.String(),
		Pages:          steamtxn.PageConfig(r.cfg.Kafka, r.cfg.Topics, steamtxn.ShardUnit(rng)),
		StopWhenFenced: true,
		Scan: func(ctx context.Context, cursor []byte, pages *kafkasink.PageWriter) error {
			rec := steamtxn.ShardRecord{ShardCursor: steamseq.StartShard(rng)}
			if cursor != nil {
				var err error
				if rec, err = steamtxn.DecodeShard(cursor); err != nil {
					return err
				}
				if rec.Range != rng {
					return fmt.Errorf("backfill: the cursor of shard %d is for %s, not %s", i, rec.Range, rng)
				}
			}
			r.observe(ctx, i, rec)
			if rec.Done() {
				return nil // finished: no call to Steam
			}
			log.Info("Backfill shard scanning", "position", rec.Position, "remaining", rec.Remaining(), "matches", rec.Matches)
			w := steamtxn.NewShardWriter(r.cfg.Topics.Matches, r.writers, r.rejects, r.cfg.Replica, rec)
			w.OnRecord(func(rec steamtxn.ShardRecord) { r.observe(ctx, i, rec) })
			if r.cfg.Committed != nil {
				w.OnCommit(r.cfg.Committed)
			}
			w.Use(pages)
			return r.cl.ScanShard(ctx, rec.ShardCursor, w, log, nil)
		},
	}
	return steamtxn.Run(ctx, job, log)
}

// observe notes shard i's latest record.
func (r *Runner) observe(ctx context.Context, i int, rec steamtxn.ShardRecord) {
	r.mu.Lock()
	if !r.held[i] {
		r.mu.Unlock()
		return
	}
	r.records[i] = rec
	finished := rec.Done() && !r.done[i]
	if rec.Done() {
		r.done[i] = true
	}
	r.m.shard(i, rec)
	r.m.totals(r.records)
	r.updateStateLocked()
	r.mu.Unlock()
	if finished {
		r.log.Info("Backfill shard finished", "shard", i, "range", rec.Range.String(), "matches", rec.Matches,
			"skipped_seqs", rec.SkippedSeqs(), "skipped", rec.Skipped)
		r.checkAllDone(ctx)
	}
}

// checkAllDone logs once, when every shard of the plan is done, that the
// backfill is finished; the shards held elsewhere are read from the
// cursor topic.
func (r *Runner) checkAllDone(ctx context.Context) {
	r.mu.Lock()
	logged := r.allDone
	r.mu.Unlock()
	if logged {
		return
	}
	readCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	shards := r.Shards()
	st, err := Read(readCtx, r.cfg.Kafka, r.cfg.Topics, shards)
	if err != nil || !st.Finished {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.allDone {
		return
	}
	r.allDone = true
	r.log.Info("Backfill finished: every shard has read its range", "shards", len(shards),
		"from", shards[0].From, "to", shards[len(shards)-1].To,
		"matches", st.Matches, "skipped_seqs", st.SkippedSeqs)
}

// Status reports the shards this replica holds, for readiness. It is up
// once the runner runs; the detail names the shards, and the keys resting
// for the day.
func (r *Runner) Status() health.Status { return r.state.Status() }

func (r *Runner) updateState() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updateStateLocked()
}

func (r *Runner) updateStateLocked() {
	held := make([]int, 0, len(r.held))
	for i := range r.held {
		held = append(held, i)
	}
	slices.Sort(held)
	if r.shards == nil {
		r.state.Set(true, "finding the range's seqs")
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "holds %d of %d backfill shards", len(held), r.cfg.Shards)
	for n, i := range held {
		sep := ", "
		if n == 0 {
			sep = ": "
		}
		state := "starting"
		if rec, ok := r.records[i]; ok {
			state = fmt.Sprintf("%d left", rec.Remaining())
			if rec.Done() {
				state = "done"
			}
		}
		fmt.Fprintf(&b, "%s%d (%s)", sep, i, state)
	}
	if ex := r.cl.ExhaustedKeys(); len(ex) > 0 {
		fmt.Fprintf(&b, "; keys resting until 00:00 UTC: %s", strings.Join(ex, ", "))
	}
	r.state.Set(true, b.String())
}
