//go:build faults

package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/faultproxy"
	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

// cutOff is the fleet's own fault: the leader alone cut off from Kafka (a
// black hole on its links to every broker) while it still reads the
// stream, as when its node loses the route to the brokers.
var cutOff = faultproxy.Scenario{Name: "the leader cut off from Kafka", Kafka: faultproxy.Fault{Blackhole: true}, KafkaUnreachable: true}

// fleetPhase is what one fault did to a fleet.
type fleetPhase struct {
	phase
	// failover is, for cutOff, how long after the fault another replica
	// led; -1 if none did.
	failover time.Duration
}

// TestNetFaultsFleet: a fleet of three replicas of a live stream at 100
// matches a second, each with proxies of its own to the three brokers of a
// real cluster (scripts/kafka.sh start --brokers 3 --proxied 3) and to the
// stream. Each network fault holds on every link, then the leader is cut
// off from Kafka alone while it still reads the stream: a standby leads
// within 15 s, and once healed the old leader stands by. Nothing the
// stream sent while the replicas were connected is missing after a fault
// on the Kafka links alone, duplicates stay within the standby window, one
// writer at a time, and each phase keeps the bounds of checkPhases.
func TestNetFaultsFleet(t *testing.T) {
	const rate = 100
	c := needRealCluster(t, 3)
	sets := kafkatest.ProxySets(t, 3)
	topic := createFleetTopic(t, c)
	stream := newBroadcast(t, 9_500_000_001, rate)
	var sources, brokers []*faultproxy.Proxy
	for _, set := range sets {
		brokers = append(brokers, set...)
	}
	replicas := startReplicas(t, fleetEnv(t, c.Cluster, topic, stream.url), 3, func(i int, e map[string]string) {
		url, p := proxyURL(t, stream.url+"?client="+strconv.Itoa(i))
		sources = append(sources, p)
		e["OPENDOTA_STREAM_URL"] = url
		e["KAFKA_BOOTSTRAP_SERVERS"] = strings.Join(kafkatest.Addrs(sets[i]), ",")
		e["API_PPROF"] = "true"
	})
	settle(t, replicas, stream)
	// Each fault begins on a settled fleet: its leader writing, not still
	// taking over (a promotion under the first fault measured that
	// instead).
	waitFleetSettled(t, replicas, "before the faults")
	mons := make([]*monitor, len(replicas))
	for i, r := range replicas {
		mons[i] = startMonitor(t, r, 250*time.Millisecond)
	}
	d := netFaultSeconds(t)
	var phases []fleetPhase
	var marks []int
	mark := func() { marks = append(marks, len(stream.all())) }
	for _, f := range netScenarios(t, append(faultproxy.Scenarios(), cutOff)) {
		links := netLinks{kafka: brokers, source: sources}
		leader := waitOneLeader(t, replicas, time.Minute)
		if f.Name == cutOff.Name {
			links = netLinks{kafka: sets[leader]}
		}
		mark()
		p := runFleetPhase(t, replicas, mons, links, f, leader, d)
		mark()
		phases = append(phases, p)
		t.Logf("%s: %s; failover %s", f.Name, p.summary(), dur(p.failover))
	}
	mark()
	for _, m := range mons {
		m.halt()
	}

	stream.Stop()
	waitAllDelivered(t, replicas)
	(&replicaSet{t: t, replicas: replicas}).stopAll()
	recs := c.ReadCommitted(t, topic, time.Minute)
	tl, _ := fleetTally(stream, recs)
	checkOneWriterAtATime(t, recs)
	if tl.unexpected != 0 || tl.duplicates > 30*rate { // STANDBY_WINDOW is 30 s
		t.Errorf("%d unexpected records, %d duplicates (the standby window holds %d)", tl.unexpected, tl.duplicates, 30*rate)
	}
	flat := make([]phase, len(phases))
	for i := range phases {
		flat[i] = phases[i].phase
	}
	attribute(flat, marks, stream.all(), recs)
	for i := range phases {
		phases[i].phase = flat[i]
	}
	logTable(t, "a fleet of three replicas of a live stream at 100/s", flat)
	t.Logf("in all (since the replicas settled): %s", tl)
	for _, p := range phases {
		switch {
		case p.fault.Source == (faultproxy.Fault{}) && p.missing != 0:
			t.Errorf("%s: %d of %d IDs sent missing, with the stream's links untouched", p.fault.Name, p.missing, p.sent)
		case p.missingAfterHeal != 0:
			t.Errorf("%s: %d IDs sent after the heal missing", p.fault.Name, p.missingAfterHeal)
		}
		if p.fault.Name == cutOff.Name && (p.failover < 0 || p.failover > 15*time.Second) {
			t.Errorf("%s: a standby led %s after, want within 15 s", p.fault.Name, dur(p.failover))
		}
	}
	checkPhases(t, "fleet", flat)
}

