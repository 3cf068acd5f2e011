package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
	"github.com/dota-data/ingestion-service/internal/steamtxn"
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
		"STEAM_KEY_INTERVAL":      minInterval,
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
	fake, url := steamfake.Start(t, steamfake.Options{Count: 1500, GapEvery: 400, Gap: 7, Compact: true})
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
	env["SPOOL_MODE"] = "disk" // as an earlier version's deployment may have it
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
	if !strings.Contains(second.out.String(), "Resuming from the last committed cursor") {
		t.Errorf("the restart did not log where it resumed")
	}
	// The source needs no spool, and says so rather than quietly ignoring
	// SPOOL_MODE (SPOOL_DIR, which steamEnv sets, only says where).
	if out := second.out.String(); !strings.Contains(out, "Ignoring settings the source does not read") || !strings.Contains(out, `"ignored":["SPOOL_MODE"]`) {
		t.Errorf("no warning that SPOOL_MODE has no effect with this source")
	}
	if strings.Contains(svc.out.String(), "Ignoring settings") {
		t.Errorf("a warning about SPOOL_DIR alone, which only says where")
	}

	recs := cluster.ReadCommitted(t, topic, 30*time.Second)
	tl := tallySeq(fake.Matches(), recs)
	t.Logf("tally: %s", tl)
	if tl.expected != 2200 || tl.missing != 0 || tl.duplicates != 0 || tl.wrong != 0 || tl.published != 2200 {
		t.Fatalf("tally: %s; want all 2200 once", tl)
	}
}

// metricsText returns the /metrics body.
func metricsText(t *testing.T, s *service) string {
	t.Helper()
	_, body := s.get(t, "/metrics")
	return body
}

// TestFleetSteamSequence: two replicas scan Steam's sequence as a fleet,
// with the matches topic on and real-size match objects. Only the leader
// scans; when it is killed, the other takes over (its transactional
// writer fences the dead one's and aborts its open page) and resumes from
// the last committed cursor: read committed, both topics hold every match
// exactly once.
func TestFleetSteamSequence(t *testing.T) {
	const n = 4000
	cluster := kafkatest.Start(t)
	ids, objects := cluster.Topic(t, 3), cluster.Topic(t, 3)
	fake, url := steamfake.Start(t, steamfake.Options{Count: n})
	var replicas []*service
	for i := range 2 {
		env := steamEnv(cluster, ids, url, fake.Matches()[0].SeqNum, filepath.Join(t.TempDir(), "spool-"+strconv.Itoa(i)), "20ms")
		env["STEAM_MATCHES_TOPIC"] = objects
		env["FLEET_GROUP"] = "fleet-" + ids
		env["FLEET_TOPIC"] = "leader-" + ids
		env["FLEET_SESSION_TIMEOUT"] = "6s"
		replicas = append(replicas, startService(t, env))
	}
	first := waitOneLeader(t, replicas, time.Minute)
	leader := replicas[first]
	leader.waitFor(t, "the leader publishing", time.Minute, func() bool {
		return leader.metric(t, "ingestion_matches_published_total") >= 2000
	})
	other := replicas[1-first]
	if got := other.metric(t, "ingestion_steam_matches_total"); got != 0 {
		t.Fatalf("the standby scanned %v matches; only the leader may", got)
	}
	killedAt := leader.metric(t, "ingestion_steam_position")
	p50, p99, pages := histogramQuantiles(t, leader, "ingestion_steam_page_commit_seconds")
	t.Logf("Steam answer to commit over the leader's %d full pages (100 matches, 1.4 MB of objects): p50 %s, p99 %s", pages, p50, p99)
	leader.kill(t)
	replicas[first] = nil
	waitOneLeader(t, replicas, 30*time.Second)
	last := fake.Matches()[n-1].SeqNum
	other.waitFor(t, "the whole sequence scanned and committed", 2*time.Minute, func() bool {
		return labelled(t, other, "ingestion_steam_committed_cursor", `cursor="primary"`) == float64(last)
	})
	if code, _ := other.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if !strings.Contains(other.out.String(), "Resuming from the last committed cursor") {
		t.Fatalf("the new leader did not resume from the cursor")
	}
	t.Logf("the leader was killed at position %.0f of %d", killedAt, last)
	checkExactlyOnce(t, cluster, fake, ids, objects)
}

