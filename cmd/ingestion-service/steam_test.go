package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// steamEnv is the environment of a service scanning fake's sequence from
// its first match into topic.
func steamEnv(cluster *kafkatest.Cluster, topic, url string, first int64, spoolDir string, minInterval string) map[string]string {
	return map[string]string{
		"SOURCE":                  "steam-sequence",
		"STEAM_API_URL":           url,
		"STEAM_API_KEY":           steamfake.DefaultKey,
		"STEAM_START_SEQ_NUM":     strconv.FormatInt(first, 10),
		"STEAM_MIN_INTERVAL":      minInterval,
		"STEAM_IDLE_WAIT":         "50ms",
		"STEAM_HEAD_INTERVAL":     "0",
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"SPOOL_DIR":               spoolDir,
	}
}

// seqTally compares the matches Steam has with the records in the topic:
// each must be there once, with its key, value and headers.
type seqTally struct {
	expected, published, missing, duplicates, wrong int
}

func (s seqTally) String() string {
	return "expected " + strconv.Itoa(s.expected) + ", published " + strconv.Itoa(s.published) +
		", missing " + strconv.Itoa(s.missing) + ", duplicates " + strconv.Itoa(s.duplicates) + ", wrong " + strconv.Itoa(s.wrong)
}

func tallySeq(want []match.Match, recs []*kgo.Record) seqTally {
	byID := make(map[int64]match.Match, len(want))
	for _, m := range want {
		byID[m.ID] = m
	}
	seen := map[int64]int{}
	t := seqTally{expected: len(want), published: len(recs)}
	for _, r := range recs {
		id, _ := strconv.ParseInt(string(r.Key), 10, 64)
		m, ok := byID[id]
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if !ok || string(r.Value) != `{"match_id":`+string(r.Key)+`}` ||
			h[kafkasink.HeaderSeqNum] != strconv.FormatInt(m.SeqNum, 10) || h[kafkasink.HeaderStartTime] != strconv.FormatInt(m.StartTime, 10) {
			t.wrong++
			continue
		}
		if seen[id]++; seen[id] > 1 {
			t.duplicates++
		}
	}
	for id := range byID {
		if seen[id] == 0 {
			t.missing++
		}
	}
	return t
}

// TestSteamSequenceResumesAfterARestart: the scanner pages through the
// sequence, stops on SIGTERM, and the next start resumes exactly after the
// highest match_seq_num in the topic: no gap, no duplicate.
func TestSteamSequenceResumesAfterARestart(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	fake, url := steamfake.Start(t, steamfake.Options{Count: 1500, GapEvery: 400, Gap: 7})
	first := fake.Matches()[0].SeqNum
	env := steamEnv(cluster, topic, url, first, filepath.Join(t.TempDir(), "spool"), "0")

	svc := startService(t, env)
	svc.waitFor(t, "1500 matches published", time.Minute, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") == 1500
	})
	last := fake.Matches()[1499].SeqNum
	if got := svc.metric(t, "ingestion_steam_position"); got != float64(last) {
		t.Errorf("ingestion_steam_position = %v, want %d", got, last)
	}
	if got := svc.metric(t, `ingestion_source_info`); got != 1 || !strings.Contains(metricsText(t, svc), `ingestion_source_info{source="steam-sequence"} 1`) {
		t.Errorf("ingestion_source_info does not name steam-sequence")
	}
	code, body := svc.get(t, "/api/v1/ready")
	var ready struct {
		Checks map[string]struct{ Status, Detail string }
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != 200 || ready.Checks["steam_sequence"].Status != "up" {
		t.Errorf("ready = %d %s", code, body)
	}
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	callsBefore := len(fake.Calls())

	fake.Advance(700)
	second := startService(t, env)
	second.waitFor(t, "700 more matches published", time.Minute, func() bool {
		return second.metric(t, "ingestion_matches_published_total") == 700
	})
	if code, _ := second.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status after restart %d", code)
	}
	var firstCall *steamfake.Call
	for _, c := range fake.Calls()[callsBefore:] {
		if c.Endpoint == steamfake.Sequence {
			firstCall = &c
			break
		}
	}
	if firstCall == nil || firstCall.StartAt != last+1 {
		t.Errorf("after the restart the scanner first asked for %+v, want start_at %d", firstCall, last+1)
	}
	if !strings.Contains(second.out.String(), "Resuming after the highest match_seq_num in Kafka") {
		t.Errorf("the restart did not log where it resumed")
	}

	recs := cluster.ReadToEnd(t, topic, 30*time.Second)
	tl := tallySeq(fake.Matches(), recs)
	t.Logf("tally: %s", tl)
	if tl.expected != 2200 || tl.missing != 0 || tl.duplicates != 0 || tl.wrong != 0 || tl.published != 2200 {
		t.Fatalf("tally: %s; want all 2200 once", tl)
	}
}

