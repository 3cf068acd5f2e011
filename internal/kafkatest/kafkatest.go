// Package kafkatest gives tests a Kafka cluster to talk to over TCP: the
// brokers named by KAFKA_TEST_BROKERS when it is set (a real Apache Kafka
// cluster), otherwise an in-process kfake cluster on loopback. Each test
// gets a fresh topic, and helpers read a topic back to check what landed.
package kafkatest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BrokersEnv names the environment variable that points the tests at a real
// cluster: a comma-separated list of host:port.
const BrokersEnv = "KAFKA_TEST_BROKERS"

// Cluster is a Kafka cluster for one test.
type Cluster struct {
	// Brokers are the bootstrap addresses.
	Brokers []string
	// Fake is the in-process cluster, or nil against a real one.
	Fake *kfake.Cluster
	// Opts are the client options needed to reach the cluster (TLS, SASL);
	// the helpers' own clients use them.
	Opts []kgo.Opt
}

// Real reports whether the tests run against a real cluster.
func Real() bool { return os.Getenv(BrokersEnv) != "" }

// Start returns the cluster for t: the real one when BrokersEnv is set,
// else a one-broker kfake cluster that is closed when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if env := os.Getenv(BrokersEnv); env != "" {
		return &Cluster{Brokers: strings.Split(env, ",")}
	}
	return StartFake(t)
}

// StartFake starts an in-process kfake cluster on loopback, closed when t
// ends, whatever BrokersEnv says.
func StartFake(t testing.TB, opts ...kfake.Opt) *Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Cluster{Brokers: c.ListenAddrs(), Fake: c}
}

var topicSeq atomic.Int64

// Topic creates a new topic with the given number of partitions and returns
// its name, unique to this process run.
func (c *Cluster) Topic(t testing.TB, partitions int32) string {
	t.Helper()
	name := fmt.Sprintf("test-%s-%d-%d", sanitize(t.Name()), time.Now().UnixNano()%1e9, topicSeq.Add(1))
	adm := c.Admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return name
}

// Admin returns an admin client for the cluster, closed when t ends.
func (c *Cluster) Admin(t testing.TB) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...)}, c.Opts...)...)
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// ReadAll consumes topic from the start until it has seen want records or
// timeout passes, and returns the records it saw. It fails t on a fetch
// error; a short count is for the caller to judge.
func (c *Cluster) ReadAll(t testing.TB, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, c.Opts...)...)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		out = append(out, fetches.Records()...)
	}
	return out
}

// ReadToEnd consumes topic from the start up to the end each partition
// has now, and returns every record, duplicates and records of aborted
// transactions included. It fails t on an error or if the end is not
// reached within timeout.
func (c *Cluster) ReadToEnd(t testing.TB, topic string, timeout time.Duration) []*kgo.Record {
	t.Helper()
	return c.readToEnd(t, topic, timeout, false)
}

// ReadCommitted is ReadToEnd as a consumer reading committed data sees
// the topic: up to each partition's last stable offset, without the
// records of aborted or open transactions.
//
// A broker answers a commit once the coordinator has logged its decision
// and writes the transaction's markers to the partitions after that, so
// for a moment after a commit the last stable offset still stops short of
// it. ReadCommitted first waits, for up to settleWait, until no partition
// has a transaction in doubt (its last stable offset is its high
// watermark); a transaction a test leaves open on purpose only costs the
// wait.
func (c *Cluster) ReadCommitted(t testing.TB, topic string, timeout time.Duration) []*kgo.Record {
	t.Helper()
	c.settle(t, topic, settleWait)
	return c.readToEnd(t, topic, timeout, true)
}

// settleWait bounds how long ReadCommitted waits for markers to land.
const settleWait = 10 * time.Second

// settle waits until every partition of topic has its last stable offset
// at its high watermark, or wait has passed.
func (c *Cluster) settle(t testing.TB, topic string, wait time.Duration) {
	t.Helper()
	adm := c.Admin(t)
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stable, err := adm.ListCommittedOffsets(ctx, topic)
		var ends kadm.ListedOffsets
		if err == nil {
			ends, err = adm.ListEndOffsets(ctx, topic)
		}
		cancel()
		if err == nil && stable.Error() == nil && ends.Error() == nil {
			settled := true
			ends.Each(func(o kadm.ListedOffset) {
				if s, ok := stable.Lookup(topic, o.Partition); !ok || s.Offset < o.Offset {
					settled = false
				}
			})
			if settled {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Logf("%s: a transaction is still in doubt after %s; reading what is stable", topic, wait)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// EachCommitted is ReadCommitted handing each record to fn as it comes
// instead of keeping them all: for topics too large to hold at once.
func (c *Cluster) EachCommitted(t testing.TB, topic string, timeout time.Duration, fn func(*kgo.Record)) {
	t.Helper()
	c.settle(t, topic, settleWait)
	c.eachToEnd(t, topic, timeout, true, fn)
}

func (c *Cluster) readToEnd(t testing.TB, topic string, timeout time.Duration, committed bool) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	c.eachToEnd(t, topic, timeout, committed, func(r *kgo.Record) { out = append(out, r) })
	return out
}

func (c *Cluster) eachToEnd(t testing.TB, topic string, timeout time.Duration, committed bool, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	adm := c.Admin(t)
	list := adm.ListEndOffsets
	if committed {
		list = adm.ListCommittedOffsets
	}
	ends, err := list(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Transaction markers may end a partition: see them, to know it.
		kgo.KeepControlRecords(),
	}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(append(opts, c.Opts...)...)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	for len(left) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d partitions short of their end after %s", topic, len(left), timeout)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				fn(r)
			}
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if len(out) > 100 {
		out = out[:100]
	}
	return out
}
