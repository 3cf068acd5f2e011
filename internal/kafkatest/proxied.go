package kafkatest

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/dota-data/ingestion-service/internal/faultproxy"
)

// StartFakeBehindProxies starts an in-process kfake cluster of the given
// number of brokers, each behind a fault proxy that it advertises: every
// connection a client makes, the bootstrap one and those to the brokers
// the metadata names, goes through a proxy. The proxies are in broker
// order; all are closed when t ends.
func StartFakeBehindProxies(t testing.TB, brokers int, opts ...kfake.Opt) (*Cluster, []*faultproxy.Proxy) {
	t.Helper()
	var mu sync.Mutex
	var proxies []*faultproxy.Proxy
	listen := faultproxy.FrontedListen(func(p *faultproxy.Proxy) {
		mu.Lock()
		proxies = append(proxies, p)
		mu.Unlock()
	})
	c := StartFake(t, append([]kfake.Opt{kfake.NumBrokers(brokers), kfake.ListenFn(listen)}, opts...)...)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range proxies {
			if err := p.Close(); err != nil {
				t.Errorf("close the proxy in front of %s: %v", p.Upstream(), err)
			}
		}
	})
	mu.Lock()
	defer mu.Unlock()
	return c, append([]*faultproxy.Proxy(nil), proxies...)
}

// ProxySetsEnv names the environment variable that lists a real cluster's
// proxied listener sets (scripts/kafka.sh start --proxied): sets
// separated by spaces, in each a listen>advertised port pair per broker,
// separated by commas.
const ProxySetsEnv = "KAFKA_TEST_PROXY_SETS"

// ProxySets starts, for each proxied listener set of the real cluster, a
// fault proxy per broker on the port the set advertises, passing on to
// the port it listens on, and returns them, a set each, closed when t
// ends. A client bootstrapped at a set's proxies reaches every broker
// through them alone, so that each set can be faulted on its own: one
// replica of a fleet cut off from Kafka while the others are not. It
// fails t if fewer than want sets were configured.
func ProxySets(t testing.TB, want int) [][]*faultproxy.Proxy {
	t.Helper()
	env := os.Getenv(ProxySetsEnv)
	var sets [][]*faultproxy.Proxy
	for _, set := range strings.Fields(env) {
		var proxies []*faultproxy.Proxy
		for _, pair := range strings.Split(set, ",") {
			listen, adv, ok := strings.Cut(pair, ">")
			if !ok {
				t.Fatalf("%s=%q: %q is not listen>advertised", ProxySetsEnv, env, pair)
			}
			p, err := faultproxy.New("127.0.0.1:"+adv, "127.0.0.1:"+listen)
			if err != nil {
				t.Fatalf("a proxy for the proxied listener on port %s: %v", listen, err)
			}
			t.Cleanup(func() { _ = p.Close() })
			proxies = append(proxies, p)
		}
		sets = append(sets, proxies)
	}
	if len(sets) < want {
		t.Fatalf("%s lists %d proxied listener sets, want %d (scripts/kafka.sh start --proxied %d)", ProxySetsEnv, len(sets), want, want)
	}
	return sets
}

// Addrs returns the proxies' addresses: a bootstrap list.
func Addrs(proxies []*faultproxy.Proxy) []string {
	out := make([]string, len(proxies))
	for i, p := range proxies {
		out[i] = p.Addr()
	}
	return out
}
