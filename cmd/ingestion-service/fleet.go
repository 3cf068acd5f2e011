package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/config"
	"github.com/dota-data/ingestion-service/internal/fleet"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/pipeline"
	"github.com/dota-data/ingestion-service/internal/relay"
)

// publisherSwitch is the pipeline's Publisher in fleet mode: the standby
// window while the replica stands by, the relay while it leads.
type publisherSwitch struct {
	p atomic.Pointer[publisherBox]
}

type publisherBox struct{ pipeline.Publisher }

// Publish hands m to the current publisher.
func (s *publisherSwitch) Publish(ctx context.Context, m match.Match) error {
	return s.p.Load().Publish(ctx, m)
}

func (s *publisherSwitch) set(p pipeline.Publisher) { s.p.Store(&publisherBox{p}) }

// relayRunner runs the relay's forwarding loop, which a fleet replica runs
// only while it leads.
type relayRunner struct {
	rl     *relay.Relay
	cancel context.CancelFunc
	done   chan error // receives Run's result; nil while not running
}

func (r *relayRunner) start() {
	if r.done != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.rl.Run(ctx) }()
}

// stop ends the loop and waits for it.
func (r *relayRunner) stop() {
	if r.done == nil {
		return
	}
	r.cancel()
	<-r.done
	r.done = nil
}

// wait waits for the loop to end by itself (after CloseInput, once
// everything is delivered) until ctx ends, then stops it. It reports
// whether it ended by itself; a loop not running has.
func (r *relayRunner) wait(ctx context.Context) bool {
	if r.done == nil {
		return true
	}
	select {
	case <-r.done:
		r.done = nil
		return true
	case <-ctx.Done():
		r.stop()
		return false
	}
}

// fleetController follows the election: on promotion it starts the
// single writer (fencing the old leader's), hands on what the standby
// window holds that Kafka lacks, and switches the pipeline to the relay;
// on demotion it does the reverse. A source that only the leader may run
// (the Steam scanner) is started and stopped with the role.
type fleetController struct {
	cfg      config.Config
	log      *slog.Logger
	elector  *fleet.Elector
	sink     *kafkasink.Sink
	relay    *relayRunner
	sw       *publisherSwitch
	window   *fleet.Window
	src      source // run only while leading when src.ownWriter
	fencedCh chan struct{}

	leading   bool
	srcCancel context.CancelFunc
	srcDone   chan error
	resigned  time.Time // when this replica last handed over the lead
	handoff   *handOff  // while standing by with matches kept from a lead
}

// handOff is a standby's delivery of the matches it kept from its lead.
type handOff struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// run follows the role until ctx ends. It leaves the replica in its
// current role: shutting down is serve's to do.
func (c *fleetController) run(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	watch := time.NewTicker(time.Second)
	defer watch.Stop()
	// What an earlier run spooled and did not deliver is this replica's
	// to hand on, should it not lead.
	c.startHandOff()
	reachDone := make(chan struct{})
	go func() {
		defer close(reachDone)
		c.followReach(ctx)
	}()
	defer func() { <-reachDone }()
	for {
		select {
		case <-ctx.Done():
			retry.Stop()
			c.endHandOff(true)
			return
		case <-watch.C:
			c.watchSource(ctx)
			continue
		case <-c.elector.Changed():
		case <-c.fencedCh:
			// The sink logged the fencing, with its counts.
			c.demote()
			// The group will say who leads; should it still name this
			// replica, try again after a session timeout.
			retry.Reset(c.cfg.Fleet.SessionTimeout)
			continue
		case <-retry.C:
		}
		switch role := c.elector.Role(); {
		case role == fleet.Leader && !c.leading:
			if !c.promote(ctx) {
				retry.Reset(time.Second)
			}
		case role == fleet.Standby && c.leading:
			c.demote()
		}
	}
}

