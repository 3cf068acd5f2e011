package kafkasink

import (
	"context"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicProbe is what the cluster says of one topic, without writing to it.
type TopicProbe struct {
	// Topic is the topic's name.
	Topic string
	// Err is the cluster's refusal for the topic (UNKNOWN_TOPIC_OR_PARTITION
	// when it does not exist, TOPIC_AUTHORIZATION_FAILED, ...), or nil.
	Err error
	// Partitions counts its partitions; Leaderless, those without a
	// leader at the moment.
	Partitions, Leaderless int
	// CanWrite is "yes" or "no" when the brokers report the client's
	// authorized operations on the topic, "not reported" otherwise (a
	// broker older than Kafka 2.3, or one that says nothing).
	CanWrite string
}

// Probe connects to the cluster cfg names, as the sink does (TLS, SASL),
// and returns the number of brokers it reports and what it says of each
// topic. It writes nothing and creates nothing.
func Probe(ctx context.Context, cfg Config, topics ...string) (brokers int, probes []TopicProbe, err error) {
	opts, err := cfg.ConnOpts()
	if err != nil {
		return 0, nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.IncludeTopicAuthorizedOperations = true
	for _, topic := range topics {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, nil, fmt.Errorf("metadata from %v: %w", cfg.Brokers, err)
	}
	for _, t := range resp.Topics {
		p := TopicProbe{Err: kerr.ErrorForCode(t.ErrorCode), Partitions: len(t.Partitions), CanWrite: "not reported"}
		if t.Topic != nil {
			p.Topic = *t.Topic
		}
		for _, part := range t.Partitions {
			if part.Leader < 0 || kerr.ErrorForCode(part.ErrorCode) != nil {
				p.Leaderless++
			}
		}
		if ops := t.AuthorizedOperations; ops != math.MinInt32 && ops != 0 {
			p.CanWrite = "no"
			if ops&(1<<kmsg.ACLOperationWrite) != 0 {
				p.CanWrite = "yes"
			}
		}
		probes = append(probes, p)
	}
	return len(resp.Brokers), probes, nil
}
