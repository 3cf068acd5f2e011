package backfill

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/steamtxn"
)

// metrics are the backfill's: per shard held, and the totals of those.
// Summed over the replicas (each reports the shards it holds) they are
// the fleet's.
type metrics struct {
	position  *prometheus.GaugeVec
	remaining *prometheus.GaugeVec
	matches   *prometheus.GaugeVec

	totalRemaining prometheus.Gauge
	rate           prometheus.Gauge
	eta            prometheus.Gauge
	shards         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, shards int) (*metrics, error) {
	byShard := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help + ", by shard (from 0), for the shards this replica holds."}, []string{"shard"})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &metrics{
		position:       byShard("ingestion_backfill_shard_position", "The last match_seq_num a backfill shard has read past, in its last committed page"),
		remaining:      byShard("ingestion_backfill_shard_remaining_seqs", "Seqs a backfill shard has yet to read"),
		matches:        byShard("ingestion_backfill_shard_matches", "Matches a backfill shard has written, over every run"),
		totalRemaining: gauge("ingestion_backfill_remaining_seqs", "Seqs the backfill shards this replica holds have yet to read; summed over the replicas, the fleet's."),
		rate:           gauge("ingestion_backfill_seqs_per_second", "Seqs a second the backfill shards this replica holds read, over the last minutes."),
		eta:            gauge("ingestion_backfill_eta_seconds", "Estimated seconds until the backfill shards this replica holds are done, at their recent rate; -1 when unknown."),
		shards:         gauge("ingestion_backfill_shards", "Shards the backfill range is split into (STEAM_BACKFILL_SHARDS)."),
	}
	for _, c := range []prometheus.Collector{m.position, m.remaining, m.matches, m.totalRemaining, m.rate, m.eta, m.shards} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("backfill: register metrics: %w", err)
		}
	}
	m.shards.Set(float64(shards))
	m.eta.Set(-1)
	return m, nil
}

// shard shows shard i's record.
func (m *metrics) shard(i int, rec steamtxn.ShardRecord) {
	l := strconv.Itoa(i)
	m.position.WithLabelValues(l).Set(float64(rec.Position))
	m.remaining.WithLabelValues(l).Set(float64(rec.Remaining()))
	m.matches.WithLabelValues(l).Set(float64(rec.Matches))
}

// forget removes shard i: another replica holds it now.
func (m *metrics) forget(i int) {
	l := strconv.Itoa(i)
	m.position.DeleteLabelValues(l)
	m.remaining.DeleteLabelValues(l)
	m.matches.DeleteLabelValues(l)
}

// totals shows the totals of the shards held, from their records.
func (m *metrics) totals(recs map[int]steamtxn.ShardRecord) {
	var remaining int64
	var rate float64
	for _, rec := range recs {
		remaining += rec.Remaining()
		if rec.Done() {
			continue
		}
		if seqs, _, ok := rec.Rate(); ok {
			rate += seqs
		}
	}
	m.totalRemaining.Set(float64(remaining))
	m.rate.Set(rate)
	switch {
	case remaining == 0:
		m.eta.Set(0)
	case rate > 0:
		m.eta.Set(float64(remaining) / rate)
	default:
		m.eta.Set(-1)
	}
}
