//go:build faults

package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The fleet's fault tests: three replicas on a three-node cluster (start
// --brokers 3), a live stream at 2,000 IDs/s. Each prints the tally of the
// committed topic against the IDs sent while a replica was connected, and
// the failover time.

const fleetRate = 2000

// replicaSet is the replicas of the service reading one stream.
type replicaSet struct {
	t        *testing.T
	envs     []map[string]string
	replicas []*service
}

func startFleet(t *testing.T, c *realCluster, topic, url string, n int) *replicaSet {
	t.Helper()
	f := &replicaSet{t: t}
	base := fleetEnv(t, c.Cluster, topic, url)
	base["FLEET_SESSION_TIMEOUT"] = "10s"
	f.replicas = startReplicas(t, base, n, func(_ int, e map[string]string) { f.envs = append(f.envs, e) })
	return f
}

// stopAll stops the live replicas with SIGTERM.
func (f *replicaSet) stopAll() {
	for _, r := range f.replicas {
		if r != nil && r.cmd.ProcessState == nil {
			if code, _ := r.stop(f.t, 60*time.Second); code != 0 {
				f.t.Errorf("exit status %d", code)
			}
		}
	}
}

// createFleetTopic creates a topic of 3 partitions, replication factor 3,
// min.insync.replicas=2.
func createFleetTopic(t *testing.T, c *realCluster) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := fmt.Sprintf("test-%s-%d", t.Name(), time.Now().UnixNano()%1e9)
	minISR := "2"
	resp, err := c.Admin(t).CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	return topic
}

// checkOneWriterAtATime fails unless, in every partition, the producer
// epochs of the committed records never go back: once a new leader's
// writer (a higher epoch of the shared transactional ID) wrote, no record
// of an older one follows it. Records written outside a transaction are
// a standby's hand-off of what it kept from a lead, and not a leader's:
// it returns how many there were.
func checkOneWriterAtATime(t *testing.T, recs []*kgo.Record) (handedOn int) {
	t.Helper()
	type writer struct {
		id    int64
		epoch int16
	}
	last := map[int32]writer{}
	writers := map[writer]int{}
	for _, r := range recs {
		if !r.Attrs.IsTransactional() {
			handedOn++
			continue
		}
		w := writer{r.ProducerID, r.ProducerEpoch}
		writers[w]++
		if prev, ok := last[r.Partition]; ok && (w.id != prev.id || w.epoch < prev.epoch) {
			t.Fatalf("partition %d: a record of producer %d epoch %d (offset %d) after one of producer %d epoch %d: two writers",
				r.Partition, w.id, w.epoch, r.Offset, prev.id, prev.epoch)
		}
		last[r.Partition] = w
	}
	// Kafka 4's transactions (KIP-890) bump the epoch at the end of each
	// transaction, so a writer shows as a run of epochs: summed per ID.
	type run struct{ from, to, epochs, records int }
	byID := map[int64]*run{}
	for w, n := range writers {
		r := byID[w.id]
		if r == nil {
			r = &run{from: int(w.epoch), to: int(w.epoch)}
			byID[w.id] = r
		}
		r.from, r.to = min(r.from, int(w.epoch)), max(r.to, int(w.epoch))
		r.epochs++
		r.records += n
	}
	for id, r := range byID {
		t.Logf("writer %d in the committed topic: %d records, %d epochs from %d to %d", id, r.records, r.epochs, r.from, r.to)
	}
	if handedOn > 0 {
		t.Logf("handed on by standbys, outside transactions: %d records", handedOn)
	}
	return handedOn
}

// settle waits until every replica is connected to the stream and one
// leads, then marks the stream: the tallies count from there.
func (f *replicaSet) settle(stream *broadcast) int {
	f.t.Helper()
	return settle(f.t, f.replicas, stream)
}

// finish stops the stream, lets the leader deliver what it holds, stops
// every replica, and checks the committed topic.
func (f *replicaSet) finish(stream *broadcast, c *realCluster, topic string) tally {
	t := f.t
	t.Helper()
	stream.Stop()
	l := waitOneLeader(t, f.replicas, time.Minute)
	f.replicas[l].waitFor(t, "everything held delivered", 2*time.Minute, func() bool {
		return allHoldNothing(t, f.replicas)
	})
	f.stopAll()
	recs := c.ReadCommitted(t, topic, time.Minute)
	tl, missing := fleetTally(stream, recs)
	t.Logf("the stream sent %d IDs in all; committed topic: %s", len(stream.all()), tl)
	if tl.missing != 0 || tl.unexpected != 0 {
		t.Fatalf("tally %s; first missing %v", tl, head(missing))
	}
	if tl.duplicates > 30*fleetRate {
		t.Fatalf("%d duplicates: more than the standby window holds", tl.duplicates)
	}
	checkOneWriterAtATime(t, recs)
	return tl
}

