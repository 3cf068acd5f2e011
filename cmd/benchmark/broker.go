package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// partitions is the partition count of every benchmark topic.
const partitions = 3

// broker is the Kafka cluster the benchmark writes to: an in-process kfake
// cluster on loopback, or a real one.
type broker struct {
	kind    string // for the report
	addrs   []string
	fake    *kfake.Cluster // nil for a real cluster
	cl      *kgo.Client
	adm     *kadm.Client
	prefix  string
	seq     int
	created []string
}

// startBroker starts a one-broker kfake cluster when addrs is empty, else
// connects to the cluster at addrs.
func startBroker(addrs []string) (*broker, error) {
	b := &broker{prefix: fmt.Sprintf("bench-%d", time.Now().Unix())}
	if len(addrs) == 0 {
		fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, b.prefix+"-seed"))
		if err != nil {
			return nil, fmt.Errorf("start kfake: %w", err)
		}
		b.fake = fake
		b.addrs = fake.ListenAddrs()
		b.kind = "kfake (in-process, 1 broker, loopback)"
	} else {
		b.addrs = addrs
		b.kind = "Kafka at " + strings.Join(addrs, ",")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...))
	if err != nil {
		b.close(context.Background())
		return nil, fmt.Errorf("admin client: %w", err)
	}
	b.cl = cl
	b.adm = kadm.NewClient(cl)
	return b, nil
}

// newTopic creates a fresh topic named for label, with partitions
// partitions and the brokers' default replication factor.
func (b *broker) newTopic(ctx context.Context, label string) (string, error) {
	b.seq++
	name := fmt.Sprintf("%s-%s-%d", b.prefix, label, b.seq)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := b.adm.CreateTopic(ctx, partitions, -1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return "", fmt.Errorf("create topic %s: %w", name, err)
	}
	b.created = append(b.created, name)
	// A real cluster takes a moment to elect the new partitions' leaders;
	// a client producing before that backs off for up to seconds, which
	// the figures would count. Start once every partition has a leader.
	for {
		details, err := b.adm.ListTopics(ctx, name)
		if err == nil {
			if d, ok := details[name]; ok && d.Err == nil && len(d.Partitions) == partitions && allLed(d.Partitions) {
				return name, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("topic %s: no leader for every partition: %w", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// allLed reports whether every partition has a leader.
func allLed(ps kadm.PartitionDetails) bool {
	for _, p := range ps {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// warmUp writes one record keyed warmUpKey to topic and waits until the
// consumer says it has read it (warm is closed).
func (b *broker) warmUp(ctx context.Context, topic string, warm <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: topic, Key: []byte(warmUpKey), Value: []byte("{}")}
	if err := b.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("warm-up record: %w", err)
	}
	select {
	case <-warm:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the consumer did not read the warm-up record: %w", ctx.Err())
	}
}

// close deletes the topics created on a real cluster and releases
// everything. It returns the deletion error, if any.
func (b *broker) close(ctx context.Context) error {
	var err error
	if b.fake == nil && b.adm != nil && len(b.created) > 0 {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var resp kadm.DeleteTopicResponses
		if resp, err = b.adm.DeleteTopics(ctx, b.created...); err == nil {
			err = resp.Error()
		}
		if err != nil {
			err = fmt.Errorf("delete benchmark topics: %w", err)
		}
	}
	if b.cl != nil {
		b.cl.Close()
	}
	if b.fake != nil {
		b.fake.Close()
	}
	return err
}
