package wsstream

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reconnects *prometheus.CounterVec
	connected  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestion_stream_reconnects_total",
			Help: "Times the stream connection was lost or could not be made, by reason.",
		}, []string{"reason"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingestion_stream_connected",
			Help: "1 while the stream's WebSocket connection is open, else 0.",
		}),
	}
	for _, r := range []string{"connect_failed", "ping_timeout", "closed_by_server", "connection_lost", "read_error"} {
		m.reconnects.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.reconnects, m.connected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
