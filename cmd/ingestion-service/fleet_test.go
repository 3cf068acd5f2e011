package main

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/faultproxy"
	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

// fleetEnv is the environment of one replica of a fleet reading url.
func fleetEnv(t *testing.T, cluster *kafkatest.Cluster, topic, url string) map[string]string {
	return map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     url,
		"FLEET_GROUP":             "fleet-" + topic,
		"FLEET_TOPIC":             "leader-" + topic,
		"FLEET_SESSION_TIMEOUT":   "6s",
		"STANDBY_WINDOW":          "30s",
		"STREAM_BACKOFF_MIN":      "10ms",
		"STREAM_BACKOFF_MAX":      "100ms",
		"SPOOL_DIR":               filepath.Join(t.TempDir(), "spool"),
	}
}

// startReplicas starts n replicas with env, each with a spool of its own,
// after tweak (if not nil) adjusts the environment of replica i.
func startReplicas(t *testing.T, env map[string]string, n int, tweak func(i int, e map[string]string)) []*service {
	t.Helper()
	var replicas []*service
	for i := range n {
		e := maps.Clone(env)
		e["SPOOL_DIR"] = filepath.Join(t.TempDir(), "spool-"+strconv.Itoa(i))
		if tweak != nil {
			tweak(i, e)
		}
		replicas = append(replicas, startService(t, e))
	}
	return replicas
}

// settle waits until one replica leads and all are connected to the
// stream, marks the stream (tallies count from there), and returns the
// leader.
func settle(t *testing.T, replicas []*service, stream *broadcast) int {
	t.Helper()
	first := waitOneLeader(t, replicas, time.Minute)
	deadline := time.Now().Add(time.Minute)
	for stream.clients() < len(replicas) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d replicas connected to the stream", stream.clients(), len(replicas))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stream.mark()
	return first
}

// leaders returns the indexes of the replicas that say they lead; a dead
// replica does not answer.
func leaders(t *testing.T, replicas []*service) []int {
	t.Helper()
	var out []int
	for i, r := range replicas {
		if r == nil {
			continue
		}
		if r.metric(t, "ingestion_fleet_leader") == 1 {
			out = append(out, i)
		}
	}
	return out
}

