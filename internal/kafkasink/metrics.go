package kafkasink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

type metrics struct {
	published prometheus.Counter
	failed    *prometheus.CounterVec
	latency   prometheus.Histogram
	up        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, client *kgo.Client) (*metrics, error) {
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
	}
	for _, class := range []string{"client_closed", "delivery_timeout", "retries_exhausted", "canceled", "other"} {
		m.failed.WithLabelValues(class)
	}
	buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ingestion_buffered_records",
		Help: "Records handed to the Kafka client and not yet acknowledged.",
	}, func() float64 { return float64(client.BufferedProduceRecords()) })
	for _, c := range []prometheus.Collector{m.published, m.failed, m.latency, m.up, buffered} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
