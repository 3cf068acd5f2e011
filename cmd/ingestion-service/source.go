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
	// ownWriter: it writes to Kafka with a transactional writer of its
	// own, which fences the old leader's; the sink and the relay stay
	// idle.
	ownWriter bool
}

// newSource builds the source cfg.Source names, feeding pipe. The Steam
// scanner writes through pages instead, and reads where it stopped with
// the sink.
func newSource(cfg config.Config, pipe *pipeline.Pipeline, sink *kafkasink.Sink, pages *steamtxn.Writer, log *slog.Logger, reg prometheus.Registerer) (source, error) {
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
				return runPages(ctx, cfg, sc, pages, sink, scanLog)
			},
			where:      cfg.Steam.BaseURL,
			leaderOnly: true,
			ownWriter:  true,
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

// resumeFrom finds where the scanner stopped in a topic that has no
// committed cursor (written by a version before the cursor topic): the
// highest match_seq_num and rescan position in its newest records, and
// the seqs delivered above the rescan position.
func resumeFrom(sink *kafkasink.Sink, log *slog.Logger) steamseq.ResumeFunc {
	return func(ctx context.Context, behind, ceiling int64) (steamseq.Resume, error) {
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

// runPages runs the scanner writing each page, with the cursor after it,
// in one Kafka transaction, until ctx ends. Each run starts a
// transactional writer (which fences any other scan of the topic) and
// resumes from the last committed cursor; a page whose transaction
// failed makes the scan start again from there, so it is read from Steam
// again rather than kept anywhere. While Kafka is down the writer cannot
// start, and Steam is not called.
func runPages(ctx context.Context, cfg config.Config, sc *steamseq.Scanner, pages *steamtxn.Writer, sink *kafkasink.Sink, log *slog.Logger) error {
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
		Topics:          []string{cfg.SteamTopics.Matches},
	}
	fallback := resumeFrom(sink, log)
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
		wait := time.Second
		if errors.Is(err, kafkasink.ErrFenced) {
			if cfg.Fleet.Enabled() {
				// The new leader's writer took over: this replica stands by.
				return err
			}
			// Another process scans into this topic with the same
			// transactional ID. Each resumes from the other's last
			// commit, so nothing is lost or repeated, but one is enough.
			log.Error("Another process took over this topic's Steam scan (its transactional writer fenced this one); run one scanner per topic",
				"transactional_id", pageCfg.TransactionalID)
			wait = 30 * time.Second
		} else {
			log.Warn("Steam scan stopped; resuming from the last committed cursor", "error", err)
		}
		if !backoff.Wait(ctx, wait) {
			return nil
		}
	}
}