// waitOneLeader waits until exactly one replica leads, failing if two ever
// do, and returns it.
func waitOneLeader(t *testing.T, replicas []*service, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l := leaders(t, replicas)
		if len(l) > 1 {
			t.Fatalf("replicas %v lead at once", l)
		}
		if len(l) == 1 {
			return l[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica leads after %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFleetFailover: three replicas read one live stream; one leads and
// writes. It is killed with SIGKILL mid-stream; a standby takes over
// within the session timeout and publishes what its window holds that the
// old leader had not delivered. Every ID sent while a replica was
// connected is in the topic (as a consumer of committed data reads it).
func TestFleetFailover(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	stream := newBroadcast(t, 9_000_000_001, 2000)
	replicas := startReplicas(t, fleetEnv(t, cluster, topic, stream.url), 3, nil)
	first := settle(t, replicas, stream)
	leader := replicas[first]
	leader.waitFor(t, "the leader publishing", time.Minute, func() bool {
		return leader.metric(t, "ingestion_matches_published_total") >= 4000
	})
	for i, r := range replicas {
		if i != first && r.metric(t, "ingestion_standby_window_records") <= 0 {
			t.Fatalf("standby %d holds no window", i)
		}
	}
	code, body := replicas[(first+1)%3].get(t, "/api/v1/ready")
	var ready struct {
		Checks map[string]struct{ Status, Detail string }
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != 200 || ready.Checks["fleet"].Detail != "standby" {
		t.Fatalf("a standby's readiness: %d %s", code, body)
	}

	killed := time.Now()
	leader.kill(t)
	replicas[first] = nil
	next := waitOneLeader(t, replicas, 30*time.Second)
	failover := time.Since(killed)
	t.Logf("replica %d took over %s after the leader was killed", next, failover.Round(time.Millisecond))
	if failover > 15*time.Second {
		t.Errorf("failover took %s, want under 15s", failover)
	}

	newLeader := replicas[next]
	newLeader.waitFor(t, "the new leader publishing", time.Minute, func() bool {
		return newLeader.metric(t, "ingestion_matches_published_total") >= 4000
	})
	stream.Stop()
	newLeader.waitFor(t, "everything held delivered", time.Minute, func() bool {
		return newLeader.holdsNothing(t)
	})
	for _, r := range replicas {
		if r != nil {
			if code, _ := r.stop(t, 30*time.Second); code != 0 {
				t.Errorf("exit status %d", code)
			}
		}
	}
	recs := cluster.ReadCommitted(t, topic, 30*time.Second)
	tl, missing := fleetTally(stream, recs)
	t.Logf("the stream sent %d IDs in all; committed topic: %s", len(stream.all()), tl)
	if tl.missing != 0 || tl.unexpected != 0 {
		t.Fatalf("tally %s; first missing %v", tl, head(missing))
	}
	if tl.duplicates > 30*2000 {
		t.Fatalf("%d duplicates: more than the standby window holds", tl.duplicates)
	}
}

// fleetTally counts the committed records against the stream: missing
// among the IDs heard since the mark, duplicates and unexpected records
// among all.
func fleetTally(stream *broadcast, recs []*kgo.Record) (tally, []int64) {
	heard, _ := stream.heard()
	tl, missing := count(heard, recs)
	all, _ := count(stream.all(), recs)
	tl.duplicates, tl.unexpected = all.duplicates, all.unexpected
	return tl, missing
}

// TestFleetLeaderLosesTheStream: the leader's own connection to the stream
// fails (the stream refuses it) while the standbys still read it. The
// leader hands the lead over within half a session timeout, and what the
// stream sent meanwhile, held in the standbys' windows, reaches the topic.
func TestFleetLeaderLosesTheStream(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	stream := newBroadcast(t, 9_400_000_001, 2000)
	replicas := startReplicas(t, fleetEnv(t, cluster, topic, stream.url), 3, func(i int, e map[string]string) {
		e["OPENDOTA_STREAM_URL"] = stream.url + "?client=" + strconv.Itoa(i)
		e["STREAM_BACKOFF_MIN"] = "200ms"
	})
	first := settle(t, replicas, stream)
	leader := replicas[first]
	leader.waitFor(t, "the leader publishing", time.Minute, func() bool {
		return leader.metric(t, "ingestion_matches_published_total") >= 2000
	})

	lost := time.Now()
	stream.block(strconv.Itoa(first))
	deadline := time.Now().Add(30 * time.Second)
	next := -1
	for next < 0 || next == first {
		if time.Now().After(deadline) {
			t.Fatal("the leader kept the lead without the stream")
		}
		time.Sleep(20 * time.Millisecond)
		if l := leaders(t, replicas); len(l) == 1 {
			next = l[0]
		} else if len(l) > 1 {
			t.Fatalf("replicas %v lead at once", l)
		}
	}
	t.Logf("replica %d leads %s after the leader lost the stream", next, time.Since(lost).Round(time.Millisecond))
	if !strings.Contains(leader.out.String(), "The stream is down on the leader") {
		t.Error("the old leader did not say why it handed over")
	}
	nl := replicas[next]
	nl.waitFor(t, "the new leader publishing", time.Minute, func() bool {
		return nl.metric(t, "ingestion_matches_published_total") >= 2000
	})
	stream.Stop()
	nl.waitFor(t, "everything held delivered", time.Minute, func() bool {
		return nl.holdsNothing(t)
	})
	for _, r := range replicas {
		if code, _ := r.stop(t, 30*time.Second); code != 0 {
			t.Errorf("exit status %d", code)
		}
	}
	recs := cluster.ReadCommitted(t, topic, 30*time.Second)
	tl, missing := fleetTally(stream, recs)
	t.Logf("the stream sent %d IDs in all; committed topic: %s", len(stream.all()), tl)
	if tl.missing != 0 || tl.unexpected != 0 {
		t.Fatalf("tally %s; first missing %v", tl, head(missing))
	}
}

// TestFleetZombieRecovers: the leader is paused (SIGSTOP) past the
// session timeout, a standby takes over, and on SIGCONT the zombie's
// writer is fenced. The fencing is one line with its counts, not a line a
// record; within a session timeout every replica is ready again (a
// standby's readiness says whether it could lead, not what a writer it
// dropped failed); and when the zombie leads again, the backlog it kept
// from its fenced lead is matched against the topic, so nothing in the
// topic is there twice.
func TestFleetZombieRecovers(t *testing.T) {
	const rate = 2000
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	stream := newBroadcast(t, 9_400_000_001, rate)
	env := fleetEnv(t, cluster, topic, stream.url)
	replicas := startReplicas(t, env, 2, nil)
	first := settle(t, replicas, stream)
	zombie, other := replicas[first], replicas[1-first]
	zombie.waitFor(t, "the leader publishing", time.Minute, func() bool {
		return zombie.metric(t, "ingestion_matches_published_total") >= 2*rate
	})

	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	waitOneLeader(t, []*service{other}, 30*time.Second)
	t.Logf("the standby leads %s after the pause", time.Since(paused).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // the new leader writes; the zombie still believes it leads
	logBefore := len(zombie.out.String())
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	zombie.waitFor(t, "the zombie standing by", 30*time.Second, func() bool {
		return zombie.metric(t, "ingestion_fleet_leader") == 0
	})
	// The writer's end follows the demotion: its last commit is refused
	// by the brokers. (A scrape used to wait for that commit, and read
	// the count only once it was done.)
	zombie.waitFor(t, "the zombie's writer fenced (else the test proves nothing)", 30*time.Second, func() bool {
		return zombie.metric(t, "ingestion_kafka_fenced_total") >= 1
	})

	// Every replica ready again within a session timeout.
	readyIn := map[string]time.Duration{}
	for name, r := range map[string]*service{"zombie": zombie, "leader": other} {
		r.waitFor(t, name+" ready", 6*time.Second+5*time.Second, func() bool {
			code, _ := r.get(t, "/api/v1/ready")
			return code == 200
		})
		readyIn[name] = time.Since(resumed).Round(time.Millisecond)
	}
	held := zombie.metric(t, "ingestion_buffer_records") + zombie.metric(t, "ingestion_inflight_records") + zombie.metric(t, "ingestion_spool_records")
	after := zombie.out.String()[logBefore:]
	fencings, perRecord := strings.Count(after, `"event":"This replica's Kafka writer stopped`), strings.Count(after, `"event":"Failed to publish match"`)
	t.Logf("after SIGCONT: ready in %v; the zombie holds %v matches from its fenced lead; %d fencing line(s), %d per-record failure lines, %d lines at warning or error",
		readyIn, held, fencings, perRecord, strings.Count(after, `"level":"error"`)+strings.Count(after, `"level":"warning"`))
	if fencings != 1 || perRecord != 0 {
		t.Errorf("the fencing logged %d fencing lines and %d per-record lines, want 1 and 0", fencings, perRecord)
	}
	if held <= 0 {
		t.Fatalf("the zombie holds nothing from its fenced lead: the re-lead would prove nothing")
	}

	// The zombie leads again: the other replica leaves.
	if code, _ := other.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	waitOneLeader(t, []*service{zombie}, 30*time.Second)
	// The backlog matched, and the stream flowing through it (nothing is
	// left waiting on a match of the backlog). In flight is rarely empty
	// while the stream runs, on a real cluster: that is checked once it
	// has stopped.
	publishedBefore := zombie.metric(t, "ingestion_matches_published_total")
	zombie.waitFor(t, "the backlog matched and the stream flowing", time.Minute, func() bool {
		return zombie.metric(t, "ingestion_relay_already_delivered_total") > 0 &&
			zombie.metric(t, "ingestion_matches_published_total") > publishedBefore+2*rate
	})
	stream.Stop()
	zombie.waitFor(t, "everything held delivered", time.Minute, func() bool { return zombie.holdsNothing(t) })
	passedOver := zombie.metric(t, "ingestion_relay_already_delivered_total")
	if code, _ := zombie.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	recs := cluster.ReadCommitted(t, topic, 30*time.Second)
	tl, missing := fleetTally(stream, recs)
	t.Logf("the zombie passed over %v held matches the topic had; committed topic: %s", passedOver, tl)
	if tl.missing != 0 || tl.unexpected != 0 {
		t.Fatalf("tally %s; first missing %v", tl, head(missing))
	}
	if tl.duplicates != 0 {
		t.Fatalf("%d duplicates in the committed topic, want none", tl.duplicates)
	}
}

// TestFleetStandbyHandsOnItsSpool: a replica leads alone, Kafka goes out
// of its reach, and it is stopped before it can deliver: its spool keeps
// what it read. Another replica leads from then on. Started again on its
// spool, the first is a standby, and what it kept is in no one's window:
// it hands it on, once, through a producer of its own. Every ID the
// stream sent while a replica was connected reaches the topic.
func TestFleetStandbyHandsOnItsSpool(t *testing.T) {
	cluster, kafka := kafkatest.StartFakeBehindProxies(t, 1)
	topic := cluster.Topic(t, 3)
	stream := newBroadcast(t, 9_700_000_001, 200)
	env := fleetEnv(t, cluster, topic, stream.url)
	env["KAFKA_BOOTSTRAP_SERVERS"] = strings.Join(kafkatest.Addrs(kafka), ",")
	env["STANDBY_WINDOW"] = "10s"
	env["SHUTDOWN_TIMEOUT"] = "3s"
	envA, envB := maps.Clone(env), maps.Clone(env)
	envA["SPOOL_DIR"] = filepath.Join(t.TempDir(), "a")
	envB["SPOOL_DIR"] = filepath.Join(t.TempDir(), "b")

	a := startService(t, envA)
	waitOneLeader(t, []*service{a}, time.Minute)
	a.waitFor(t, "the leader publishing", time.Minute, func() bool {
		return a.metric(t, "ingestion_matches_published_total") >= 200
	})
	for _, p := range kafka {
		p.Set(faultproxy.Fault{Blackhole: true})
	}
	time.Sleep(2 * time.Second) // less than the session timeout: it still leads
	// Nothing is sent while the first replica stops and the second
	// starts: a frame the stream sends into a connection being closed
	// is lost to a stream without replay, whatever the service does.
	stream.pause()
	time.Sleep(time.Second)
	if code, _ := a.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("the first replica exited %d", code)
	}
	for _, p := range kafka {
		p.Set(faultproxy.Fault{})
	}
	b := startService(t, envB)
	waitOneLeader(t, []*service{b}, time.Minute)
	b.waitFor(t, "the second replica reading the stream", time.Minute, func() bool { return stream.clients() == 1 })
	stream.resume()
	a = startService(t, envA)
	both := []*service{a, b}
	a.waitFor(t, "the restarted replica, a standby, to hand on what it kept", time.Minute, func() bool {
		return strings.Contains(a.out.String(), "Handed on the matches kept from the lead")
	})
	if a.metric(t, "ingestion_fleet_leader") != 0 || !a.holdsNothing(t) {
		t.Fatal("the restarted replica leads, or still holds matches after it handed them on")
	}
	stream.Stop()
	b.waitFor(t, "everything delivered", time.Minute, func() bool { return allHoldNothing(t, both) })
	for _, s := range both {
		if code, _ := s.stop(t, 30*time.Second); code != 0 {
			t.Errorf("exit status %d", code)
		}
	}
	recs := cluster.ReadCommitted(t, topic, time.Minute)
	tl, missing := fleetTally(stream, recs)
	handedOn := 0
	for _, r := range recs {
		if !r.Attrs.IsTransactional() {
			handedOn++
		}
	}
	t.Logf("the stream sent %d IDs; committed topic: %s; %d handed on outside a transaction", len(stream.all()), tl, handedOn)
	if tl.missing != 0 || tl.unexpected != 0 || tl.duplicates != 0 {
		t.Errorf("tally %s; first missing %v", tl, head(missing))
	}
	if handedOn == 0 {
		t.Error("no record was written outside a transaction: the restarted standby handed on nothing")
	}
}

// allHoldNothing reports whether no replica holds a match: none in its
// relay's memory, in flight or in its spool. A nil replica (killed) holds
// nothing.
func allHoldNothing(t *testing.T, replicas []*service) bool {
	t.Helper()
	for _, r := range replicas {
		if r != nil && !r.holdsNothing(t) {
			return false
		}
	}
	return true
}
