package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/faultproxy"
)

// TestFakeBehindProxies: every connection to a proxied kfake cluster goes
// through the proxies, so that a black hole on them stops a producer that
// knows every broker, and lifting it lets the record through.
func TestFakeBehindProxies(t *testing.T) {
	c, proxies := StartFakeBehindProxies(t, 3)
	if len(proxies) != 3 {
		t.Fatalf("%d proxies, want one per broker", len(proxies))
	}
	for i, p := range proxies {
		if c.Brokers[i] != p.Addr() {
			t.Fatalf("broker %d advertises %s, want its proxy's %s", i, c.Brokers[i], p.Addr())
		}
	}
	topic := c.Topic(t, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordRetries(1000))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr()
	}
	if err := produce(10 * time.Second); err != nil {
		t.Fatalf("produce through the proxies: %v", err)
	}
	for _, p := range proxies {
		p.Set(faultproxy.Fault{Blackhole: true})
	}
	held := make(chan error, 1)
	go func() { held <- produce(time.Minute) }()
	select {
	case err := <-held:
		t.Fatalf("a record went through a black hole on every proxy: %v", err)
	case <-time.After(2 * time.Second):
	}
	var accepted int
	for _, p := range proxies {
		p.Heal()
		accepted += p.Stats().Accepted
	}
	if err := <-held; err != nil {
		t.Fatalf("the record held in the black hole, after the heal: %v", err)
	}
	if accepted == 0 {
		t.Error("no connection went through a proxy")
	}
	if got := len(c.ReadToEnd(t, topic, 10*time.Second)); got < 2 {
		t.Errorf("%d records in the topic, want the two acknowledged", got)
	}
}
