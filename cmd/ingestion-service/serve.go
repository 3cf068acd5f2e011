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
	"github.com/dota-data/ingestion-service/internal/steamtxn"
)

// serve wires the service and runs it until ctx ends, then shuts down in
// order: stop reading the stream (closing it cleanly), deliver everything
// held to Kafka within ShutdownTimeout, keep in the spool what Kafka did not
// take, stop the HTTP server.
func serve(ctx context.Context, cfg config.Config, stdout io.Writer) error {
	log := logging.New(stdout, cfg.Log.Format, cfg.Log.Level, cfg.ServiceName)
	log.Info("Starting ingestion service", "version", buildVersion(), "config", cfg, "memory_limit_bytes", debug.SetMemoryLimit(-1), "gomaxprocs", runtime.GOMAXPROCS(0))
	log.Info("Source chosen", "source", cfg.Source, "why", cfg.SourceReason)
	if slackNote != "" {
		log.Warn("Running with the inherited timer slack", "timer_slack", cfg.TimerSlack.String(), "error", slackNote)
	}

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
	sink, err := kafkasink.New(cfg.Kafka, log.With("component", "kafka"), reg)
	if err != nil {
		return err
	}
	// The Steam scans write their pages in transactions with their
	// cursors: they are replayed from the last committed cursor, so they
	// need no spool (the configuration put the relay, which they do not
	// use, in memory mode).
	var (
		steam *steamParts
		pages *steamtxn.Writer // the forward scan's
	)
	if cfg.Source == config.SourceSteamSequence {
		if steam, err = newSteamParts(cfg, log, reg); err != nil {
			return errors.Join(err, sink.Close(context.Background()))
		}
		pages = steam.forward
		warnSpoolUnused(cfg, log)
	}
	rl, err := newRelay(cfg, sink, log.With("component", "relay"), reg)
	if err != nil {
		return errors.Join(err, sink.Close(context.Background()))
	}
	// From here on, rl.Close keeps (or reports) what Kafka did not take.
	abort := func(err error) error {
		sinkErr := sink.Close(context.Background())
		_, relayErr := rl.Close()
		return errors.Join(err, sinkErr, relayErr)
	}
	// Alone, the pipeline publishes to the relay. In a fleet it publishes
	// to the standby window until this replica leads.
	var (
		pub     pipeline.Publisher = rl
		sw      *publisherSwitch
		window  *fleet.Window
		elector *fleet.Elector
	)
	if cfg.Fleet.Enabled() {
		if window, err = fleet.NewWindow(cfg.Fleet.StandbyWindow, reg); err != nil {
			return abort(err)
		}
		sw = &publisherSwitch{}
		sw.set(window)
		pub = sw
		opts, err := cfg.Kafka.ConnOpts()
		if err != nil {
			return abort(err)
		}
		elector, err = fleet.New(fleet.Config{
			Group:          cfg.Fleet.Group,
			Topic:          cfg.Fleet.Topic,
			SessionTimeout: cfg.Fleet.SessionTimeout,
			Units:          fleetUnits(cfg),
		}, opts, log.With("component", "fleet"), reg)
		if err != nil {
			return abort(err)
		}
	}
	if pages != nil {
		pub = pages // on every replica: only the leader scans
	}
	popts := pipeline.Options{Dedup: dedup.New(cfg.Dedup)}
	if steam != nil {
		// The Steam scan reads each seq once per committed page: a window
		// of IDs seen would take a page read again after its transaction
		// failed for duplicates, and drop it.
		popts.Dedup = nil
	}
	pipe, err := pipeline.New(pub, log.With("component", "pipeline"), reg, popts)
	if err != nil {
		return abort(err)
	}
	if pages != nil {
		pages.SetFront(pipe)
		pages.OnCommit(sink.CountCommitted)
	}
	bf, err := newBackfill(cfg, steam, pipe, sink.CountCommitted, elector, log.With("component", "backfill"), reg)
	if err != nil {
		return abort(err)
	}
	src, err := newSource(cfg, pipe, sink, steam, bf, log, reg)
	if err != nil {
		return abort(err)
	}
	checks := []httpapi.Check{
		{Name: src.check, Status: src.status},
		{Name: "kafka", Status: sink.Status},
		{Name: "buffer", Status: rl.Status},
	}
	if bf != nil && src.check != "backfill" {
		checks = append(checks, httpapi.Check{Name: "backfill", Status: bf.Status})
	}
	if elector != nil {
		checks = append(checks, httpapi.Check{Name: "fleet", Status: elector.Status})
	}

	// runCtx ends on a signal or on a fatal error of an HTTP server.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	httpOpts := httpapi.Options{
		ServiceName: cfg.ServiceName,
		Version:     buildVersion(),
		Checks:      checks,
		Metrics:     promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Profiling:   cfg.API.Profiling,
		CORSOrigins: cfg.API.CORSOrigins,
		Logger:      log.With("component", "http"),
	}
	httpLog := log.With("component", "http")
	api, err := listen("API_HOST:API_PORT", cfg.API.Addr(), httpapi.NewHandler(httpOpts),
		httpapi.Limits{MaxConns: cfg.API.MaxConns, Listener: "api"}, httpLog, reg, stopRun)
	if err != nil {
		return abort(err)
	}
	log.Info("HTTP API listening", "addr", api.ln.Addr().String())
	var probes *listener
	if cfg.API.ProbePort != 0 {
		// The kubelet and the scraper make a handful of connections.
		probes, err = listen("API_HOST:API_PROBE_PORT", cfg.API.ProbeAddr(), httpapi.NewProbeHandler(httpOpts),
			httpapi.Limits{MaxConns: 64, Listener: "probe"}, httpLog, reg, stopRun)
		if err != nil {
			return abort(errors.Join(err, api.shutdown(log)))
		}
		log.Info("HTTP probes listening", "addr", probes.ln.Addr().String(), "serves", "/api/v1/health /api/v1/ready /metrics")
	}
	// Background work that outlives the stream until the drain is over.
	bgCtx, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	bgDone := make(chan struct{}, 2)
	runner := &relayRunner{rl: rl}
	defer runner.stop()
	go func() { _ = sink.Run(bgCtx); bgDone <- struct{}{} }()
	go func() {
		if cfg.Log.SummaryInterval > 0 {
			_ = pipe.LogSummaries(bgCtx, cfg.Log.SummaryInterval, delivery{sink, rl})
		}
		bgDone <- struct{}{}
	}()
	// The source runs here unless, in a fleet, only the leader runs it. A
	// source that gives up (it returns an error) stops the service.
	srcDone := make(chan error, 1)
	if elector == nil || !src.ownWriter {
		go func() {
			err := src.run(runCtx)
			if err != nil && runCtx.Err() == nil {
				log.Error("The source stopped; shutting down", "error", err)
				stopRun()
			}
			srcDone <- err
		}()
	} else {
		srcDone <- nil
	}
	// The backfill's shards: those the fleet gives this replica, or all.
	stopBF := startBackfill(runCtx, bf, elector, cfg.Backfill.Shards, log, stopRun)
	// In a fleet: the election, and the controller that follows it.
	electorCtx, stopElector := context.WithCancel(context.Background())
	defer stopElector()
	electorDone := make(chan struct{})
	ctlCtx, stopCtl := context.WithCancel(context.Background())
	defer stopCtl()
	ctlDone := make(chan struct{})
	var ctl *fleetController
	if elector == nil {
		runner.start()
		close(electorDone)
		close(ctlDone)
	} else {
		ctl = &fleetController{
			cfg: cfg, log: log.With("component", "fleet"), elector: elector, sink: sink,
			relay: runner, sw: sw, window: window, src: src, fencedCh: make(chan struct{}, 1),
		}
		go func() { _ = elector.Run(electorCtx); close(electorDone) }()
		go func() { ctl.run(ctlCtx); close(ctlDone) }()
	}
	log.Info("Ingestion service started", "source", cfg.Source, "from", redact.URL(src.where), "topic", cfg.Kafka.Topic,
		"fleet_group", cfg.Fleet.Group)

	<-runCtx.Done()
	log.Info("Shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// A fleet writer's commit that waits on Kafka past the timeout holds
	// every record the relay hands it: it gives up then.
	defer context.AfterFunc(shutdownCtx, sink.Abandon)()

	// 0. In a fleet, keep the current role from here on. The Steam scans
	// end their pages under way (committed or not) and stop.
	stopCtl()
	<-ctlDone
	if ctl != nil {
		ctl.stopSource()
	}
	stopBF()
	// 1. Stop reading. The source hands on every frame it already read.
	var srcErr error
	srcStopped := false
	select {
	case srcErr = <-srcDone:
		srcStopped = true
	case <-shutdownCtx.Done():
		log.Warn("The stream did not stop within the shutdown timeout")
	}
	// 2. Deliver everything held, within what is left of the timeout.
	rl.CloseInput()
	if !runner.wait(shutdownCtx) {
		log.Warn("Kafka did not take every held match within the shutdown timeout")
	}
	rl.Abort() // releases a reader still blocked on a full relay
	if !srcStopped {
		srcErr = <-srcDone
	}
	// 3. Close the producer (what it still holds fails), then the relay,
	// which keeps every unacknowledged match in the spool, or reports it
	// lost in memory mode.
	// The sink's error only counts what it did not deliver, and the relay
	// accounts for each of those: kept in the spool, or lost.
	_ = sink.Close(shutdownCtx)
	kept, relayErr := rl.Close()
	// 4. Leave the fleet (a standby takes over at once), stop the
	// background work and the HTTP server.
	stopElector()
	<-electorDone
	stopBG()
	<-bgDone
	<-bgDone
	httpErr := errors.Join(api.shutdown(log), probes.shutdown(log))

	// Every accepted match is in one of three places: published (Kafka
	// acknowledged it, or committed it in a fleet), spooled (kept for the
	// next start, with what earlier runs left), or lost (memory mode).
	c := pipe.Counts()
	log.Info("Shutdown complete",
		"received", c.Received, "accepted", c.Accepted, "rejected", c.Rejected, "duplicates", c.Duplicates, "dropped", c.Dropped,
		"published", sink.Published(), "spooled", kept.Spooled, "spooled_at_shutdown", kept.WrittenAtShutdown, "lost", kept.Lost,
		"failed_attempts", sink.Failed())
	err = errors.Join(httpErr, srcErr, relayErr)
	if err != nil {
		log.Error("Shutdown with errors", "error", err)
	}
	return err
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
	if rcfg.Mode == relay.Memory {
		return relay.New(rcfg, sink, nil, log, m)
	}
	opts := cfg.Spool
	opts.Logger = log.With("spool_dir", opts.Dir)
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

// warnSpoolUnused says which spool settings the Steam scanner ignores, and
// whether an earlier version left matches in the spool directory.
func warnSpoolUnused(cfg config.Config, log *slog.Logger) {
	if len(cfg.Ignored) > 0 {
		log.Warn("Ignoring the spool settings: SOURCE=steam-sequence writes Kafka transactions and replays Steam from its last committed cursor, so it needs no spool",
			"ignored", cfg.Ignored)
	}
	if entries, err := os.ReadDir(cfg.Spool.Dir); err == nil && len(entries) > 0 {
		log.Warn("The spool directory holds files from an earlier version; they are not read: the scan resumes from what Kafka holds, and its rescan reads again the seqs above its position",
			"spool_dir", cfg.Spool.Dir, "files", len(entries))
	}
}
