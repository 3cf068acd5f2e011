package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/config"
	"github.com/dota-data/ingestion-service/internal/dedup"
	"github.com/dota-data/ingestion-service/internal/fleet"
	"github.com/dota-data/ingestion-service/internal/httpapi"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/logging"
	"github.com/dota-data/ingestion-service/internal/pipeline"
	"github.com/dota-data/ingestion-service/internal/redact"
	"github.com/dota-data/ingestion-service/internal/relay"
	"github.com/dota-data/ingestion-service/internal/spool"
)

// serve builds the service from cfg and runs it until ctx ends, then
// shuts it down in order (app.shutdown). slackErr says why the timer
// slack could not be set, if it could not: it happened before the logger
// existed.
func serve(ctx context.Context, cfg config.Config, stdout io.Writer, slackErr error) error {
	log := logging.New(stdout, cfg.Log.Format, cfg.Log.Level, cfg.ServiceName)
	logStart(log, cfg, slackErr)
	a, err := newApp(cfg, log)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

// logStart logs the configuration in force and what it leaves unused.
func logStart(log *slog.Logger, cfg config.Config, slackErr error) {
	log.Info("Starting ingestion service", "version", buildVersion(), "config", cfg, "memory_limit_bytes", debug.SetMemoryLimit(-1), "gomaxprocs", runtime.GOMAXPROCS(0))
	log.Info("Source chosen", "source", cfg.Source, "why", cfg.SourceReason)
	if len(cfg.Ignored) > 0 {
		log.Warn("Ignoring settings the source does not read", "source", cfg.Source, "ignored", cfg.Ignored)
	}
	if slackErr != nil {
		log.Warn("Running with the inherited timer slack", "timer_slack", cfg.TimerSlack.String(), "error", slackErr.Error())
	}
}

// app is the service's parts, built by newApp and run by run.
type app struct {
	cfg  config.Config
	log  *slog.Logger
	reg  *prometheus.Registry
	sink *kafkasink.Sink
	rl   *relay.Relay
	pipe *pipeline.Pipeline
	src  source
	bf   *backfill.Runner // nil without a backfill
	// In a fleet: the election, the standby window, and the switch that
	// sends the pipeline's matches to one or the other relay.
	elector *fleet.Elector
	window  *fleet.Window
	sw      *publisherSwitch
}

// newApp builds every part of the service; nothing runs yet. On an
// error it closes what it built.
func newApp(cfg config.Config, log *slog.Logger) (*app, error) {
	s := &app{cfg: cfg, log: log, reg: newRegistry()}
	if err := s.build(); err != nil {
		return nil, s.abort(err)
	}
	return s, nil
}

// build builds the parts in the order they depend on each other.
func (s *app) build() (err error) {
	cfg, log := s.cfg, s.log
	if s.sink, err = kafkasink.New(sinkConfig(cfg), log.With("component", "kafka"), s.reg); err != nil {
		return err
	}
	// The Steam scans write their pages in transactions with their
	// cursors, through writers of their own.
	var steam *steamParts
	if cfg.Source == config.SourceSteamSequence {
		if steam, err = newSteamParts(cfg, log, s.reg); err != nil {
			return err
		}
		warnOldSpool(cfg, log)
	}
	if s.rl, err = newRelay(cfg, s.sink, log.With("component", "relay"), s.reg); err != nil {
		return err
	}
	pub, err := s.newFleet()
	if err != nil {
		return err
	}
	if s.pipe, err = newPipeline(cfg, pub, steam, log.With("component", "pipeline"), s.reg); err != nil {
		return err
	}
	if steam != nil && steam.forward != nil {
		steam.forward.SetFront(s.pipe)
		steam.forward.OnCommit(s.sink.CountCommitted)
	}
	if s.bf, err = newBackfill(cfg, steam, s.pipe, s.sink.CountCommitted, s.elector, log.With("component", "backfill"), s.reg); err != nil {
		return err
	}
	if s.src, err = newSource(cfg, s.pipe, s.sink, steam, s.bf, log, s.reg); err != nil {
		return err
	}
	return nil
}

// abort closes what newApp or run built, once a later step failed.
func (s *app) abort(err error) error {
	errs := []error{err}
	if s.sink != nil {
		errs = append(errs, s.sink.Close(context.Background()))
	}
	if s.rl != nil {
		_, relayErr := s.rl.Close()
		errs = append(errs, relayErr)
	}
	return errors.Join(errs...)
}

// newRegistry is the service's metrics registry, with the Go runtime's,
// the process's and the build's.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ingestion_build_info",
		Help: "1, labelled with the version of the running binary and the Go version that built it.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(buildVersion(), runtime.Version()).Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
	)
	return reg
}