// checkExactlyOnce reads ids and objects as a consumer of committed data:
// each must hold every match fake lists exactly once, and every value in
// objects must be the match object fake served, byte for byte.
func checkExactlyOnce(t *testing.T, cluster *kafkatest.Cluster, fake *steamfake.Server, ids, objects string) {
	t.Helper()
	for _, topic := range []string{ids, objects} {
		tl := fake.Tally(cluster.ReadCommitted(t, topic, time.Minute), topic == objects)
		t.Logf("%s: %s", topic, tl)
		if !tl.ExactlyOnce() {
			t.Fatalf("%s: %s; want every listed match exactly once, objects as served", topic, tl)
		}
	}
}

// labelled returns the value of name{labels} in /metrics, or -1.
func labelled(t *testing.T, s *service, name, labels string) float64 {
	t.Helper()
	prefix := name + "{" + labels + "} "
	for _, line := range strings.Split(metricsText(t, s), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestSteamSequenceCompleteWithinSteamsLimits runs the binary against a
// fake as hard as Steam: two keys that Steam allows one call per 2 s
// each (429 without Retry-After beyond that), 3% of the matches listed
// only once the head has moved 300 seqs on, pages of 99, one match that
// never loads, real-size match objects, and a head that keeps moving.
// The service is killed with SIGKILL mid-scan and started again. Every
// match the fake lists, the late ones included, is on the topic; the
// broken one is skipped and counted; at most 10% of the calls were
// refused and each key made a quarter of them; no key shows anywhere.
func TestSteamSequenceCompleteWithinSteamsLimits(t *testing.T) {
	keys := []string{"first-s3cr3t-KEY-0001", "second-s3cr3t-KEY-0002"}
	const limit = 2 * time.Second
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	fake, url := steamfake.Start(t, steamfake.Options{
		Count: 1000, Keys: keys, RateInterval: limit,
		LateFraction: 0.03, LateBy: 300, HiddenEvery: 100,
	})
	first := fake.Matches()[0].SeqNum
	// Seq first+1700 is reached after the restart.
	broken := first + 1700
	fake.Break(broken, 0)

	env := steamEnv(cluster, topic, url, first, filepath.Join(t.TempDir(), "spool"), "1s")
	env["STEAM_API_KEY"] = strings.Join(keys, ",")
	delete(env, "STEAM_KEY_INTERVAL") // each key starts at the default 5 s
	env["STEAM_IDLE_WAIT"] = "2s"
	env["STEAM_HEAD_INTERVAL"] = "30s"
	env["STEAM_RESCAN_BEHIND"] = "600"
	env["STEAM_RESCAN_DELAY"] = "30s" // late matches show 300 seqs, 20 s, after their time
	env["STEAM_SKIP_AFTER"] = "5s"

	// Dota goes on: 15 matches a second, 900 more in all.
	produced := make(chan struct{})
	stopProducing := make(chan struct{})
	t.Cleanup(func() { close(stopProducing) })
	go func() {
		defer close(produced)
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for range 60 {
			select {
			case <-stopProducing:
				return
			case <-tk.C:
				fake.Advance(15)
			}
		}
	}()

	firstRun := startService(t, env)
	firstRun.waitFor(t, "the primary cursor past the backlog and the rescan moving", 4*time.Minute, func() bool {
		return firstRun.metric(t, "ingestion_steam_position") > float64(first+1100) &&
			firstRun.metric(t, "ingestion_steam_rescan_position") > float64(first+200)
	})
	firstRun.kill(t)
	killedAt := len(cluster.ReadCommitted(t, topic, 30*time.Second))

	second := startService(t, env)
	<-produced
	listed := fake.Matches()
	head := listed[len(listed)-1].SeqNum // the newest listed: Steam may hide the very last
	second.waitFor(t, "both cursors at the head and everything delivered", 6*time.Minute, func() bool {
		return second.metric(t, "ingestion_steam_position") == float64(head) &&
			second.metric(t, "ingestion_steam_rescan_position") == float64(head) && second.holdsNothing(t)
	})

	// What an operator sees: /metrics and readiness, the output.
	metrics := metricsText(t, second)
	_, ready := second.get(t, "/api/v1/ready")
	skippedPrimary := labelled(t, second, "ingestion_steam_skipped_total", `cursor="primary"`)
	skippedRescan := labelled(t, second, "ingestion_steam_skipped_total", `cursor="rescan"`)
	intervals := []float64{
		labelled(t, second, "ingestion_steam_key_interval_seconds", `key="1"`),
		labelled(t, second, "ingestion_steam_key_interval_seconds", `key="2"`),
	}
	if code, _ := second.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status after restart %d", code)
	}

	recs := cluster.ReadCommitted(t, topic, 30*time.Second)
	var want []match.Match
	for _, m := range fake.Matches() {
		if m.SeqNum != broken {
			want = append(want, m)
		}
	}
	tl := tallySeq(want, recs)
	var byRescan int
	for _, r := range recs {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[kafkasink.HeaderRescanSeqNum] == h[kafkasink.HeaderSeqNum] {
			byRescan++
		}
	}
	var listedLate int
	for _, m := range fake.LateMatches() {
		if m.SeqNum+300 <= head {
			listedLate++
		}
	}
	calls := fake.Calls()
	perKey := make([]int, len(keys))
	var refused int
	for _, c := range calls {
		if c.Key >= 0 {
			perKey[c.Key]++
		}
		if c.Status == http.StatusTooManyRequests {
			refused++
		}
	}
	t.Logf("killed with %d records in the topic; tally: %s; %d late matches listed, %d records found by the rescan; "+
		"%d calls, %d refused (%.1f%%), per key %v; learned intervals %v s (limit %v); skipped: primary %v, rescan %v",
		killedAt, tl, listedLate, byRescan, len(calls), refused, 100*float64(refused)/float64(len(calls)), perKey,
		intervals, limit, skippedPrimary, skippedRescan)

	if tl.missing != 0 || tl.wrong != 0 {
		t.Fatalf("tally: %s; want none missing or wrong", tl)
	}
	if tl.duplicates != 0 {
		t.Errorf("%d duplicates after the kill; the pages' transactions and the cursor make it exactly once", tl.duplicates)
	}
	if listedLate == 0 || byRescan == 0 {
		t.Errorf("%d late matches listed, %d found by the rescan: the test proves nothing about late listing", listedLate, byRescan)
	}
	for _, r := range recs {
		if id, _ := strconv.ParseInt(string(r.Key), 10, 64); id == fakeIDAt(fake, broken) {
			t.Errorf("the broken match %s was published", r.Key)
		}
	}
	if skippedPrimary != 1 || skippedRescan != 1 {
		t.Errorf("ingestion_steam_skipped_total: primary %v, rescan %v; want the broken match skipped once by each", skippedPrimary, skippedRescan)
	}
	if !strings.Contains(second.out.String(), `"from_seq":`+strconv.FormatInt(broken, 10)) {
		t.Errorf("the skip is not logged with its seq %d", broken)
	}
	if f := float64(refused) / float64(len(calls)); f > 0.10 {
		t.Errorf("%.1f%% of the calls were refused, want at most 10%%", 100*f)
	}
	for i, n := range perKey {
		if n*4 < len(calls) {
			t.Errorf("key %d made %d of the %d calls, want at least a quarter", i+1, n, len(calls))
		}
	}
	if killedAt == 0 || killedAt >= len(want) {
		t.Errorf("killed with %d of %d records in the topic: not mid-scan", killedAt, len(want))
	}
	for _, k := range keys {
		for where, text := range map[string]string{
			"output": firstRun.out.String() + second.out.String(), "/metrics": metrics, "/api/v1/ready": ready,
		} {
			if strings.Contains(text, k) || strings.Contains(text, "s3cr3t") {
				t.Errorf("a key shows in %s", where)
			}
		}
	}
}

// fakeIDAt returns the match ID the fake gives seq.
func fakeIDAt(fake *steamfake.Server, seq int64) int64 {
	body, ok := fake.Body(seq)
	if !ok {
		return 0
	}
	var m struct {
		MatchID int64 `json:"match_id"`
	}
	_ = json.Unmarshal([]byte(body), &m)
	return m.MatchID
}

// TestSteamSequenceRefusesAForeignTopic: a topic that holds records but
// none with a match_seq_num (another source wrote it, or retention
// emptied the scanner's) does not make the scanner start at the head
// silently: the service exits with an error naming STEAM_START_SEQ_NUM,
// having called Steam not once. With STEAM_START_SEQ_NUM set it starts
// there.
func TestSteamSequenceRefusesAForeignTopic(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	produceAs(t, cluster, topic, &kgo.Record{Key: []byte("42"), Value: []byte(`{"match_id":42}`)})
	fake, url := steamfake.Start(t, steamfake.Options{Count: 300})
	env := steamEnv(cluster, topic, url, 0, filepath.Join(t.TempDir(), "spool"), "0")
	delete(env, "STEAM_START_SEQ_NUM")

	svc := startService(t, env)
	select {
	case <-svc.done:
	case <-time.After(time.Minute):
		t.Fatal("the service did not stop")
	}
	if code := svc.cmd.ProcessState.ExitCode(); code == 0 {
		t.Errorf("exit status 0, want a failure")
	}
	out := svc.out.String()
	if !strings.Contains(out, "none with a match_seq_num") || !strings.Contains(out, "STEAM_START_SEQ_NUM") {
		t.Errorf("the output does not say why, nor what to set:\n%s", tail(out, 3000))
	}
	if n := len(fake.Calls()); n != 0 {
		t.Errorf("%d calls to Steam before refusing", n)
	}

	env["STEAM_START_SEQ_NUM"] = strconv.FormatInt(fake.Matches()[100].SeqNum, 10)
	again := startService(t, env)
	again.waitFor(t, "200 matches published", time.Minute, func() bool {
		return again.metric(t, "ingestion_matches_published_total") == 200
	})
	if code, _ := again.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// TestSteamSequenceResumesPastAPoisonedTopic: an earlier version, without
// the bound on match_seq_num, published matches of the sequence and then
// one with match_seq_num 2^63-1 and one with 10^15. The scanner resumes
// right after the last real one, not after the bogus ones (which would
// skip every match to come, or ask Steam for a negative start); the
// service says so, and the matches after it arrive once each.
func TestSteamSequenceResumesPastAPoisonedTopic(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	fake, url := steamfake.Start(t, steamfake.Options{Count: 600, Compact: true})
	ms := fake.Matches()
	record := func(m match.Match) *kgo.Record {
		key := strconv.FormatInt(m.ID, 10)
		return &kgo.Record{Key: []byte(key), Value: []byte(`{"match_id":` + key + `}`), Headers: []kgo.RecordHeader{
			{Key: kafkasink.HeaderSeqNum, Value: []byte(strconv.FormatInt(m.SeqNum, 10))},
			{Key: kafkasink.HeaderStartTime, Value: []byte(strconv.FormatInt(m.StartTime, 10))}}}
	}
	var earlier []*kgo.Record
	for _, m := range ms[:200] {
		earlier = append(earlier, record(m))
	}
	earlier = append(earlier, record(match.Match{ID: 9_000_000_001, SeqNum: 1<<63 - 1, StartTime: 1}),
		record(match.Match{ID: 9_000_000_002, SeqNum: 1_000_000_000_000_000, StartTime: 1}))
	produceAs(t, cluster, topic, earlier...)

	env := steamEnv(cluster, topic, url, ms[0].SeqNum, filepath.Join(t.TempDir(), "spool"), "0")
	env["STEAM_RESCAN_BEHIND"] = "0" // the rescan is another test's subject
	svc := startService(t, env)
	svc.waitFor(t, "the other 400 published", time.Minute, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") >= 400
	})
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	out := svc.out.String()
	if !strings.Contains(out, "implausible match_seq_num") || !strings.Contains(out, `"records":2`) {
		t.Errorf("the service did not say it passed over 2 implausible records:\n%s", tail(out, 3000))
	}
	for _, c := range fake.Calls() {
		if c.Endpoint == steamfake.Sequence && c.StartAt != ms[200].SeqNum {
			t.Fatalf("the scanner first asked for start_at %d, want %d (right after the last real match)", c.StartAt, ms[200].SeqNum)
		}
		if c.Endpoint == steamfake.Sequence {
			break
		}
	}
	tl := tallySeq(ms, cluster.ReadCommitted(t, topic, 30*time.Second))
	t.Logf("tally: %s", tl)
	if tl.missing != 0 || tl.duplicates != 0 || tl.wrong != 2 {
		t.Fatalf("tally: %s; want every match once, and only the 2 bogus records wrong", tl)
	}
}

// produceAs writes recs to topic as another program (or an earlier
// version) would, and waits for them.
func produceAs(t *testing.T, cluster *kafkatest.Cluster, topic string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.Brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestSteamPagesExactlyOnceAcrossKill9: SOURCE=steam-sequence with a
// matches topic, real-size match objects, late listing and the rescan on.
// The service is killed with SIGKILL five times at random points of the
// scan, and on kfake Kafka also refuses every connection for 30 s (on a
// real broker TestFaultSteamPagesKafkaStopped stops it instead). Read as
// a consumer of committed data, the IDs topic and the matches topic each
// hold every listed match exactly once, every object is byte-equal to
// what the fake served, and the cursor topic's last value is the
// scanner's position.
func TestSteamPagesExactlyOnceAcrossKill9(t *testing.T) {
	cluster := kafkatest.Start(t)
	var outage func(t *testing.T) (from, to time.Time)
	if cluster.Fake != nil {
		outage = func(t *testing.T) (time.Time, time.Time) { return fakeOutage(t, cluster, 30*time.Second) }
	} else {
		t.Log("a real broker: the Kafka outage is TestFaultSteamPagesKafkaStopped's, which can stop it")
	}
	steamPagesExactlyOnce(t, cluster, outage, true)
}

// fakeOutage makes the kfake cluster close every connection for d: the
// service can reach no broker. It returns when the outage began and
// ended.
func fakeOutage(t *testing.T, cluster *kafkatest.Cluster, d time.Duration) (from, to time.Time) {
	t.Helper()
	var down atomic.Bool
	down.Store(true)
	cluster.Fake.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.Fake.KeepControl()
		if down.Load() {
			return nil, errors.New("outage"), true
		}
		return nil, nil, false
	})
	from = time.Now()
	time.Sleep(d)
	down.Store(false)
	return from, time.Now()
}

