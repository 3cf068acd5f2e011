package fleet

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

type member struct {
	e    *Elector
	stop context.CancelFunc
	done chan struct{}
}

func startMember(t *testing.T, cluster *kafkatest.Cluster, cfg Config, name string) *member {
	t.Helper()
	m := newMember(t, cluster, cfg, name)
	m.start(t)
	return m
}

// newMember returns a member that has not joined yet: start joins.
func newMember(t *testing.T, cluster *kafkatest.Cluster, cfg Config, name string) *member {
	t.Helper()
	opts := append([]kgo.Opt{kgo.SeedBrokers(cluster.Brokers...), kgo.ClientID(name)}, cluster.Opts...)
	e, err := New(cfg, opts, slog.New(slog.DiscardHandler).With("member", name), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return &member{e: e, done: make(chan struct{})}
}

func (m *member) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go func() {
		defer close(m.done)
		if err := m.e.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-m.done })
}

// oneLeader waits until exactly one of ms leads and returns it.
func oneLeader(t *testing.T, ms []*member, timeout time.Duration) *member {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var leading []*member
		for _, m := range ms {
			if m.e.Role() == Leader {
				leading = append(leading, m)
			}
		}
		if len(leading) == 1 {
			return leading[0]
		}
		if len(leading) > 1 {
			t.Fatalf("%d members lead at once", len(leading))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader after %s", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOneLeaderAndHandOver(t *testing.T) {
	cluster := kafkatest.Start(t)
	cfg := Config{Group: "fleet-" + strconv.FormatInt(time.Now().UnixNano(), 36), Topic: "leader-" + strconv.FormatInt(time.Now().UnixNano(), 36), SessionTimeout: 6 * time.Second}
	var ms []*member
	for i := range 3 {
		ms = append(ms, startMember(t, cluster, cfg, "replica-"+strconv.Itoa(i)))
	}
	first := oneLeader(t, ms, 30*time.Second)
	if got := testutil.ToFloat64(first.e.leader); got != 1 {
		t.Fatalf("leader gauge = %v", got)
	}
	if st := first.e.Status(); !st.Up || st.Detail != "leader" {
		t.Fatalf("leader status = %+v", st)
	}

	// The leader shuts down and leaves the group: another leads, well
	// before the session timeout.
	start := time.Now()
	first.stop()
	<-first.done
	if first.e.Role() != Standby || testutil.ToFloat64(first.e.leader) != 0 {
		t.Fatalf("a stopped member still leads")
	}
	var rest []*member
	for _, m := range ms {
		if m != first {
			rest = append(rest, m)
		}
	}
	second := oneLeader(t, rest, 30*time.Second)
	t.Logf("hand-over took %s", time.Since(start))
	if testutil.ToFloat64(second.e.promotions) != 1 {
		t.Fatalf("promotions = %v", testutil.ToFloat64(second.e.promotions))
	}

	// Stability: nobody else takes over while the leader lives.
	for range 20 {
		if second.e.Role() != Leader {
			t.Fatal("the leader lost its role with nothing happening")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAbdicate(t *testing.T) {
	cluster := kafkatest.Start(t)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	cfg := Config{Group: "fleet-" + suffix, Topic: "leader-" + suffix, SessionTimeout: 6 * time.Second}
	ms := []*member{startMember(t, cluster, cfg, "a"), startMember(t, cluster, cfg, "b")}
	first := oneLeader(t, ms, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The other replica may still be joining when the first leads.
	for deadline := time.Now().Add(30 * time.Second); ; {
		n, err := first.e.Members(ctx)
		if err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Members = %d, %v; want 2", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	first.e.Abdicate()
	var other *member
	for _, m := range ms {
		if m != first {
			other = m
		}
	}
	waitLeads(t, ms, other)
	// It comes back, as a standby.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n, err := first.e.Members(ctx); err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abdicating member did not join again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if first.e.Role() != Standby || other.e.Role() != Leader {
		t.Fatalf("roles after the return: %s and %s", first.e.Role(), other.e.Role())
	}
	other.e.Abdicate() // and back
	waitLeads(t, ms, first)
}

// waitLeads waits until want is the only one of ms that leads.
func waitLeads(t *testing.T, ms []*member, want *member) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if oneLeader(t, ms, 30*time.Second) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the lead did not move")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err == nil {
		t.Fatal("New without a group succeeded")
	}
	if _, err := New(Config{Group: "g", SessionTimeout: time.Millisecond}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err == nil {
		t.Fatal("New with a 1 ms session timeout succeeded")
	}
}

// TestUnitsAreShared: with a unit of work per partition, the group gives
// each unit to exactly one member, a fair share each; when a member
// leaves, the others take its units over, and its release hook is told
// of every unit it gave up.
func TestUnitsAreShared(t *testing.T) {
	cluster := kafkatest.Start(t)
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	cfg := Config{Group: "fleet-" + id, Topic: "units-" + id, SessionTimeout: 6 * time.Second, Units: 10}
	var ms []*member
	released := make(chan []int32, 100)
	for i := range 3 {
		m := newMember(t, cluster, cfg, "replica-"+strconv.Itoa(i))
		if i == 2 {
			m.e.OnRelease(func(units []int32) { released <- units })
		}
		m.start(t)
		ms = append(ms, m)
	}
	held := func(ms []*member) (map[int32]int, []int) {
		owners := map[int32]int{}
		var counts []int
		for _, m := range ms {
			units := m.e.Units()
			counts = append(counts, len(units))
			for _, u := range units {
				owners[u]++
			}
		}
		return owners, counts
	}
	settled := func(ms []*member) []int {
		deadline := time.Now().Add(45 * time.Second)
		for {
			owners, counts := held(ms)
			ok := len(owners) == int(cfg.Units)
			for _, n := range owners {
				ok = ok && n == 1
			}
			fair := slices.Max(counts)-slices.Min(counts) <= 1
			if ok && fair {
				return counts
			}
			if time.Now().After(deadline) {
				t.Fatalf("units not shared once each and fairly: owners %v, counts %v", owners, counts)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("three members hold %v units", settled(ms))
	gone := ms[2].e.Units()
	for len(released) > 0 {
		<-released // the units it gave up as the others joined
	}
	ms[2].stop()
	<-ms[2].done
	t.Logf("two members hold %v units", settled(ms[:2]))
	var got []int32
	for len(got) < len(gone) {
		select {
		case units := <-released:
			got = append(got, units...)
		case <-time.After(10 * time.Second):
			t.Fatalf("release told of %v, want %v", got, gone)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, gone) {
		t.Fatalf("release told of %v, want the units the member held, %v", got, gone)
	}
}