// newFleet builds, in a fleet, the election and the standby window, and
// returns where the pipeline publishes: alone, to the relay; in a fleet,
// to the standby window until this replica leads.
func (s *app) newFleet() (pipeline.Publisher, error) {
	if !s.cfg.Fleet.Enabled() {
		return s.rl, nil
	}
	var err error
	if s.window, err = fleet.NewWindow(s.cfg.Fleet.StandbyWindow, s.reg); err != nil {
		return nil, err
	}
	s.sw = &publisherSwitch{}
	s.sw.set(s.window)
	opts, err := s.cfg.Kafka.ConnOpts()
	if err != nil {
		return nil, err
	}
	fc := s.cfg.Fleet
	fc.Units = fleetUnits(s.cfg)
	if s.elector, err = fleet.New(fc, opts, s.log.With("component", "fleet"), s.reg); err != nil {
		return nil, err
	}
	return s.sw, nil
}

// newPipeline builds the pipeline in front of pub. The Steam forward scan
// publishes through its page writer instead, on every replica (only the
// leader scans), and without the de-duplication window: it reads each seq
// once per committed page, and the window would take a page read again
// after its transaction failed for duplicates, and drop it.
func newPipeline(cfg config.Config, pub pipeline.Publisher, steam *steamParts, log *slog.Logger, reg prometheus.Registerer) (*pipeline.Pipeline, error) {
	opts := pipeline.Options{Dedup: dedup.New(cfg.Dedup)}
	if steam != nil {
		opts.Dedup = nil
		if steam.forward != nil {
			pub = steam.forward
		}
	}
	return pipeline.New(pub, log, reg, opts)
}

// checks are the readiness checks of the service's parts.
func (s *app) checks() []httpapi.Check {
	checks := []httpapi.Check{
		{Name: s.src.check, Status: s.src.status},
		{Name: "kafka", Status: s.sink.Status},
		{Name: "buffer", Status: s.rl.Status},
	}
	if s.bf != nil && s.src.check != "backfill" {
		checks = append(checks, httpapi.Check{Name: "backfill", Status: s.bf.Status})
	}
	if s.elector != nil {
		checks = append(checks, httpapi.Check{Name: "fleet", Status: s.elector.Status})
	}
	return checks
}

// listen opens the API's listener, and the probes' when API_PROBE_PORT
// is set; failed is called if one of them fails later.
func (s *app) listen(failed func()) (api, probes *listener, err error) {
	opts := httpapi.Options{
		ServiceName: s.cfg.ServiceName,
		Version:     buildVersion(),
		Checks:      s.checks(),
		Metrics:     promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}),
		Profiling:   s.cfg.API.Profiling,
		CORSOrigins: s.cfg.API.CORSOrigins,
		Logger:      s.log.With("component", "http"),
	}
	log := s.log.With("component", "http")
	api, err = listen("API_HOST:API_PORT", s.cfg.API.Addr(), httpapi.NewHandler(opts),
		httpapi.Limits{MaxConns: s.cfg.API.MaxConns, Listener: "api"}, log, s.reg, failed)
	if err != nil {
		return nil, nil, err
	}
	s.log.Info("HTTP API listening", "addr", api.ln.Addr().String())
	if s.cfg.API.ProbePort == 0 {
		return api, nil, nil
	}
	// The kubelet and the scraper make a handful of connections.
	probes, err = listen("API_HOST:API_PROBE_PORT", s.cfg.API.ProbeAddr(), httpapi.NewProbeHandler(opts),
		httpapi.Limits{MaxConns: 64, Listener: "probe"}, log, s.reg, failed)
	if err != nil {
		return nil, nil, errors.Join(err, api.shutdown(s.log))
	}
	s.log.Info("HTTP probes listening", "addr", probes.ln.Addr().String(), "serves", "/api/v1/health /api/v1/ready /metrics")
	return api, probes, nil
}

// running is the service's goroutines, each a part with a stop of its
// own, all in one errgroup: the shutdown stops them in its order, and
// Wait returns the source's error.
type running struct {
	g                   errgroup.Group
	background          *part // the sink's loop and the progress lines: until the drain is over
	source, backfill    *part
	elector, controller *part // in a fleet
	api, probes         *listener
	runner              *relayRunner
	ctl                 *fleetController
}