// steamPagesExactlyOnce scans a growing sequence into an IDs topic and a
// matches topic, killing the service five times at random points and,
// while the sixth run scans, calling fault unless it is nil. When
// kafkaDown, the fault leaves no broker to reach, and nothing may call
// Steam while it lasts (after a grace of 5 s for a call under way): the
// scanner waits, holding no more than its open page. Then it checks what
// TestSteamPagesExactlyOnceAcrossKill9 says.
func steamPagesExactlyOnce(t *testing.T, cluster *kafkatest.Cluster, fault func(t *testing.T) (from, to time.Time), kafkaDown bool) {
	ids, objects := cluster.Topic(t, 3), cluster.Topic(t, 3)
	fake, url := steamfake.Start(t, steamfake.Options{Count: 200, LateFraction: 0.05, LateBy: 600, HiddenEvery: 100})
	first := fake.Matches()[0].SeqNum
	// Dota's pace, ten times over: 100 new matches a second until the
	// last run has scanned for a while (and Kafka came back).
	stopGrowing := growSteam(fake, 10, 100*time.Millisecond)
	env := steamEnv(cluster, ids, url, first, filepath.Join(t.TempDir(), "spool"), "0")
	env["STEAM_MATCHES_TOPIC"] = objects
	// The rescan trails far enough behind to find the late matches: 800
	// seqs, or 10 s (1,000 seqs at this pace), past the 600 they are late.
	env["STEAM_RESCAN_BEHIND"] = "800"
	env["STEAM_RESCAN_DELAY"] = "10s"
	seed := time.Now().UnixNano()
	rnd := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("kill points from seed %d", seed)
	for kill := range 5 {
		svc := startService(t, env)
		at := 150 + rnd.IntN(500)
		svc.waitFor(t, fmt.Sprintf("%d matches published", at), time.Minute, func() bool {
			return svc.metric(t, "ingestion_matches_published_total") >= float64(at)
		})
		pos := svc.metric(t, "ingestion_steam_position")
		if kill == 0 {
			// What a page costs, Steam's answer to the commit, before any fault.
			p50, p99, n := histogramQuantiles(t, svc, "ingestion_steam_page_commit_seconds")
			t.Logf("Steam answer to commit over the first run's %d pages of up to 100 matches and their objects: p50 %s, p99 %s", n, p50, p99)
		}
		svc.kill(t)
		t.Logf("kill %d: after %d or more published, at position %.0f", kill+1, at, pos)
	}
	svc := startService(t, env)
	if fault != nil {
		svc.waitFor(t, "the scan going on", time.Minute, func() bool {
			return svc.metric(t, "ingestion_matches_published_total") >= 100
		})
		before := svc.metric(t, "ingestion_matches_published_total")
		from, to := fault(t)
		calls := 0
		for _, c := range fake.Calls() {
			if c.Endpoint == steamfake.Sequence && c.Time.After(from.Add(5*time.Second)) && c.Time.Before(to) {
				calls++
			}
		}
		committed := svc.metric(t, "ingestion_matches_published_total")
		t.Logf("a fault of %s: %d calls to Steam after its first 5 s, %.0f matches committed during it", to.Sub(from).Round(time.Second), calls, committed-before)
		if kafkaDown && calls != 0 {
			t.Fatalf("%d calls to Steam while Kafka was out; want none: the scanner must wait, not read on", calls)
		}
	}
	time.Sleep(5 * time.Second)
	stopGrowing()
	listed := fake.Matches()
	head := listed[len(listed)-1].SeqNum // the newest listed: Steam may hide the very last
	svc.waitFor(t, "both cursors at the head", 3*time.Minute, func() bool {
		return svc.metric(t, "ingestion_steam_position") == float64(head) && svc.metric(t, "ingestion_steam_rescan_position") == float64(head)
	})
	primary, rescan := svc.metric(t, "ingestion_steam_position"), svc.metric(t, "ingestion_steam_rescan_position")
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	checkExactlyOnce(t, cluster, fake, ids, objects)
	var last []byte
	for _, r := range cluster.ReadCommitted(t, ids+"-steam-cursor", time.Minute) {
		if string(r.Key) == ids {
			last = r.Value
		}
	}
	c, err := steamtxn.DecodeCursor(last)
	if err != nil || float64(c.Primary) != primary || float64(c.Rescan) != rescan {
		t.Fatalf("the cursor topic's last value %s (%v), want the scanner's positions %.0f and %.0f", last, err, primary, rescan)
	}
}

