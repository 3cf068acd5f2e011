package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

// logStream is a loopback Server-Sent Events server that sends log lines
// the way OpenDota's /logs route does: "data: <line>" and a blank line per
// message, no event names, no IDs. Each connection gets the next batch of
// lines, then the server ends it, so the service must reconnect.
type logStream struct {
	srv     *httptest.Server
	batches [][]string
	served  chan int // connection numbers, as they end
}

func newLogStream(t *testing.T, batches ...[]string) *logStream {
	ls := &logStream{batches: batches, served: make(chan int, len(batches)+16)}
	conns := 0
	ls.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/logs" {
			http.NotFound(w, r)
			return
		}
		n := conns
		conns++
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		if n < len(ls.batches) {
			for _, line := range ls.batches[n] {
				fmt.Fprintf(w, "data: %s\n\n", line)
			}
			w.(http.Flusher).Flush()
		} else {
			// Nothing more to say: hold the connection, as the real one does.
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
		ls.served <- n
	}))
	t.Cleanup(ls.srv.Close)
	return ls
}

// TestOpenDotaLogsSource: the service reads OpenDota's log stream, takes
// the IDs of "insert: api" lines (and, when asked, of parsed lines),
// ignores the rest, rejects malformed ones, and survives the server ending
// the connection.
func TestOpenDotaLogsSource(t *testing.T) {
	const (
		green = "\x1b[32m"
		reset = "\x1b[39m"
	)
	insert := func(id string) string {
		return "[2026-11-27T07:00:00.000Z] [inserter] [insert: api] [ended: 2 minutes ago] " + id
	}
	parsed := func(outcome, id string) string {
		return green + "[2026-11-27T07:00:01.000Z] [parser] [" + outcome + ": 2345ms] [api: 120ms] [gcdata: 300ms] [parse: 1800ms] [queued: a minute ago] [pri: 1] [att: 1] " + id + " ok" + reset
	}
	batches := [][]string{
		{
			insert("8000000001"),
			"[2026-11-27T07:00:00.000Z] [parser] [insert: gcdata] [ended: 2 minutes ago] 8000000099", // another insert type
			"\x1b[35m[2026-11-27T07:00:00.000Z] [retriever] [queue: parse] [pri: 1] [att: 0] 8000000098\x1b[39m",
			insert("8000000002"),
			parsed("success", "8000000003"),
			parsed("fail", "8000000097"),
			insert("12x"), // malformed: not_integer
			insert("0"),   // malformed: not_positive
			"something else entirely",
			"",
		},
		{
			insert("8000000004"),
			insert("8000000001"), // again: de-duplicated
			parsed("success", "8000000005"),
		},
	}
	for _, tc := range []struct {
		channels string
		want     []string
	}{
		{"api", []string{"8000000001", "8000000002", "8000000004"}},
		{"api,parsed", []string{"8000000001", "8000000002", "8000000003", "8000000004", "8000000005"}},
	} {
		t.Run(tc.channels, func(t *testing.T) {
			cluster := kafkatest.Start(t)
			topic := cluster.Topic(t, 3)
			ls := newLogStream(t, batches...)
			svc := startService(t, map[string]string{
				"SOURCE":                  "opendota-logs",
				"OPENDOTA_LOGS_URL":       ls.srv.URL + "/logs",
				"OPENDOTA_LOGS_CHANNELS":  tc.channels,
				"STREAM_BACKOFF_MIN":      "10ms",
				"STREAM_BACKOFF_MAX":      "50ms",
				"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
				"KAFKA_PUBLISH_TOPIC":     topic,
				"SPOOL_DIR":               t.TempDir(),
			})
			svc.waitFor(t, "every ID published", 30*time.Second, func() bool {
				return svc.metric(t, "ingestion_matches_published_total") == float64(len(tc.want))
			})
			svc.waitFor(t, "the third connection", 30*time.Second, func() bool {
				code, body := svc.get(t, "/api/v1/ready")
				var ready struct {
					Checks map[string]struct{ Status string }
				}
				return code == 200 && json.Unmarshal([]byte(body), &ready) == nil && ready.Checks["opendota_logs"].Status == "up" &&
					svc.metric(t, "ingestion_logs_reconnects_total") >= 2
			})
			if got := svc.metric(t, "ingestion_frames_rejected_total"); got != 2 {
				t.Errorf("rejected = %v, want 2 (12x and 0)", got)
			}
			if got := svc.metric(t, "ingestion_duplicates_total"); got != 1 {
				t.Errorf("duplicates = %v, want 1", got)
			}
			if !strings.Contains(metricsText(t, svc), `ingestion_source_info{source="opendota-logs"} 1`) {
				t.Errorf("ingestion_source_info does not name opendota-logs")
			}
			if code, _ := svc.stop(t, 30*time.Second); code != 0 {
				t.Fatalf("exit status %d", code)
			}
			recs := cluster.ReadToEnd(t, topic, 30*time.Second)
			got := map[string]int{}
			for _, r := range recs {
				if string(r.Value) != `{"match_id":`+string(r.Key)+`}` {
					t.Errorf("record %s has value %s", r.Key, r.Value)
				}
				got[string(r.Key)]++
			}
			if len(recs) != len(tc.want) {
				t.Errorf("topic holds %d records %v, want %v", len(recs), got, tc.want)
			}
			for _, id := range tc.want {
				if got[id] != 1 {
					t.Errorf("match %s is in the topic %d times, want once", id, got[id])
				}
			}
		})
	}
}