// part is one goroutine of the service.
type part struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs fn in g under a context of its own, derived from parent.
func start(g *errgroup.Group, parent context.Context, fn func(ctx context.Context) error) *part {
	ctx, cancel := context.WithCancel(parent)
	p := &part{cancel: cancel, done: make(chan struct{})}
	g.Go(func() error {
		defer close(p.done)
		return fn(ctx)
	})
	return p
}

// stop ends the part and waits for it; a nil part is stopped.
func (p *part) stop() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
}

// doneCh is closed once the part ended; a nil part has.
func (p *part) doneCh() <-chan struct{} {
	if p == nil {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return p.done
}

// run starts the service's parts and runs until ctx ends or a part fails
// for good (the source, the backfill, an HTTP server), then shuts down.
func (s *app) run(ctx context.Context) error {
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	r := &running{runner: &relayRunner{rl: s.rl}}
	var err error
	if r.api, r.probes, err = s.listen(stopRun); err != nil {
		return s.abort(err)
	}
	defer r.runner.stop()
	r.background = start(&r.g, context.Background(), func(ctx context.Context) error {
		var bg errgroup.Group
		bg.Go(func() error { _ = s.sink.Run(ctx); return nil })
		if s.cfg.Log.SummaryInterval > 0 {
			bg.Go(func() error {
				_ = s.pipe.LogSummaries(ctx, s.cfg.Log.SummaryInterval, delivery{s.sink, s.rl})
				return nil
			})
		}
		return bg.Wait()
	})
	// The source runs here unless, in a fleet, only the leader runs it. A
	// source that gives up stops the service.
	if s.elector == nil || !s.src.ownWriter {
		r.source = start(&r.g, runCtx, func(ctx context.Context) error {
			err := s.src.run(ctx)
			if err != nil && runCtx.Err() == nil {
				s.log.Error("The source stopped; shutting down", "error", err)
				stopRun()
			}
			return err
		})
	}
	// The backfill's shards: those the fleet gives this replica, or all.
	if s.bf != nil {
		r.backfill = start(&r.g, runCtx, func(ctx context.Context) error {
			if err := runBackfill(ctx, s.bf, s.elector, s.cfg.Backfill.Shards); err != nil {
				s.log.Error("The backfill stopped; shutting down", "error", err)
				stopRun()
			}
			return nil
		})
	}
	// Alone, the relay forwards at once; in a fleet, the election and the
	// controller that follows it decide.
	if s.elector == nil {
		r.runner.start()
	} else {
		r.ctl = &fleetController{
			cfg: s.cfg, log: s.log.With("component", "fleet"), elector: s.elector, sink: s.sink,
			relay: r.runner, sw: s.sw, window: s.window, src: s.src, fencedCh: make(chan struct{}, 1),
		}
		r.elector = start(&r.g, context.Background(), func(ctx context.Context) error { _ = s.elector.Run(ctx); return nil })
		r.controller = start(&r.g, context.Background(), func(ctx context.Context) error { r.ctl.run(ctx); return nil })
	}
	s.log.Info("Ingestion service started", "source", s.cfg.Source, "from", redact.URL(s.src.where), "topic", s.cfg.Kafka.Topic,
		"fleet_group", s.cfg.Fleet.Group)

	<-runCtx.Done()
	return s.shutdown(r)
}

// shutdown stops the service in order: stop reading the source (closing
// it cleanly), deliver everything held to Kafka within ShutdownTimeout,
// keep in the spool what Kafka did not take, leave the fleet, stop the
// HTTP server. The last line says where every accepted match went.
func (s *app) shutdown(r *running) error {
	s.log.Info("Shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// A fleet writer's commit that waits on Kafka past the timeout holds
	// every record the relay hands it: it gives up then.
	defer context.AfterFunc(shutdownCtx, s.sink.Abandon)()

	// 0. In a fleet, keep the current role from here on. The Steam scans
	// end their pages under way (committed or not) and stop.
	r.controller.stop()
	if r.ctl != nil {
		r.ctl.stopSource()
	}
	r.backfill.stop()
	// 1. Stop reading. The source hands on every frame it already read.
	srcStopped := true
	select {
	case <-r.source.doneCh():
	case <-shutdownCtx.Done():
		srcStopped = false
		s.log.Warn("The stream did not stop within the shutdown timeout")
	}
	// 2. Deliver everything held, within what is left of the timeout.
	s.rl.CloseInput()
	if !r.runner.wait(shutdownCtx) {
		s.log.Warn("Kafka did not take every held match within the shutdown timeout")
	}
	s.rl.Abort() // releases a reader still blocked on a full relay
	if !srcStopped {
		<-r.source.doneCh()
	}
	// 3. Close the producer (what it still holds fails), then the relay,
	// which keeps every unacknowledged match in the spool, or reports it
	// lost in memory mode. The sink's error only counts what it did not
	// deliver, and the relay accounts for each of those: kept in the
	// spool, or lost.
	_ = s.sink.Close(shutdownCtx)
	kept, relayErr := s.rl.Close()
	// 4. Leave the fleet (a standby takes over at once), stop the
	// background work and the HTTP server.
	r.elector.stop()
	r.background.stop()
	httpErr := errors.Join(r.api.shutdown(s.log), r.probes.shutdown(s.log))
	srcErr := r.g.Wait() // every part has ended: the source's error

	// Every accepted match is in one of three places: published (Kafka
	// acknowledged it, or committed it in a fleet), spooled (kept for the
	// next start, with what earlier runs left), or lost (memory mode).
	c := s.pipe.Counts()
	s.log.Info("Shutdown complete",
		"received", c.Received, "accepted", c.Accepted, "rejected", c.Rejected, "duplicates", c.Duplicates, "dropped", c.Dropped,
		"published", s.sink.Published(), "spooled", kept.Spooled, "spooled_at_shutdown", kept.WrittenAtShutdown, "lost", kept.Lost,
		"failed_attempts", s.sink.Failed())
	err := errors.Join(httpErr, srcErr, relayErr)
	if err != nil {
		s.log.Error("Shutdown with errors", "error", err)
	}
	return err
}

// sinkConfig is the Kafka sink's configuration. In a fleet, every
// replica's writer has the same transactional ID (one per fleet and
// topic), so that each fences the others'.
func sinkConfig(cfg config.Config) kafkasink.Config {
	k := cfg.Kafka
	if cfg.Fleet.Enabled() {
		k.TransactionalID = kafkasink.TransactionalID(cfg.Fleet.Group, k.Topic)
	}
	return k
}

// newRelay opens the spool (unless in memory mode) and builds the relay in
// front of the Kafka sink.
func newRelay(cfg config.Config, sink *kafkasink.Sink, log *slog.Logger, reg prometheus.Registerer) (*relay.Relay, error) {
	m, err := relay.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	rcfg := cfg.Relay
	rcfg.Classify = kafkasink.Classify
	if cfg.Source == config.SourceSteamSequence {
		// The scans write their pages in Kafka transactions and replay
		// from their last committed cursor: nothing reaches the relay,
		// and nothing needs the disk.
		rcfg.Mode = relay.Memory
	}
	if rcfg.Mode == relay.Memory {
		return relay.New(rcfg, sink, nil, log, m)
	}
	opts := cfg.Spool
	opts.Logger = log.With("spool_dir", opts.Dir)
	if rcfg.Mode == relay.Overflow {
		// Spilled matches are as mortal as those in memory on kill -9 in
		// this mode, so the spool may gather them into 64 KiB writes;
		// disk mode writes each match before producing it.
		opts.WriteBuffer = 64 << 10
	}
	sp, err := spool.Open(opts)
	if err != nil {
		if errors.Is(err, spool.ErrLocked) {
			return nil, fmt.Errorf("open the spool in SPOOL_DIR %s: %w", opts.Dir, err)
		}
		// A directory the service cannot use is a setting to change:
		// exit status 2, as for any invalid setting.
		return nil, config.Errors{{Var: "SPOOL_DIR", Value: opts.Dir, Reason: "cannot open the spool there: " + err.Error()}}
	}
	rl, err := relay.New(rcfg, sink, sp, log, m)
	if err != nil {
		return nil, errors.Join(err, sp.Close())
	}
	return rl, nil
}

// delivery reports the Kafka sink's counts and the relay's backlog for the
// progress summaries.
type delivery struct {
	*kafkasink.Sink
	relay *relay.Relay
}

// Spooled returns the matches waiting in the spool.
func (d delivery) Spooled() int64 { return d.relay.Stats().SpoolRecords }

// warnOldSpool says whether an earlier version left matches in the
// spool directory, which the Steam scans do not read.
func warnOldSpool(cfg config.Config, log *slog.Logger) {
	if entries, err := os.ReadDir(cfg.Spool.Dir); err == nil && len(entries) > 0 {
		log.Warn("The spool directory holds files from an earlier version; they are not read: the scan resumes from what Kafka holds, and its rescan reads again the seqs above its position",
			"spool_dir", cfg.Spool.Dir, "files", len(entries))
	}
}