// promote makes this replica the writer. It reports false if the writer
// could not start (Kafka unreachable): run tries again.
func (c *fleetController) promote(ctx context.Context) bool {
	c.endHandOff(false)
	if c.src.ownWriter {
		c.leading = true
		c.startSource(ctx)
		c.log.Info("Leading: the source runs here now, with a writer of its own that fences the old leader's", "source", c.cfg.Source)
		return true
	}
	actCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.sink.Activate(actCtx, func() {
		select {
		case c.fencedCh <- struct{}{}:
		default:
		}
	}); err != nil {
		c.log.Error("Cannot start writing to Kafka as the new leader; retrying", "error", err)
		return false
	}
	c.leading = true
	c.matchBacklog(ctx)
	c.relay.start()
	// From now on the pipeline publishes; then hand on what the window
	// held and the old leader had not delivered.
	c.sw.set(c.relay.rl)
	held, oldest := c.window.Drain()
	since := time.Now().Add(-c.cfg.Fleet.StandbyWindow)
	if !oldest.IsZero() {
		since = oldest // the window kept more while Kafka was out of reach
	}
	since = since.Add(-time.Minute) // for clock skew
	readCtx, cancelRead := context.WithTimeout(ctx, 30*time.Second)
	delivered, err := c.sink.RecentIDs(readCtx, since, fleet.MaxWindowRecords)
	cancelRead()
	if err != nil {
		c.log.Warn("Cannot read what the old leader delivered; publishing the whole standby window (duplicates, no loss)", "error", err)
	}
	published := 0
	for _, m := range held {
		if delivered[m.ID] {
			continue
		}
		if err := c.relay.rl.Publish(ctx, m); err != nil {
			c.log.Error("Match from the standby window dropped", "match_id", m.ID, "error", err)
			continue
		}
		published++
	}
	c.log.Info("Leading: took over the stream",
		"window", len(held), "already_in_kafka", len(held)-published, "published_from_window", published, "took", time.Since(start).String())
	return true
}

// backlogPerPartition bounds how many of each partition's newest records
// matchBacklog reads: about 200,000 IDs (8 MB) on a 3-partition topic,
// some hours of Dota's matches.
const backlogPerPartition = 1 << 16

// matchBacklog tells the relay, before it runs again, which of the
// matches it kept from an earlier lead the topic already holds: those its
// writer could not commit before it was fenced or lost the lead, which
// the leader since may have published. It reads the topic back from a
// minute before the oldest held match arrived. Should the read fail, or
// not reach back that far, what it did not find is sent: duplicates, no
// loss.
func (c *fleetController) matchBacklog(ctx context.Context) {
	st := c.relay.rl.Stats()
	held := int64(st.Memory) + st.InFlight + st.SpoolRecords
	if st.Oldest.IsZero() || held == 0 {
		return
	}
	readCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	delivered, err := c.sink.RecentIDs(readCtx, st.Oldest.Add(-time.Minute), backlogPerPartition)
	if err != nil {
		c.log.Warn("Cannot read what the topic holds to match the backlog from an earlier lead; sending all of it (duplicates, no loss)", "error", err)
		return
	}
	c.log.Info("Matching the backlog from an earlier lead against the topic",
		"held", held, "oldest", st.Oldest.UTC().Format(time.RFC3339), "ids_read", len(delivered))
	c.relay.rl.SkipDelivered(delivered)
}