// TestFaultSteamSequenceKill9: the service is killed with SIGKILL while
// scanning (disk mode, the default with this source) and restarted. Every
// match of the sequence reaches the topic; duplicates are bounded by what
// Kafka had acknowledged but the spool had not yet recorded.
func TestFaultSteamSequenceKill9(t *testing.T) {
	const n = 30_000
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	fake, url := steamfake.Start(t, steamfake.Options{Count: n})
	env := steamEnv(cluster, topic, url, fake.Matches()[0].SeqNum, filepath.Join(t.TempDir(), "spool"), "20ms")

	first := startService(t, env)
	first.waitFor(t, "matches flowing", time.Minute, func() bool {
		return first.metric(t, "ingestion_matches_published_total") >= 5000
	})
	first.kill(t)
	killedAt := len(cluster.ReadToEnd(t, topic, 30*time.Second))

	second := startService(t, env)
	last := fake.Matches()[n-1].SeqNum
	second.waitFor(t, "the whole sequence scanned and delivered", 2*time.Minute, func() bool {
		return second.metric(t, "ingestion_steam_position") == float64(last) && second.holdsNothing(t)
	})
	if code, _ := second.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status after restart %d", code)
	}
	recs := cluster.ReadToEnd(t, topic, 30*time.Second)
	tl := tallySeq(fake.Matches(), recs)
	t.Logf("killed with %d records in the topic; tally after the restart: %s", killedAt, tl)
	if tl.missing != 0 || tl.wrong != 0 {
		t.Fatalf("tally: %s", tl)
	}
	if tl.duplicates > 2000 {
		t.Fatalf("%d duplicates: more than the in-flight window and a commit interval can explain", tl.duplicates)
	}
	if killedAt >= n {
		t.Fatalf("the kill came after the whole sequence was in the topic: the test proves nothing")
	}
}

// metricsText returns the /metrics body.
func metricsText(t *testing.T, s *service) string {
	t.Helper()
	_, body := s.get(t, "/metrics")
	return body
}

// TestFleetSteamSequence: two replicas scan Steam's sequence as a fleet.
// Only the leader scans; when it is killed, the other takes over and
// resumes after the highest match_seq_num in the topic: every match is
// there, duplicates bounded by what the old leader had in flight.
func TestFleetSteamSequence(t *testing.T) {
	const n = 20_000
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	fake, url := steamfake.Start(t, steamfake.Options{Count: n})
	var replicas []*service
	for i := range 2 {
		env := steamEnv(cluster, topic, url, fake.Matches()[0].SeqNum, filepath.Join(t.TempDir(), "spool-"+strconv.Itoa(i)), "20ms")
		env["FLEET_GROUP"] = "fleet-" + topic
		env["FLEET_TOPIC"] = "leader-" + topic
		env["FLEET_SESSION_TIMEOUT"] = "6s"
		replicas = append(replicas, startService(t, env))
	}
	first := waitOneLeader(t, replicas, time.Minute)
	leader := replicas[first]
	leader.waitFor(t, "the leader publishing", time.Minute, func() bool {
		return leader.metric(t, "ingestion_matches_published_total") >= 3000
	})
	other := replicas[1-first]
	if got := other.metric(t, "ingestion_steam_matches_total"); got != 0 {
		t.Fatalf("the standby scanned %v matches; only the leader may", got)
	}
	leader.kill(t)
	replicas[first] = nil
	waitOneLeader(t, replicas, 30*time.Second)
	last := fake.Matches()[n-1].SeqNum
	other.waitFor(t, "the whole sequence scanned and delivered", 2*time.Minute, func() bool {
		return other.metric(t, "ingestion_steam_position") == float64(last) && other.holdsNothing(t)
	})
	if code, _ := other.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	tl := tallySeq(fake.Matches(), cluster.ReadCommitted(t, topic, 30*time.Second))
	t.Logf("tally of the committed topic: %s", tl)
	if tl.missing != 0 || tl.wrong != 0 || tl.duplicates > 2000 {
		t.Fatalf("tally: %s", tl)
	}
}
