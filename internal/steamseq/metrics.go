package steamseq

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// The outcomes of a call, used as the outcome label of
// ingestion_steam_requests_total.
const (
	outcomeOK          = "ok"
	outcomeRateLimited = "rate_limited" // HTTP 429
	outcomeServerError = "server_error" // HTTP 5xx
	outcomeClientError = "client_error" // other HTTP statuses, the key refused among them
	outcomeNetwork     = "network"      // no answer: connection, timeout, body cut short
	outcomeBadResponse = "bad_response" // an answer that is not a valid page
)

var outcomes = []string{outcomeOK, outcomeRateLimited, outcomeServerError, outcomeClientError, outcomeNetwork, outcomeBadResponse}

// The endpoint label values.
const (
	endpointSequence = "sequence" // GetMatchHistoryBySequenceNum
	endpointHistory  = "history"  // GetMatchHistory
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	position prometheus.Gauge
	head     prometheus.Gauge
	lag      prometheus.Gauge
	matches  prometheus.Counter

	keyInterval *prometheus.GaugeVec
	keyCalls    *prometheus.CounterVec
	keyRefused  *prometheus.CounterVec

	rescanPosition prometheus.Gauge
	rescanLag      prometheus.Gauge
	late           prometheus.Counter
	skipped        *prometheus.CounterVec
}

// The cursor label values.
const (
	cursorPrimary = "primary"
	cursorRescan  = "rescan"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestion_steam_requests_total",
			Help: "Calls to the Steam Web API, by endpoint (sequence, history) and outcome.",
		}, []string{"endpoint", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ingestion_steam_request_duration_seconds",
			Help:    "Time a call to the Steam Web API took, body read included, by endpoint.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		position: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingestion_steam_position",
			Help: "The last match_seq_num the scanner has handed on or skipped.",
		}),
		head: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingestion_steam_head",
			Help: "The newest match_seq_num known to exist on Steam.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingestion_steam_lag",
			Help: "Sequence numbers between the head and the position, while the head is known.",
		}),
		matches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_steam_matches_total",
			Help: "Matches found by the scanner and accepted by the handler.",
		}),
		keyInterval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ingestion_steam_key_interval_seconds",
			Help: "The interval between two calls that each Steam API key has learnt, by key (its position in STEAM_API_KEY, from 1).",
		}, []string{"key"}),
		keyCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestion_steam_key_calls_total",
			Help: "Calls made to the Steam Web API, by key (its position in STEAM_API_KEY, from 1).",
		}, []string{"key"}),
		keyRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestion_steam_key_refused_total",
			Help: "Calls Steam refused for their rate (HTTP 429), by key (its position in STEAM_API_KEY, from 1).",
		}, []string{"key"}),
		rescanPosition: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingestion_steam_rescan_position",
			Help: "The last match_seq_num the rescan for late-listed matches has read past.",
		}),
		rescanLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingestion_steam_rescan_lag",
			Help: "Sequence numbers between the primary cursor's position and the rescan's.",
		}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_steam_late_matches_total",
			Help: "Matches the rescan found that had not been published: listed late by Steam, or broken when the primary cursor passed them.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestion_steam_skipped_total",
			Help: "Broken matches a cursor stepped past after they kept failing (a seq range, each holding at least one), by cursor (primary, rescan).",
		}, []string{"cursor"}),
	}
	for _, c := range []string{cursorPrimary, cursorRescan} {
		m.skipped.WithLabelValues(c)
	}
	for _, e := range []string{endpointSequence, endpointHistory} {
		m.duration.WithLabelValues(e)
		for _, o := range outcomes {
			m.requests.WithLabelValues(e, o)
		}
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.position, m.head, m.lag, m.matches,
		m.keyInterval, m.keyCalls, m.keyRefused, m.rescanPosition, m.rescanLag, m.late, m.skipped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