// followReach keeps the standby window whole while this replica cannot
// reach Kafka or is out of the fleet's group, until ctx ends: it cannot
// tell then whether a leader writes what the stream sends, and when every
// replica is cut off for longer than the window's age, the first to lead
// again must hold the whole outage. It runs on its own, since a demotion
// can wait on Kafka for as long as the writer takes to give up.
func (c *fleetController) followReach(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	kept := false
	for {
		keep := !c.sink.Status().Up || !c.elector.Status().Up
		if keep != kept {
			c.window.Keep(keep)
			kept = keep
			if c.elector.Role() != fleet.Leader {
				if keep {
					c.log.Warn("Kafka or the fleet's group is out of this replica's reach: the standby window keeps every match until it is back", "held", c.window.Len())
				} else {
					c.log.Info("Kafka and the fleet's group are within reach again: the standby window keeps what it holds for one more window, then the last matches alone", "held", c.window.Len())
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchSource hands the lead to a standby when this replica leads but
// cannot read the stream (its own connection is down) for half a session
// timeout: the standbys still read it and hold what it sends in their
// windows. It does so only if another replica is in the group, and at most
// once per standby window, so that a stream down for every replica does
// not make the lead go round.
func (c *fleetController) watchSource(ctx context.Context) {
	if !c.leading || c.src.ownWriter {
		return
	}
	st := c.src.status()
	grace := c.cfg.Fleet.SessionTimeout / 2
	if st.Up || time.Since(st.Since) < grace || time.Since(c.resigned) < c.cfg.Fleet.StandbyWindow {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := c.elector.Members(qctx)
	if err != nil || n < 2 {
		return
	}
	c.resigned = time.Now()
	c.log.Warn("The stream is down on the leader; handing the lead to a standby that still reads it",
		"down_for", time.Since(st.Since).Round(time.Millisecond).String(), "detail", st.Detail, "members", n)
	c.elector.Abdicate()
}

// startSource runs a source with writers of its own until stopSource.
// Should it stop because a new leader's writer fenced it, the controller
// demotes this replica as it does for a fenced sink.
func (c *fleetController) startSource(ctx context.Context) {
	srcCtx, cancel := context.WithCancel(ctx)
	c.srcCancel, c.srcDone = cancel, make(chan error, 1)
	go func() {
		err := c.src.run(srcCtx)
		if errors.Is(err, kafkasink.ErrFenced) {
			c.log.Warn("This replica's Steam writer was fenced by another's; it writes no more until it leads again", "error", err)
			select {
			case c.fencedCh <- struct{}{}:
			default:
			}
		}
		c.srcDone <- err
	}()
}

// stopSource stops a source with writers of its own that the controller
// started, for shutdown; the replica keeps its role.
func (c *fleetController) stopSource() {
	if c.srcCancel != nil && c.srcDone != nil {
		c.srcCancel()
		<-c.srcDone
		c.srcDone = nil
	}
}

// demote stops this replica writing.
func (c *fleetController) demote() {
	if !c.leading {
		return
	}
	if c.src.ownWriter {
		c.stopSource()
		c.leading = false
		c.log.Info("Standing by")
		return
	}
	c.sw.set(c.window)
	c.relay.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.sink.Deactivate(ctx)
	c.leading = false
	c.log.Info("Standing by")
	c.startHandOff()
}

// held returns how many matches the relay holds: in memory, in flight
// and in the spool.
func (c *fleetController) held() int64 {
	st := c.relay.rl.Stats()
	return int64(st.Memory) + st.InFlight + st.SpoolRecords
}

// startHandOff, on a standby whose relay holds matches from a lead (its
// writer could not commit them before it lost the lead, or an earlier
// run spooled them), hands them on in the background. No other replica
// may have them: when Kafka was out of reach of every replica for longer
// than the standby window, the new leader's window holds only the
// window's last matches of the outage. It waits a session timeout, for
// the new leader to take over and publish its window, then leaves out
// what the topic holds and writes the rest through the sink's plain
// producer, until the relay holds nothing. Promotion ends it.
func (c *fleetController) startHandOff() {
	if c.handoff != nil || c.src.ownWriter || c.held() == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &handOff{cancel: cancel, done: make(chan struct{})}
	c.handoff = h
	go func() {
		defer close(h.done)
		c.handOn(ctx)
	}()
}

// handOn is the hand-off's goroutine. It owns the relay's runner until
// ctx ends; should ctx end while the relay hands on, it leaves it
// running, for endHandOff to stop or shutdown to drain.
func (c *fleetController) handOn(ctx context.Context) {
	if !backoff.Wait(ctx, c.cfg.Fleet.SessionTimeout) {
		return
	}
	held := c.held()
	if held == 0 {
		return
	}
	start := time.Now()
	c.log.Warn("Handing on the matches kept from this replica's lead, which no other replica may have: those the topic lacks go through a producer of this standby's own",
		"held", held)
	c.matchBacklog(ctx)
	if ctx.Err() != nil {
		return
	}
	c.sink.HandOff(true)
	c.relay.start()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for c.held() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	c.relay.stop()
	c.sink.HandOff(false)
	c.log.Info("Handed on the matches kept from the lead", "held", held, "took", time.Since(start).Round(time.Millisecond).String())
}

// endHandOff stops a hand-off under way and waits for it. For a
// promotion (drain false) the relay stops, and the sink writes through
// its transactional producer alone again; at shutdown (drain true) a
// relay handing on keeps running, for the shutdown to drain.
func (c *fleetController) endHandOff(drain bool) {
	h := c.handoff
	if h == nil {
		return
	}
	h.cancel()
	<-h.done
	c.handoff = nil
	if !drain {
		c.relay.stop()
		c.sink.HandOff(false)
	}
}
