package kafkasink

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

// TestProbeReportsTopicsWithoutWriting: an existing topic with its
// partitions and leaders, a missing one with the broker's refusal, and
// nothing created.
func TestProbeReportsTopicsWithoutWriting(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	missing := topic + "-missing"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	brokers, probes, err := Probe(ctx, Config{Brokers: cluster.Brokers, ExtraOpts: cluster.Opts}, topic, missing)
	if err != nil {
		t.Fatal(err)
	}
	if brokers < 1 || len(probes) != 2 {
		t.Fatalf("%d brokers, probes %+v", brokers, probes)
	}
	for _, p := range probes {
		switch p.Topic {
		case topic:
			if p.Err != nil || p.Partitions != 3 || p.Leaderless != 0 {
				t.Errorf("existing topic: %+v, want 3 partitions, all led", p)
			}
		case missing:
			if !errors.Is(p.Err, kerr.UnknownTopicOrPartition) {
				t.Errorf("missing topic: %+v, want UNKNOWN_TOPIC_OR_PARTITION", p)
			}
		default:
			t.Errorf("a probe of %q, asked for none", p.Topic)
		}
	}
	if _, again, _ := Probe(ctx, Config{Brokers: cluster.Brokers, ExtraOpts: cluster.Opts}, missing); len(again) != 1 || again[0].Err == nil {
		t.Fatalf("the probe created %s: %+v", missing, again)
	}
	if _, _, err := Probe(ctx, Config{Brokers: []string{"127.0.0.1:1"}, ExtraOpts: cluster.Opts}, topic); err == nil {
		t.Fatal("a cluster that does not answer: want an error")
	}
}