// growSteam moves fake's head by step matches every tick, as Dota does,
// until the returned function is called; it returns after the last move.
func growSteam(fake *steamfake.Server, step int64, tick time.Duration) (stop func()) {
	done, grown := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(grown)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				fake.Advance(step)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-grown }) }
}

// histogramQuantiles estimates the median and the 99th percentile of the
// histogram name in s's /metrics, as Prometheus's histogram_quantile does
// (linear within a bucket), and returns them with the sample count.
func histogramQuantiles(t *testing.T, s *service, name string) (p50, p99 time.Duration, count int) {
	t.Helper()
	type bucket struct{ le, n float64 }
	var buckets []bucket
	for _, line := range strings.Split(metricsText(t, s), "\n") {
		rest, ok := strings.CutPrefix(line, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, v, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		bound, err := strconv.ParseFloat(le, 64) // +Inf parses as infinity
		if err != nil {
			continue
		}
		buckets = append(buckets, bucket{bound, n})
	}
	if len(buckets) == 0 || buckets[len(buckets)-1].n == 0 {
		return 0, 0, 0
	}
	total := buckets[len(buckets)-1].n
	q := func(q float64) time.Duration {
		rank, lower, below := q*total, 0.0, 0.0
		for _, b := range buckets {
			if b.n >= rank {
				if math.IsInf(b.le, 1) {
					return time.Duration(lower * float64(time.Second))
				}
				frac := (rank - below) / max(b.n-below, 1)
				return time.Duration((lower + (b.le-lower)*frac) * float64(time.Second)).Round(100 * time.Microsecond)
			}
			lower, below = b.le, b.n
		}
		return 0
	}
	return q(0.5), q(0.99), int(total)
}

// TestSteamPageAbortedIsReadAgain: the broker refuses the commit of one
// page's transaction; the scan starts again from the last committed
// cursor within the same process and writes that page again. Both topics
// hold every match exactly once: a window of IDs seen, which would take
// the page read again for duplicates and drop it, must not stand in the
// way.
func TestSteamPageAbortedIsReadAgain(t *testing.T) {
	cluster := kafkatest.StartFake(t)
	ids, objects := cluster.Topic(t, 3), cluster.Topic(t, 3)
	const n = 1500
	fake, url := steamfake.Start(t, steamfake.Options{Count: n})
	var commits atomic.Int64
	cluster.Fake.ControlKey(kmsg.EndTxn.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.Fake.KeepControl()
		req := kreq.(*kmsg.EndTxnRequest)
		if !req.Commit || commits.Add(1) != 5 {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.InvalidTxnState.Code
		return resp, nil, true
	})
	env := steamEnv(cluster, ids, url, fake.Matches()[0].SeqNum, filepath.Join(t.TempDir(), "spool"), "0")
	env["STEAM_MATCHES_TOPIC"] = objects
	svc := startService(t, env)
	last := fake.Matches()[n-1].SeqNum
	svc.waitFor(t, "the whole sequence committed", time.Minute, func() bool {
		return labelled(t, svc, "ingestion_steam_committed_cursor", `cursor="primary"`) == float64(last)
	})
	if aborted := labelled(t, svc, "ingestion_steam_transactions_total", `outcome="aborted"`); aborted < 1 {
		t.Fatalf("aborted transactions %v: the broker's refusal did not take", aborted)
	}
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	checkExactlyOnce(t, cluster, fake, ids, objects)
}
