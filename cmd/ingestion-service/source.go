package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/config"
	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/odlogs"
	"github.com/dota-data/ingestion-service/internal/pipeline"
	"github.com/dota-data/ingestion-service/internal/relay"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/steamtxn"
	"github.com/dota-data/ingestion-service/internal/wsstream"
)

// source is the adapter SOURCE selects, as serve runs it: run reads until
// ctx ends and hands every match to the pipeline; status is its readiness
// check, reported under check.
type source struct {
	check  string
	status func() health.Status
	run    func(ctx context.Context) error
	// where says where it reads from, for the start-up log line.
	where string
	// leaderOnly: in a fleet, only the leader runs it (the Steam scanner);
	// the others (streams) run on every replica, standbys feeding their
	// window.
	leaderOnly bool
}

// newSource builds the source cfg.Source names, feeding pipe. The Steam
// scanner also needs the sink and the relay, to find where it stopped.
func newSource(cfg config.Config, pipe *pipeline.Pipeline, sink *kafkasink.Sink, rl *relay.Relay, pages *steamtxn.Writer, log *slog.Logger, reg prometheus.Registerer) (source, error) {
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ingestion_source_info",
		Help: "1 for the active source of matches, by name.",
	}, []string{"source"})
	if err := reg.Register(info); err != nil {
		return source{}, fmt.Errorf("register source metrics: %w", err)
	}
	info.WithLabelValues(cfg.Source).Set(1)

	switch cfg.Source {
	case config.SourceOpenDotaLogs:
		src, err := odlogs.New(cfg.Logs, log.With("component", "opendota_logs"), reg)
		if err != nil {
			return source{}, err
		}
		return source{
			check:  "opendota_logs",
			status: src.Status,
			run:    func(ctx context.Context) error { return src.Run(ctx, pipe) },
			where:  cfg.Logs.URL,
		}, nil
	case config.SourceSteamSequence:
		scanLog := log.With("component", "steam_sequence")
		sc, err := steamseq.New(cfg.Steam, scanLog, reg)
		if err != nil {
			return source{}, err
		}
		return source{
			check:  "steam_sequence",
			status: sc.Status,
			run: func(ctx context.Context) error {
				if pages != nil {
					return runPages(ctx, cfg, sc, pages, sink, rl, scanLog)
				}
				return runScanner(ctx, sc, resumeFrom(sink, rl, sc, !cfg.Fleet.Enabled(), scanLog), pipe, scanLog)
			},
			where:      cfg.Steam.BaseURL,
			leaderOnly: true,
		}, nil
	default:
		src, err := wsstream.New(cfg.Stream, log.With("component", "stream"), reg)
		if err != nil {
			return source{}, err
		}
		return source{
			check:  "stream",
			status: src.Status,
			run:    func(ctx context.Context) error { return src.Run(ctx, pipe) },
			where:  cfg.Stream.URL,
		}, nil
	}
}