// runFleetPhase holds f on links for d, heals it, and waits until one
// replica leads, every replica is ready and none has a backlog.
// leader is the replica that led when the fault began.
func runFleetPhase(t *testing.T, replicas []*service, mons []*monitor, links netLinks, f faultproxy.Scenario, leader int, d time.Duration) fleetPhase {
	t.Helper()
	p := fleetPhase{phase: phase{fault: f, from: time.Now()}, failover: -1}
	t.Logf("%s: on for %s", f.Name, d)
	links.set(f)
	for time.Since(p.from) < d {
		for _, r := range replicas {
			select {
			case err := <-r.done:
				t.Fatalf("%s: a replica exited (%v)", f.Name, err)
			default:
			}
		}
		if p.failover < 0 {
			if l := leaders(t, replicas); len(l) == 1 && l[0] != leader {
				p.failover = time.Since(p.from)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	links.heal()
	p.healed = time.Now()
	before := make([]float64, len(mons))
	for i, m := range mons {
		before[i] = m.last("ingestion_matches_published_total", p.healed)
	}
	next := waitFleetSettled(t, replicas, f.Name)
	time.Sleep(time.Second)
	p.ready = time.Now()
	p.firstRecordAfter = mons[next].firstRise("ingestion_matches_published_total", before[next], p.healed, p.ready)
	p.logs = map[string]int{}
	var unready, ready []time.Duration
	for i, m := range mons {
		u, r := m.readiness(p.from, p.healed, p.ready)
		if f.Name != cutOff.Name || i == leader {
			unready = append(unready, u)
		}
		ready = append(ready, r)
		p.peakRSS = max(p.peakRSS, m.peakRSS(p.from, p.ready))
		for cause, n := range logCauses(replicas[i].out.String(), p.from, p.ready) {
			p.logs[cause] = max(p.logs[cause], n)
		}
	}
	p.unreadyAfter, p.readyAfter = slowest(unready), slowest(ready)
	return p
}

// waitFleetSettled waits until one replica leads, every replica is ready
// and none has a backlog (a standby hands on what it kept from a lead),
// and returns the leader; what names the moment in the failure.
func waitFleetSettled(t *testing.T, replicas []*service, what string) int {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		l := leaders(t, replicas)
		ready := 0
		for _, r := range replicas {
			if r.readiness().code == 200 {
				ready++
			}
		}
		if len(l) == 1 && ready == len(replicas) && noBacklog(t, replicas, l[0]) {
			return l[0]
		}
		if time.Now().After(deadline) {
			var state strings.Builder
			for i, r := range replicas {
				fmt.Fprintf(&state, "\nreplica %d: holds %v records (buffer, in flight, spool); readiness %s", i,
					[]float64{r.metric(t, "ingestion_buffer_records"), r.metric(t, "ingestion_inflight_records"), r.metric(t, "ingestion_spool_records")},
					r.readiness().body)
			}
			t.Fatalf("%s: 3 minutes on, leaders %v, %d of %d replicas ready:%s", what, l, ready, len(replicas), state.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// slowest returns the longest of ds, or -1 (never) if any is.
func slowest(ds []time.Duration) time.Duration {
	var out time.Duration
	for _, d := range ds {
		if d < 0 {
			return -1
		}
		out = max(out, d)
	}
	return out
}

// TestFleetOutageLongerThanTheWindow: Kafka out of reach of every replica
// for three standby windows, then back for the standbys first, so that
// one of them leads. While Kafka is out of a replica's reach its window
// keeps every match (no leader can be known to write them), so the new
// leader holds the whole outage and publishes what the topic lacks; the
// old leader, a standby once its links heal, hands on what its relay
// kept that the topic lacks. Nothing the stream sent is missing, and
// duplicates stay within a window.
func TestFleetOutageLongerThanTheWindow(t *testing.T) {
	const rate = 100
	// Longer than a replica takes to find Kafka out of reach (its probe's
	// 10 s timeout): until then its window forgets by age.
	const window = 20 * time.Second
	c := needRealCluster(t, 3)
	sets := kafkatest.ProxySets(t, 3)
	topic := createFleetTopic(t, c)
	stream := newBroadcast(t, 9_600_000_001, rate)
	env := fleetEnv(t, c.Cluster, topic, stream.url)
	env["STANDBY_WINDOW"] = window.String()
	replicas := startReplicas(t, env, 3, func(i int, e map[string]string) {
		e["KAFKA_BOOTSTRAP_SERVERS"] = strings.Join(kafkatest.Addrs(sets[i]), ",")
	})
	settle(t, replicas, stream)
	old := waitFleetSettled(t, replicas, "before the outage")
	// The outage begins on a leader that writes, not one still starting
	// its writer: what it read before is then in Kafka or in its relay.
	before := replicas[old].metric(t, "ingestion_matches_published_total")
	replicas[old].waitFor(t, "the leader writing", time.Minute, func() bool {
		return replicas[old].metric(t, "ingestion_matches_published_total") >= before+2*rate
	})
	cut := func(i int, f faultproxy.Fault) {
		for _, p := range sets[i] {
			p.Set(f)
		}
	}
	for i := range replicas {
		cut(i, faultproxy.Fault{Blackhole: true})
	}
	t.Logf("Kafka cut off from every replica for %s; replica %d led", 3*window, old)
	time.Sleep(3 * window)
	for i := range replicas {
		if i != old {
			cut(i, faultproxy.Fault{})
		}
	}
	var next int
	replicas[old].waitFor(t, "a standby leading", time.Minute, func() bool {
		l := leaders(t, replicas)
		if len(l) == 1 && l[0] != old {
			next = l[0]
			return true
		}
		return false
	})
	t.Logf("replica %d leads; the old leader's links heal", next)
	cut(old, faultproxy.Fault{})
	waitFleetSettled(t, replicas, "after the outage")
	stream.Stop()
	waitAllDelivered(t, replicas)
	out := replicas[old].out.String()
	(&replicaSet{t: t, replicas: replicas}).stopAll()
	recs := c.ReadCommitted(t, topic, time.Minute)
	tl, missing := fleetTally(stream, recs)
	t.Logf("the stream sent %d IDs; committed topic: %s", len(stream.all()), tl)
	if tl.missing != 0 || tl.unexpected != 0 {
		t.Errorf("tally %s; first missing %v", tl, head(missing))
	}
	if tl.duplicates > int(window.Seconds())*rate {
		t.Errorf("%d duplicates: more than a standby window holds", tl.duplicates)
	}
	handedOn := checkOneWriterAtATime(t, recs)
	t.Logf("the old leader handed on %d records the new leader's window lacked", handedOn)
	if !strings.Contains(out, "Matching the backlog from an earlier lead against the topic") {
		t.Errorf("the old leader did not match what it kept against the topic:\n%s", tail(eventful(out), 4000))
	}
}

// noBacklog reports whether no replica has a backlog: the leader (at
// index leader) has nothing in its relay's memory or spool, only records
// under way to Kafka, which a live stream always has, and the standbys
// hold nothing at all.
func noBacklog(t *testing.T, replicas []*service, leader int) bool {
	t.Helper()
	for i, r := range replicas {
		switch {
		case r == nil:
		case i == leader:
			if r.metric(t, "ingestion_buffer_records") != 0 || r.metric(t, "ingestion_spool_records") != 0 {
				return false
			}
		case !r.holdsNothing(t):
			return false
		}
	}
	return true
}

// waitAllDelivered waits until no replica holds a match.
func waitAllDelivered(t *testing.T, replicas []*service) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !allHoldNothing(t, replicas) {
		if time.Now().After(deadline) {
			t.Fatal("2 minutes on, a replica still holds matches")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
