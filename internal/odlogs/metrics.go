package odlogs

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// The reasons a connection ends or cannot be made, as reconnects_total
// labels.
const (
	reasonConnectFailed  = "connect_failed"   // no response headers: dial, TLS, timeout
	reasonBadStatus      = "bad_status"       // a status other than 200
	reasonBadContentType = "bad_content_type" // not text/event-stream
	reasonIdleTimeout    = "idle_timeout"     // nothing read for IdleTimeout
	reasonClosed         = "closed_by_server" // the body ended cleanly
	reasonLost           = "connection_lost"  // the body ended with an error
)

// The kinds of data line, as lines_total labels.
const (
	lineInsert    = "insert"    // an Insert line handed on as a match
	lineParsed    = "parsed"    // a Parsed line handed on as a match
	lineMalformed = "malformed" // a line of a listed channel handed to Reject
	lineIgnored   = "ignored"   // any other line
	lineOversized = "oversized" // a line skipped for its size, not of a listed channel
)

type metrics struct {
	connected  prometheus.Gauge
	reconnects *prometheus.CounterVec
	lines      [Parsed + 1]prometheus.Counter // by Kind: Other is unused
	malformed  prometheus.Counter
	ignored    prometheus.Counter
	oversized  prometheus.Counter
	lastMatch  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	connected := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ingestion_logs_connected",
		Help: "1 while the log stream's HTTP response is being read, else 0.",
	})
	reconnects := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ingestion_logs_reconnects_total",
		Help: "Times the log stream connection ended or could not be made, by reason.",
	}, []string{"reason"})
	lines := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ingestion_logs_lines_total",
		Help: "Data lines read from the log stream, by what was done with them: insert and parsed lines were handed on as matches, malformed ones rejected, oversized ones skipped for their size, the rest ignored.",
	}, []string{"kind"})
	lastMatch := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ingestion_logs_last_match_timestamp_seconds",
		Help: "When the log stream last announced a match of the listed channels, Unix seconds; 0 until it has.",
	})
	for _, r := range []string{reasonConnectFailed, reasonBadStatus, reasonBadContentType, reasonIdleTimeout, reasonClosed, reasonLost} {
		reconnects.WithLabelValues(r)
	}
	m := &metrics{
		connected:  connected,
		reconnects: reconnects,
		malformed:  lines.WithLabelValues(lineMalformed),
		ignored:    lines.WithLabelValues(lineIgnored),
		oversized:  lines.WithLabelValues(lineOversized),
		lastMatch:  lastMatch,
	}
	m.lines[Insert] = lines.WithLabelValues(lineInsert)
	m.lines[Parsed] = lines.WithLabelValues(lineParsed)
	for _, c := range []prometheus.Collector{connected, reconnects, lines, lastMatch} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