// runScanner runs the scanner until ctx ends. Should the pipeline refuse
// a match (the service is closing), the scanner stops with its position
// just before it, and starts again from there a second later. It returns
// the scanner's error when it cannot know where to start
// (steamseq.ErrForeignTopic).
func runScanner(ctx context.Context, sc *steamseq.Scanner, resume steamseq.ResumeFunc, h steamseq.Handler, log *slog.Logger) error {
	for {
		err := sc.Run(ctx, resume, h)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, steamseq.ErrForeignTopic) {
			return err
		}
		log.Warn("Steam scanner stopped; starting again after its position", "error", err, "position", sc.Position())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// resumeFrom finds where the scanner stopped. Within one process that is
// its own state (when own is true: no other replica can have moved on).
// Otherwise the topic tells: the highest match_seq_num and rescan
// position in its newest records, and the seqs delivered above the rescan
// position, read once the spool's backlog from an earlier run has reached
// Kafka: what the spool held is then in the topic, so the scanner neither
// skips nor repeats it.
func resumeFrom(sink *kafkasink.Sink, rl *relay.Relay, sc *steamseq.Scanner, own bool, log *slog.Logger) steamseq.ResumeFunc {
	return func(ctx context.Context, behind, ceiling int64) (steamseq.Resume, error) {
		if snap := sc.Snapshot(); own && snap.Found {
			return snap, nil
		}
		if err := waitRelayEmpty(ctx, rl, log); err != nil {
			return steamseq.Resume{}, err
		}
		readCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		st, err := sink.ScanState(readCtx, kafkasink.Plausible{Ceiling: ceiling, MaxGap: steamseq.MaxSeqJump})
		if err != nil {
			return steamseq.Resume{}, fmt.Errorf("read the highest match_seq_num in Kafka: %w", err)
		}
		if st.Implausible > 0 {
			log.Error("The topic holds records with an implausible match_seq_num, written by a version that did not bound them; resuming as if they were not there",
				"records", st.Implausible, "highest", st.HighestImplausible, "max_jump", steamseq.MaxSeqJump)
		}
		if st.Seq == 0 {
			return steamseq.Resume{Foreign: st.Records}, nil
		}
		res := steamseq.Resume{Found: true, Seq: st.Seq, Rescan: st.Rescan}
		if res.Rescan == 0 || res.Rescan > res.Seq {
			// Written by a version without the rescan: read the last
			// behind seqs again.
			res.Rescan = max(res.Seq-behind, 0)
		}
		if behind > 0 {
			if res.Delivered, err = sink.SeqsAbove(readCtx, res.Rescan, res.Seq); err != nil {
				return steamseq.Resume{}, fmt.Errorf("read the match_seq_nums delivered above %d in Kafka: %w", res.Rescan, err)
			}
		}
		log.Info("Resuming after the highest match_seq_num in Kafka", "match_seq_num", res.Seq,
			"rescan_after", res.Rescan, "delivered_above_rescan", len(res.Delivered))
		return res, nil
	}
}

// waitRelayEmpty returns once the relay holds nothing: no match in memory,
// in flight or in the spool.
func waitRelayEmpty(ctx context.Context, rl *relay.Relay, log *slog.Logger) error {
	logged := false
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		st := rl.Stats()
		if st.Memory == 0 && st.InFlight == 0 && st.SpoolRecords == 0 {
			return nil
		}
		if !logged {
			logged = true
			log.Info("Waiting for the spooled backlog to reach Kafka before reading the resume position",
				"spooled", st.SpoolRecords, "in_flight", st.InFlight)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// runPages runs the scanner writing each page, with the cursor after it,
// in one Kafka transaction, until ctx ends. Each run starts a
// transactional writer (which fences any other scan of the topic) and
// resumes from the last committed cursor; a page whose transaction
// failed makes the scan start again from there, so it is read from Steam
// again rather than kept anywhere. While Kafka is down the writer cannot
// start, and Steam is not called.
func runPages(ctx context.Context, cfg config.Config, sc *steamseq.Scanner, pages *steamtxn.Writer, sink *kafkasink.Sink, rl *relay.Relay, log *slog.Logger) error {
	kcfg := cfg.Kafka
	if cfg.SteamTopics.Matches != "" {
		// Match objects are about 14 KB: batches of most of a page
		// compress them to a sixth.
		kcfg.BatchMaxBytes = max(kcfg.BatchMaxBytes, 1<<20)
	}
	pageCfg := kafkasink.PageConfig{
		Kafka:           kcfg,
		TransactionalID: "ingestion-service.steam." + cfg.Kafka.Topic,
		CursorTopic:     cfg.SteamTopics.Cursor,
		CursorKey:       cfg.Kafka.Topic,
	}
	fallback := resumeFrom(sink, rl, sc, false, log)
	for attempt := 0; ; attempt++ {
		pw, cursor, err := kafkasink.NewPageWriter(ctx, pageCfg, log.With("component", "kafka_pages"))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("Cannot start the transactional writer; Steam is not called until it starts", "error", err, "attempt", attempt+1)
			if !backoff.Wait(ctx, time.Duration(min(attempt+1, 10))*time.Second) {
				return nil
			}
			continue
		}
		attempt = 0
		pages.Use(pw)
		resume := func(ctx context.Context, behind, ceiling int64) (steamseq.Resume, error) {
			if cursor == nil {
				return fallback(ctx, behind, ceiling) // a topic an earlier version wrote, or none
			}
			c, err := steamtxn.DecodeCursor(cursor)
			if err != nil {
				return steamseq.Resume{}, err
			}
			res := steamseq.Resume{Found: true, Seq: c.Primary, Rescan: c.Rescan}
			if behind > 0 {
				readCtx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				if res.Delivered, err = sink.SeqsAbove(readCtx, c.Rescan, c.Primary); err != nil {
					return steamseq.Resume{}, fmt.Errorf("read the match_seq_nums delivered above %d in Kafka: %w", c.Rescan, err)
				}
			}
			log.Info("Resuming from the last committed cursor", "primary", c.Primary, "rescan", c.Rescan, "cursor_topic", cfg.SteamTopics.Cursor)
			return res, nil
		}
		err = sc.Run(ctx, resume, pages)
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		pw.Close(closeCtx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, steamseq.ErrForeignTopic) {
			return err
		}
		log.Warn("Steam scan stopped; resuming from the last committed cursor", "error", err)
		if !backoff.Wait(ctx, time.Second) {
			return nil
		}
	}
}
