package kafkasink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	published prometheus.Counter
	failed    *prometheus.CounterVec
	latency   prometheus.Histogram
	up        prometheus.Gauge

	transactions *prometheus.CounterVec
	fenced       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_matches_published_total",
			Help: "Records acknowledged by Kafka.",
		}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestion_publish_errors_total",
			Help: "Records that finally failed to reach Kafka, by error.",
		}, []string{"error"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ingestion_produce_latency_seconds",
			Help:    "Time from handing a record to the Kafka client to its acknowledgement.",
			Buckets: []float64{.001, .0025, .005, .01, .015, .02, .03, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingestion_kafka_ready",
			Help: "1 while Kafka accepts the service's records, else 0.",
		}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestion_kafka_transactions_total",
			Help: "Transactions ended by the fleet's single writer, by outcome (committed, aborted).",
		}, []string{"outcome"}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_kafka_fenced_total",
			Help: "Times the transactional producer was fenced (another replica took over) or could not go on.",
		}),
	}
	m.transactions.WithLabelValues("committed")
	m.transactions.WithLabelValues("aborted")
	for _, class := range []string{"client_closed", "delivery_timeout", "retries_exhausted", "canceled", "fenced", "not_leader", "other"} {
		m.failed.WithLabelValues(class)
	}
	// The records the Kafka client holds are the relay's in flight
	// (ingestion_inflight_records): one figure, one name.
	for _, c := range []prometheus.Collector{m.published, m.failed, m.latency, m.up, m.transactions, m.fenced} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
