package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

// TestPublishRefusalIsNotFlooded: a broker refuses every record as too
// large for 15 s while a stream sends 100 matches a second, then takes
// them again. The service writes at most 10 warning or error lines about
// it over those 15 s (it wrote some 800, a retry pass every 20 ms),
// readiness names what is held and why, and every match sent is in the
// topic once the broker takes records again.
func TestPublishRefusalIsNotFlooded(t *testing.T) {
	cluster := kafkatest.StartFake(t)
	topic := cluster.Topic(t, 3)
	var refusing atomic.Bool
	refusing.Store(true)
	cluster.Fake.ControlKey(kmsg.Produce.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.Fake.KeepControl()
		if !refusing.Load() {
			return nil, nil, false
		}
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.MessageTooLarge.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	stream := newBroadcast(t, 7_000_000_001, 100)
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     stream.url,
		"SPOOL_DIR":               filepath.Join(t.TempDir(), "spool"),
		"LOG_SUMMARY_INTERVAL":    "0",
	})
	svc.waitFor(t, "the stream connected", 30*time.Second, func() bool { return stream.clients() == 1 })
	began := len(svc.out.String())
	time.Sleep(7 * time.Second)
	if code, body := svc.get(t, "/api/v1/ready"); !strings.Contains(body, "held: MESSAGE_TOO_LARGE") {
		t.Errorf("ready = %d %s; want the buffer's check naming what Kafka refuses", code, body)
	}
	time.Sleep(8 * time.Second)
	during := svc.out.String()[began:]
	refusing.Store(false)
	lines := 0
	for _, l := range strings.Split(during, "\n") {
		if strings.Contains(l, `"level":"warning"`) || strings.Contains(l, `"level":"error"`) {
			lines++
		}
	}
	stream.Stop()
	sent, _ := stream.heard() // sent while the service was connected
	svc.waitFor(t, "every match delivered", time.Minute, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") >= float64(len(sent))
	})
	svc.waitFor(t, "the end of the refusals logged", 10*time.Second, func() bool {
		return strings.Contains(svc.out.String(), "Kafka takes the matches it refused again")
	})
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	got := map[string]int{}
	for _, r := range cluster.ReadCommitted(t, topic, time.Minute) {
		got[string(r.Key)]++
	}
	missing := 0
	for _, id := range sent {
		if got[strconv.FormatInt(id, 10)] == 0 {
			missing++
		}
	}
	t.Logf("15 s of refusals at 100/s: %d warning and error lines; %d sent, %d missing once the broker took records again", lines, len(sent), missing)
	if lines > 10 || missing > 0 {
		t.Fatalf("%d warning and error lines in 15 s (want at most 10), %d of %d missing:\n%s", lines, missing, len(sent), during)
	}
	if testing.Verbose() {
		t.Logf("the lines:\n%s", during)
	}
}
