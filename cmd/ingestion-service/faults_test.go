package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/relay"
	"github.com/dota-data/ingestion-service/internal/spool"
)

// The fault tests of the no-data-loss promise that an in-process broker can
// host. Each prints a tally and asserts that nothing is missing; the ones
// that need a real broker (stopped, hung, failed over) are in
// faults_real_test.go.

// TestFaultUnrulyStream: the stream server closes the connection every
// 1,000 frames, re-sends the last 50 IDs after each reconnect, stalls once
// without answering pings, and sends garbage.
func TestFaultUnrulyStream(t *testing.T) {
	const n = 10_000
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	stream := newLiveStream(t, idRange(4_000_000_001, n), streamOpts{
		CloseEvery: 1000, Resend: 50, StallOnConn: 3, StallAfter: 500, GarbageEvery: 97,
	})
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     stream.url,
		"STREAM_PING_INTERVAL":    "200ms",
		"STREAM_PONG_TIMEOUT":     "300ms",
		"STREAM_BACKOFF_MIN":      "10ms",
		"STREAM_BACKOFF_MAX":      "100ms",
	})
	stream.waitFinished(t, 2*time.Minute)
	svc.waitFor(t, "every sent match published", time.Minute, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") >= n
	})
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status = %d", code)
	}
	got, missing := count(stream.sent(), cluster.ReadAll(t, topic, n, 30*time.Second))
	conns, _ := stream.stats()
	t.Logf("tally: %s; connections %d", got, conns)
	if got.missing != 0 || got.duplicates != 0 || got.unexpected != 0 {
		t.Fatalf("missing %v", head(missing))
	}
	if conns < 11 {
		t.Fatalf("only %d connections: the stream did not misbehave as intended", conns)
	}
	out := svc.out.String()
	if !strings.Contains(out, `"reason":"ping_timeout"`) {
		t.Fatalf("the stalled connection was not replaced after a ping timeout")
	}
	if !regexp.MustCompile(`"duplicates":[1-9]`).MatchString(out) {
		t.Fatalf("the shutdown line counts no duplicates, yet 50 IDs were re-sent after each reconnect")
	}
}

// TestFaultSIGKILLInDiskMode: the service is killed with SIGKILL mid-stream
// in disk mode and restarted; every ID in the spool at the kill is in the
// topic afterwards.
func TestFaultSIGKILLInDiskMode(t *testing.T) {
	const n = 30_000
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	stream := newLiveStream(t, idRange(3_000_000_001, n), streamOpts{Rate: 5000})
	spoolDir := filepath.Join(t.TempDir(), "spool")
	env := map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     stream.url,
		"SPOOL_MODE":              "disk",
		"SPOOL_DIR":               spoolDir,
		"STREAM_BACKOFF_MIN":      "10ms",
		"STREAM_BACKOFF_MAX":      "50ms",
	}
	first := startService(t, env)
	first.waitFor(t, "matches flowing", time.Minute, func() bool {
		return first.metric(t, "ingestion_matches_published_total") >= 5000
	})
	first.kill(t)

	// What the spool held at the kill: read a copy, leaving the original
	// for the restarted service.
	spooled := readSpool(t, spoolDir)
	t.Logf("the spool held %d unacknowledged matches at the kill", len(spooled))

	second := startService(t, env)
	stream.waitFinished(t, 2*time.Minute)
	second.waitFor(t, "the spool replayed and the stream published", time.Minute, func() bool {
		return second.holdsNothing(t)
	})
	if code, _ := second.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status after restart = %d", code)
	}
	recs := cluster.ReadAll(t, topic, n, 30*time.Second)
	inSpool, missingFromSpool := count(spooled, recs)
	overall, _ := count(stream.sent(), recs)
	t.Logf("tally of the spool at the kill: %d spooled, %d missing after restart", len(spooled), inSpool.missing)
	t.Logf("tally of the whole stream: %s (missing: sent while no service was connected; duplicates: acknowledged before the kill but not yet committed in the spool)", overall)
	if inSpool.missing != 0 {
		t.Fatalf("%d spooled matches missing after restart: %v", inSpool.missing, head(missingFromSpool))
	}
	if overall.unexpected != 0 {
		t.Fatalf("%d records the stream never sent", overall.unexpected)
	}
	if len(spooled) == 0 {
		t.Fatalf("the spool was empty at the kill: the test proves nothing")
	}
}

// TestFaultSIGTERMMidStream: SIGTERM while matches stream in; the service
// drains within SHUTDOWN_TIMEOUT and every match it accepted is in the topic.
func TestFaultSIGTERMMidStream(t *testing.T) {
	const n = 40_000
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	stream := newLiveStream(t, idRange(2_000_000_001, n), streamOpts{Rate: 8000})
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     stream.url,
		"SHUTDOWN_TIMEOUT":        "10s",
	})
	svc.waitFor(t, "matches flowing", time.Minute, func() bool {
		return svc.metric(t, "ingestion_matches_accepted_total") >= 5000
	})
	code, took := svc.stop(t, 20*time.Second)
	if code != 0 {
		t.Fatalf("exit status = %d", code)
	}
	accepted := shutdownCount(t, svc.out.String(), "accepted")
	recs := cluster.ReadAll(t, topic, accepted, 30*time.Second)
	// The service read a prefix of the stream; all of it must be there.
	got, missing := count(stream.sent()[:accepted], recs)
	t.Logf("tally: %s; shutdown took %s", got, took.Round(time.Millisecond))
	if got.missing != 0 || got.duplicates != 0 || got.unexpected != 0 || got.published != accepted {
		t.Fatalf("accepted %d, missing %v", accepted, head(missing))
	}
}

// readSpool returns the IDs in a copy of a spool directory.
func readSpool(t *testing.T, dir string) []int64 {
	t.Helper()
	cp := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "lock" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sp, err := spool.Open(spool.Options{Dir: cp})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	var ids []int64
	buf := make([]byte, 0, 16)
	for {
		p, _, _, ok, err := sp.Next(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return ids
		}
		m, err := relay.Decode(p)
		if err != nil {
			t.Fatalf("spooled record %x: %v", p, err)
		}
		ids = append(ids, m.ID)
	}
}

func head(ids []int64) []int64 {
	if len(ids) > 20 {
		return ids[:20]
	}
	return ids
}
