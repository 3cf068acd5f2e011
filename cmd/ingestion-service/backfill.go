package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/config"
	"github.com/dota-data/ingestion-service/internal/fleet"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/steamtxn"
)

// steamParts are what the Steam scans of a process share: one client,
// whose keys go to the forward scan first, then to the backfill shards,
// and the metrics of their writers.
type steamParts struct {
	client  *steamseq.Client
	writers *steamtxn.Metrics
	// forward writes the forward scan's pages; nil with
	// STEAM_FORWARD_SCAN=false.
	forward *steamtxn.Writer
}

// newSteamParts builds the client and the writers' metrics of a
// steam-sequence process, and the forward scan's writer when it runs.
func newSteamParts(cfg config.Config, log *slog.Logger, reg prometheus.Registerer) (*steamParts, error) {
	cl, err := steamseq.NewClient(cfg.Steam, log.With("component", "steam_client"), reg)
	if err != nil {
		return nil, err
	}
	m, err := steamtxn.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	p := &steamParts{client: cl, writers: m}
	if cfg.Backfill.Forward {
		p.forward = steamtxn.NewWriter(cfg.SteamTopics.Matches, m)
	}
	return p, nil
}

// newBackfill returns the runner of the backfill's shards, nil without a
// backfill: it finds the range when it runs (dates through the plan
// record), hands rejected entries to rejects and the matches of each
// committed page to committed, and gives up the shards the fleet's
// elector, when not nil, takes from this replica.
func newBackfill(cfg config.Config, steam *steamParts, rejects steamtxn.Rejecter, committed func(int), elector *fleet.Elector, log *slog.Logger, reg prometheus.Registerer) (*backfill.Runner, error) {
	if steam == nil || !cfg.Backfill.Enabled() {
		return nil, nil
	}
	bcfg := cfg.Backfill
	topics := steamTopics(cfg)
	bf, err := backfill.NewRunner(backfill.RunnerConfig{
		Shards: bcfg.Shards,
		Range: func(ctx context.Context) (steamseq.Range, error) {
			return backfill.Resolve(ctx, bcfg, cfg.Kafka, topics, steam.client.SeqAtDate, log)
		},
		Kafka:       cfg.Kafka,
		Topics:      topics,
		Replica:     replicaName(),
		Committed:   committed,
		RetryFenced: cfg.Fleet.SessionTimeout,
	}, steam.client, steam.writers, rejects, log, reg)
	if err != nil {
		return nil, err
	}
	if elector != nil {
		elector.OnRelease(func(units []int32) { bf.Release(shardsOf(units)) })
	}
	return bf, nil
}

// replicaName names this process in the shards' cursor records: its host
// (a pod's name, in Kubernetes) and process ID.
func replicaName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}

// fleetUnits is how many units of work a fleet shares: the lead, and a
// backfill's shards.
func fleetUnits(cfg config.Config) int32 {
	if cfg.Source == config.SourceSteamSequence && cfg.Backfill.Enabled() {
		return 1 + int32(cfg.Backfill.Shards)
	}
	return 1
}

// shardsOf returns the backfill shards among a fleet's units: unit 1+i is
// shard i.
func shardsOf(units []int32) []int {
	var out []int
	for _, u := range units {
		if u > 0 {
			out = append(out, int(u-1))
		}
	}
	return out
}

// runBackfill runs the runner until ctx ends, holding the shards the
// fleet gives this replica (elector), or every shard without a fleet.
func runBackfill(ctx context.Context, bf *backfill.Runner, elector *fleet.Elector, shards int) error {
	if elector == nil {
		all := make([]int, shards)
		for i := range all {
			all[i] = i
		}
		bf.Hold(all)
		return bf.Run(ctx)
	}
	watch := elector.Watch()
	bf.Hold(shardsOf(elector.Units()))
	done := make(chan error, 1)
	go func() { done <- bf.Run(ctx) }()
	for {
		select {
		case err := <-done:
			return err
		case <-watch:
			bf.Hold(shardsOf(elector.Units()))
		}
	}
}

// backfillSource is the source of a process that runs the backfill alone
// (STEAM_FORWARD_SCAN=false): it reads nothing itself, and its readiness
// is the backfill's.
func backfillSource(cfg config.Config, bf *backfill.Runner) source {
	return source{
		check:  "backfill",
		status: bf.Status,
		run: func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		},
		where: fmt.Sprintf("%s (backfill %s to %s in %d shards)", cfg.Steam.BaseURL, cfg.Backfill.From, cfg.Backfill.To, cfg.Backfill.Shards),
		// Nothing to publish on the lead: the sink and the relay stay
		// idle.
		ownWriter: true,
	}
}
