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

// The cursor label values.
const (
	cursorPrimary  = "primary"
	cursorRescan   = "rescan"
	cursorBackfill = "backfill"
)

// clientMetrics are a Client's: its calls and its keys, whichever cursor
// made them.
type clientMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	keyInterval *prometheus.GaugeVec
	keyCalls    *prometheus.CounterVec
	keyRefused  *prometheus.CounterVec
	// keyRefusedUnpaced counts the refusals among keyRefused that the
	// pace was not to blame for.
	keyRefusedUnpaced *prometheus.CounterVec
	keyCallsToday     *prometheus.GaugeVec
	keyExhausted      *prometheus.GaugeVec

	skipped *prometheus.CounterVec
}

func newClientMetrics(reg prometheus.Registerer) (*clientMetrics, error) {
	byKey := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help + ", by key (its position in STEAM_API_KEY, from 1)."}, []string{"key"})
	}
	countByKey := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help + ", by key (its position in STEAM_API_KEY, from 1)."}, []string{"key"})
	}
	m := &clientMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestion_steam_requests_total",
			Help: "Calls to the Steam Web API, by endpoint (sequence, history) and outcome.",
		}, []string{"endpoint", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ingestion_steam_request_duration_seconds",
			Help:    "Time a call to the Steam Web API took, body read included, by endpoint.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		keyInterval: byKey("ingestion_steam_key_interval_seconds", "The interval between two calls that each Steam API key has learnt"),
		keyCalls:    countByKey("ingestion_steam_key_calls_total", "Calls made to the Steam Web API"),
		keyRefused:  countByKey("ingestion_steam_key_refused_total", "Calls Steam refused for their rate (HTTP 429)"),
		keyRefusedUnpaced: countByKey("ingestion_steam_key_refused_unpaced_total",
			"Refusals (HTTP 429) among ingestion_steam_key_refused_total that slowing down did not make rarer: the key waited out each once and kept its pace"),
		keyCallsToday: byKey("ingestion_steam_key_calls_today", "Calls this process made with each key since 00:00 UTC, against STEAM_KEY_DAILY_CALLS"),
		keyExhausted:  byKey("ingestion_steam_key_exhausted", "1 while a key is held until 00:00 UTC because it made STEAM_KEY_DAILY_CALLS calls today, else 0"),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestion_steam_skipped_total",
			Help: "Broken matches a cursor stepped past after they kept failing (a seq range, each holding at least one), by cursor (primary, rescan, backfill).",
		}, []string{"cursor"}),
	}
	for _, c := range []string{cursorPrimary, cursorRescan, cursorBackfill} {
		m.skipped.WithLabelValues(c)
	}
	for _, e := range []string{endpointSequence, endpointHistory} {
		m.duration.WithLabelValues(e)
		for _, o := range outcomes {
			m.requests.WithLabelValues(e, o)
		}
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.keyInterval, m.keyCalls, m.keyRefused,
		m.keyRefusedUnpaced, m.keyCallsToday, m.keyExhausted, m.skipped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// metrics are a forward Scanner's: where its cursors stand.
type metrics struct {
	position prometheus.Gauge
	head     prometheus.Gauge
	lag      prometheus.Gauge
	matches  prometheus.Counter

	rescanPosition prometheus.Gauge
	rescanLag      prometheus.Gauge
	late           prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &metrics{
		position: gauge("ingestion_steam_position", "The last match_seq_num the scanner has handed on or skipped."),
		head:     gauge("ingestion_steam_head", "The newest match_seq_num known to exist on Steam."),
		lag:      gauge("ingestion_steam_lag", "Sequence numbers between the head and the position, while the head is known."),
		matches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_steam_matches_total",
			Help: "Matches found by the scanner and accepted by the handler.",
		}),
		rescanPosition: gauge("ingestion_steam_rescan_position", "The last match_seq_num the rescan for late-listed matches has read past."),
		rescanLag:      gauge("ingestion_steam_rescan_lag", "Sequence numbers between the primary cursor's position and the rescan's."),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_steam_late_matches_total",
			Help: "Matches the rescan found that had not been published: listed late by Steam, or broken when the primary cursor passed them.",
		}),
	}
	for _, c := range []prometheus.Collector{m.position, m.head, m.lag, m.matches, m.rescanPosition, m.rescanLag, m.late} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
