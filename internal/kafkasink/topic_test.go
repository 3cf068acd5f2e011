package kafkasink

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/logtest"
	"github.com/dota-data/ingestion-service/internal/match"
)

func runSink(t *testing.T, s *Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func uniqueTopic(t *testing.T) string {
	return fmt.Sprintf("absent-%d", time.Now().UnixNano())
}

func TestMissingTopicKeepsSinkNotReadyAndRecordsWait(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := uniqueTopic(t)
	s, _, logs := newSink(t, Config{Brokers: cluster.Brokers, Topic: topic, ProbeInterval: 50 * time.Millisecond})
	runSink(t, s)
	for i := int64(1); i <= 50; i++ {
		if err := s.Publish(context.Background(), match.Match{ID: i}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "not ready for a missing topic", 20*time.Second, func() bool {
		st := s.Status()
		return !st.Up && strings.Contains(st.Detail, "KAFKA_CREATE_TOPIC")
	})
	// Let several probes pass: the error is logged once, not per probe.
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(logs.String(), "Kafka topic does not exist"); n != 1 {
		t.Fatalf("missing topic logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"topic":"`+topic+`"`) {
		t.Fatalf("the error does not name the topic")
	}
	if s.Failed() != 0 {
		t.Fatalf("%d records failed while the topic was missing; they must wait", s.Failed())
	}

	// An operator creates the topic: the sink becomes ready and the held
	// records land.
	adm := cluster.Admin(t)
	if _, err := adm.CreateTopic(context.Background(), 2, -1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	waitFor(t, "ready once the topic exists", 30*time.Second, func() bool { return s.Status().Up })
	waitFor(t, "held records published", 60*time.Second, func() bool { return s.Published() == 50 })
	if got := len(cluster.ReadAll(t, topic, 50, 20*time.Second)); got != 50 {
		t.Fatalf("topic holds %d records, want 50", got)
	}
}

func TestCreateTopicWhenAsked(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := uniqueTopic(t)
	s, _, logs := newSink(t, Config{
		Brokers: cluster.Brokers, Topic: topic, ProbeInterval: 50 * time.Millisecond,
		CreateTopic: true, TopicPartitions: 4, TopicReplicationFactor: 1,
	})
	runSink(t, s)
	waitFor(t, "ready after creating the topic", 30*time.Second, func() bool { return s.Status().Up })
	if !strings.Contains(logs.String(), "Created Kafka topic") {
		t.Fatalf("no creation logged")
	}
	details, err := cluster.Admin(t).ListTopics(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(details[topic].Partitions); got != 4 {
		t.Fatalf("created topic has %d partitions, want 4", got)
	}
	if err := s.Publish(context.Background(), match.Match{ID: 42}); err != nil {
		t.Fatal(err)
	}
	recs := cluster.ReadAll(t, topic, 1, 20*time.Second)
	if len(recs) != 1 || string(recs[0].Key) != "42" {
		t.Fatalf("records = %v", recs)
	}
}

// TestCreateTopicLogsWhatTheBrokersMade: a topic created with the
// brokers' defaults (-1) is logged with the partitions and replication
// factor they chose; one that exists already is neither an error nor
// logged as created.
func TestCreateTopicLogsWhatTheBrokersMade(t *testing.T) {
	cluster := kafkatest.Start(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	topic := uniqueTopic(t)
	ctx := context.Background()
	created, err := createTopic(ctx, cl, topic, Config{}.topicSpec(), log)
	if err != nil || !created {
		t.Fatalf("created %t, %v", created, err)
	}
	lines := logs.Lines(t, "Created Kafka topic")
	if len(lines) != 1 {
		t.Fatalf("%d lines say the topic was created: %s", len(lines), logs.String())
	}
	// A broker's metadata may list a topic created a moment ago without
	// its partitions yet: ask again until it lists them.
	var partitions int
	for deadline := time.Now().Add(10 * time.Second); partitions == 0 && time.Now().Before(deadline); {
		details, err := cluster.Admin(t).ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if partitions = len(details[topic].Partitions); partitions == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if got, want := lines[0]["partitions"], float64(partitions); got != want || want < 1 {
		t.Errorf("logged partitions %v, the topic has %v", got, want)
	}
	if rf, ok := lines[0]["replication_factor"].(float64); !ok || rf < 1 {
		t.Errorf("logged replication factor %v", lines[0]["replication_factor"])
	}
	created, err = createTopic(ctx, cl, topic, Config{}.topicSpec(), log)
	if err != nil || created {
		t.Fatalf("again: created %t, %v; want an existing topic, no error", created, err)
	}
	if n := len(logs.Lines(t, "Created Kafka topic")); n != 1 {
		t.Errorf("an existing topic was logged as created (%d lines)", n)
	}
}
