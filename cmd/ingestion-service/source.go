package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/backfill"
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
	// ownWriter: it writes to Kafka through transactional writers of its
	// own, which fence an old leader's (the Steam scans), so in a fleet
	// only the leader runs it, and the sink and the relay stay idle. The
	// others (the streams) run on every replica, standbys feeding their
	// window.
	ownWriter bool
}

// newSource builds the source cfg.Source names, feeding pipe. The Steam
// scanner writes through pages instead, and reads where it stopped with
// the sink.
func newSource(cfg config.Config, pipe *pipeline.Pipeline, sink *kafkasink.Sink, steam *steamParts, bf *backfill.Runner, log *slog.Logger, reg prometheus.Registerer) (source, error) {
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
		if steam.forward == nil {
			return backfillSource(cfg, bf), nil
		}
		scanLog := log.With("component", "steam_sequence")
		sc, err := steamseq.NewScanner(steam.client, cfg.Steam, scanLog, reg)
		if err != nil {
			return source{}, err
		}
		pages := steam.forward
		return source{
			check:  "steam_sequence",
			status: sc.Status,
			run: func(ctx context.Context) error {
				job := steamtxn.Forward(cfg.Kafka, steamTopics(cfg), sc, pages, sink, cfg.Fleet.Enabled(), scanLog)
				return steamtxn.Run(ctx, job, scanLog)
			},
			where:     cfg.Steam.BaseURL,
			ownWriter: true,
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

// steamTopics returns the topics a Steam scan writes.
func steamTopics(cfg config.Config) steamtxn.Topics {
	return steamtxn.Topics{IDs: cfg.Kafka.Topic, Matches: cfg.SteamTopics.Matches, Cursor: cfg.SteamTopics.Cursor}
}