// TestFaultFleetLeaderKilled: SIGKILL of the leader mid-stream; a standby
// leads within 15 s and nothing is missing.
func TestFaultFleetLeaderKilled(t *testing.T) {
	c := needRealCluster(t, 3)
	topic := createFleetTopic(t, c)
	stream := newBroadcast(t, 9_100_000_001, fleetRate)
	f := startFleet(t, c, topic, stream.url, 3)
	first := f.settle(stream)
	leader := f.replicas[first]
	leader.waitFor(t, "the leader publishing", time.Minute, func() bool {
		return leader.metric(t, "ingestion_matches_published_total") >= 5*fleetRate
	})
	killed := time.Now()
	leader.kill(t)
	f.replicas[first] = nil
	next := waitOneLeader(t, f.replicas, time.Minute)
	failover := time.Since(killed)
	t.Logf("failover: replica %d leads %s after the leader was killed", next, failover.Round(time.Millisecond))
	if failover > 15*time.Second {
		t.Errorf("failover took %s, want at most 15s", failover)
	}
	nl := f.replicas[next]
	nl.waitFor(t, "the new leader publishing", time.Minute, func() bool {
		return nl.metric(t, "ingestion_matches_published_total") >= 5*fleetRate
	})
	f.finish(stream, c, topic)
}

// TestFaultFleetZombieLeader: the leader is paused with SIGSTOP for 30 s
// (a zombie); a standby takes over; on SIGCONT the zombie's writes are
// refused by the brokers (its writer is fenced), and none reaches the
// committed topic.
func TestFaultFleetZombieLeader(t *testing.T) {
	c := needRealCluster(t, 3)
	topic := createFleetTopic(t, c)
	stream := newBroadcast(t, 9_200_000_001, fleetRate)
	f := startFleet(t, c, topic, stream.url, 3)
	first := f.settle(stream)
	zombie := f.replicas[first]
	zombie.waitFor(t, "the leader publishing", time.Minute, func() bool {
		return zombie.metric(t, "ingestion_matches_published_total") >= 5*fleetRate
	})
	paused := time.Now()
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	others := append([]*service(nil), f.replicas...)
	others[first] = nil
	next := waitOneLeader(t, others, time.Minute)
	t.Logf("failover: replica %d leads %s after the leader was paused", next, time.Since(paused).Round(time.Millisecond))
	time.Sleep(time.Until(paused.Add(30 * time.Second)))
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	zombie.waitFor(t, "the zombie to stand by", time.Minute, func() bool {
		return zombie.metric(t, "ingestion_fleet_leader") == 0
	})
	// The writer's end follows the demotion: its last commit is refused.
	deadline := time.Now().Add(30 * time.Second)
	for zombie.metric(t, "ingestion_kafka_fenced_total") < 1 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	fenced := zombie.metric(t, "ingestion_kafka_fenced_total")
	aborted := zombie.metric(t, `ingestion_kafka_transactions_total{outcome="aborted"}`)
	t.Logf("the zombie after SIGCONT: fenced %v time(s), %v transaction(s) aborted, %v records failed",
		fenced, aborted, zombie.metric(t, "ingestion_publish_errors_total"))
	if fenced < 1 {
		t.Errorf("the zombie's writer was never refused by the brokers")
	}
	if got := len(leaders(t, f.replicas)); got != 1 {
		t.Fatalf("%d replicas lead after the zombie woke", got)
	}
	// Within a session timeout of the fencing, every replica is ready:
	// the zombie's readiness is about whether it could lead.
	fencedAt := time.Now()
	for i, r := range f.replicas {
		r.waitFor(t, fmt.Sprintf("replica %d ready", i), 10*time.Second, func() bool {
			code, _ := r.get(t, "/api/v1/ready")
			return code == 200
		})
	}
	t.Logf("every replica ready %s after the zombie stood by", time.Since(fencedAt).Round(time.Millisecond))
	f.finish(stream, c, topic)
}

// TestFaultFleetRollingRestart: each replica in turn is stopped with
// SIGTERM and started again while the stream goes on; nothing is missing.
func TestFaultFleetRollingRestart(t *testing.T) {
	c := needRealCluster(t, 3)
	topic := createFleetTopic(t, c)
	stream := newBroadcast(t, 9_300_000_001, fleetRate)
	f := startFleet(t, c, topic, stream.url, 3)
	f.settle(stream)
	for i := range f.replicas {
		r := f.replicas[i]
		wasLeader := r.metric(t, "ingestion_fleet_leader") == 1
		start := time.Now()
		if code, _ := r.stop(t, 60*time.Second); code != 0 {
			t.Fatalf("replica %d exit status %d", i, code)
		}
		f.replicas[i] = nil
		waitOneLeader(t, f.replicas, time.Minute)
		f.replicas[i] = startService(t, f.envs[i])
		f.replicas[i].waitFor(t, "the restarted replica ready", time.Minute, func() bool {
			code, _ := f.replicas[i].get(t, "/api/v1/ready")
			return code == 200 && stream.clients() == 3
		})
		t.Logf("replica %d (leader: %v) restarted in %s", i, wasLeader, time.Since(start).Round(time.Millisecond))
		time.Sleep(3 * time.Second) // the stream goes on before the next restart
	}
	f.finish(stream, c, topic)
}
