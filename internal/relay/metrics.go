package relay

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the relay's Prometheus metrics.
type Metrics struct {
	retries   prometheus.Counter
	corrupt   prometheus.Counter
	delivered prometheus.Counter
	relay     atomic.Pointer[Relay]
}

// NewMetrics registers the relay's metrics on reg (nil for none). Gauges
// read the relay passed to New with these Metrics. It fails if a metric
// cannot be registered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_delivery_retries_total",
			Help: "Deliveries tried again after the Kafka client failed them.",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_spool_unreadable_records_total",
			Help: "Spooled records skipped because they did not decode as a match.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_relay_already_delivered_total",
			Help: "Held matches passed over, not sent, because the topic already held them (a fleet replica's backlog from an earlier lead that another leader delivered since).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	gauge := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			r := m.relay.Load()
			if r == nil {
				return 0
			}
			return f(r.Stats())
		})
	}
	for _, c := range []prometheus.Collector{
		m.retries, m.corrupt, m.delivered,
		gauge("ingestion_buffer_records", "Matches waiting in the memory buffer.", func(s Stats) float64 { return float64(s.Memory) }),
		gauge("ingestion_inflight_records", "Matches handed to the Kafka client and not yet acknowledged.", func(s Stats) float64 { return float64(s.InFlight) }),
		gauge("ingestion_spool_records", "Matches in the disk spool not yet acknowledged by Kafka.", func(s Stats) float64 { return float64(s.SpoolRecords) }),
		gauge("ingestion_spool_bytes", "Bytes of the disk spool's files.", func(s Stats) float64 { return float64(s.SpoolBytes) }),
		gauge("ingestion_spool_corrupt_bytes", "Bytes of damaged spool records skipped since start (a torn tail after a crash, say).", func(s Stats) float64 { return float64(s.SpoolCorruptBytes) }),
		gauge("ingestion_oldest_unacked_seconds", "Age of the oldest match not yet acknowledged by Kafka; 0 if none.", func(s Stats) float64 {
			if s.Oldest.IsZero() {
				return 0
			}
			return time.Since(s.Oldest).Seconds()
		}),
		gauge("ingestion_relay_full", "1 while the relay is full (reading paused or new matches dropped).", func(s Stats) float64 {
			if s.Full {
				return 1
			}
			return 0
		}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("relay: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) attach(r *Relay) { m.relay.Store(r) }
