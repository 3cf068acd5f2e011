// Package fleet lets replicas of the service share work through Kafka
// alone: which one of them publishes, and which backfill shards each
// scans.
//
// Every replica joins one consumer group (Config.Group) on a coordination
// topic (Config.Topic) whose partitions are units of work (Config.Units):
// partition 0 is the lead (the one writer of the live source), partition
// 1+i is backfill shard i. Kafka's group protocol gives each partition to
// exactly one live member, spread evenly and moved as little as possible
// (the cooperative-sticky balancer): a member that joins takes a fair
// share without the others stopping, and one that leaves, is killed or
// stops heartbeating for Config.SessionTimeout loses its units to the
// others. An Elector reports which units this replica holds as the group
// changes; it does not fence anything by itself: a deposed owner that is
// paused may still believe it holds a unit until it hears from the group
// again, which is why each unit is written through a transactional
// producer whose ID every replica shares for that unit (see kafkasink and
// steamtxn), so that the broker refuses the old owner's writes once the
// new one starts.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/health"
)

// Defaults of Config.
const (
	DefaultTopic          = "ingestion-service-leader"
	DefaultSessionTimeout = 10 * time.Second
	DefaultStandbyWindow  = 30 * time.Second
)

// Config configures an Elector. Zero fields take the default in their
// comment; Group is required.
type Config struct {
	// Group is the consumer group the replicas share. Replicas with the
	// same Group (and Topic) elect one leader among them.
	Group string
	// Topic is the coordination topic; default DefaultTopic. It needs
	// Units partitions, and is created with them (and the brokers'
	// replication factor) if it does not exist, or given more if it has
	// fewer. Nothing is ever written to it.
	Topic string
	// Units is how many units of work the group shares: the lead
	// (partition 0) and the backfill shards; default 1, the lead alone.
	Units int32
	// SessionTimeout is how long the group waits for a silent member
	// before giving its partition to another: the longest a failover
	// takes; default 10s. Kafka bounds it with group.min.session.timeout.ms
	// (6s by default) and group.max.session.timeout.ms.
	SessionTimeout time.Duration
	// StandbyWindow is how far back a standby's Window keeps the matches
	// it read (the Elector does not use it): longer than SessionTimeout, so
	// that a promoted standby still holds what the dead leader had read
	// and not written.
	StandbyWindow time.Duration
}

// Enabled reports whether the service runs as one replica of a fleet: a
// Group is named.
func (c Config) Enabled() bool { return c.Group != "" }

func (c Config) withDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.Units < 1 {
		c.Units = 1
	}
	return c
}

// Role is a replica's part in the fleet.
type Role string

// The roles.
const (
	// Standby: another replica leads, or none is known yet.
	Standby Role = "standby"
	// Leader: this replica holds the coordination partition.
	Leader Role = "leader"
)

// Elector takes part in sharing the units of work among the replicas:
// the lead, and the backfill shards.
type Elector struct {
	cfg  Config
	opts []kgo.Opt
	log  *slog.Logger

	mu       sync.Mutex
	role     Role
	owned    map[int32]bool  // the units this replica holds
	changed  chan struct{}   // signalled on every change of role
	watchers []chan struct{} // signalled on every change of the units held
	release  func(units []int32)
	resign   chan struct{} // Abdicate's request

	state      *health.State
	leader     prometheus.Gauge
	promotions prometheus.Counter
}

// New returns an Elector that reaches the brokers with opts (seed brokers,
// TLS, SASL; the group options are its own), with its metrics registered on
// reg. It starts as Standby.
func New(cfg Config, opts []kgo.Opt, log *slog.Logger, reg prometheus.Registerer) (*Elector, error) {
	cfg = cfg.withDefaults()
	if cfg.Group == "" {
		return nil, errors.New("fleet: a group is required")
	}
	if cfg.SessionTimeout < time.Second {
		return nil, fmt.Errorf("fleet: session timeout %s is under a second", cfg.SessionTimeout)
	}
	e := &Elector{
		cfg:     cfg,
		opts:    opts,
		log:     log,
		role:    Standby,
		owned:   map[int32]bool{},
		changed: make(chan struct{}, 1),
		resign:  make(chan struct{}, 1),
		state:   health.NewState("joining the group " + cfg.Group),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingestion_fleet_leader",
			Help: "1 while this replica leads the fleet and publishes, else 0.",
		}),
		promotions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestion_fleet_promotions_total",
			Help: "Times this replica became the leader.",
		}),
	}
	for _, c := range []prometheus.Collector{e.leader, e.promotions} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("fleet: register metrics: %w", err)
		}
	}
	return e, nil
}

// Role returns this replica's current role.
func (e *Elector) Role() Role {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.role
}

// Changed is signalled (it has room for one signal, which is kept until
// read) whenever the role changes; read Role after it fires.
func (e *Elector) Changed() <-chan struct{} { return e.changed }

// Units returns the units of work this replica holds, ascending: 0 is
// the lead, 1+i backfill shard i.
func (e *Elector) Units() []int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]int32, 0, len(e.owned))
	for u := range e.owned {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// Watch returns a channel signalled (it has room for one signal, kept
// until read) whenever the units this replica holds change; read Units
// after it fires. Call it before Run.
func (e *Elector) Watch() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := make(chan struct{}, 1)
	e.watchers = append(e.watchers, ch)
	return ch
}

// OnRelease makes the Elector call release with the units the group takes
// from this replica, before it lets the group give them to another (a
// revocation), so that their work stops before a new owner starts it; it
// should return within a few seconds. Call it before Run.
func (e *Elector) OnRelease(release func(units []int32)) { e.release = release }

// assigned notes that the group gave this replica units.
func (e *Elector) assigned(units []int32) {
	e.setUnits(units, true)
}

// revoked notes that the group took units from this replica, and stops
// their work first.
func (e *Elector) revoked(units []int32) {
	if e.release != nil && len(units) > 0 {
		e.release(units)
	}
	e.setUnits(units, false)
}

func (e *Elector) setUnits(units []int32, held bool) {
	e.mu.Lock()
	changed := false
	for _, u := range units {
		if e.owned[u] != held {
			changed = true
			if held {
				e.owned[u] = true
			} else {
				delete(e.owned, u)
			}
		}
	}
	watchers := e.watchers
	e.mu.Unlock()
	if !changed {
		return
	}
	for _, w := range watchers {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Status reports membership for readiness: up once the replica is in the
// group, with its role as the detail.
func (e *Elector) Status() health.Status { return e.state.Status() }

func (e *Elector) setRole(r Role, why string) {
	e.mu.Lock()
	old := e.role
	e.role = r
	e.mu.Unlock()
	if old == r {
		return
	}
	if r == Leader {
		e.leader.Set(1)
		e.promotions.Inc()
		e.log.Info("This replica now leads the fleet", "group", e.cfg.Group, "why", why)
	} else {
		e.leader.Set(0)
		e.log.Warn("This replica no longer leads the fleet", "group", e.cfg.Group, "why", why)
	}
	e.state.Set(true, e.detail())
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// detail describes this replica's part for readiness: its role, and the
// shards it holds when the group shares any.
func (e *Elector) detail() string {
	d := string(e.Role())
	if e.cfg.Units <= 1 {
		return d
	}
	var shards []string
	for _, u := range e.Units() {
		if u > 0 {
			shards = append(shards, strconv.Itoa(int(u-1)))
		}
	}
	return fmt.Sprintf("%s; backfill shards held: %d of %d [%s]", d, len(shards), e.cfg.Units-1, strings.Join(shards, " "))
}

// Run joins the group and follows it until ctx ends, then leaves it (so
// that another replica leads at once rather than after the session
// timeout) and returns nil. It makes sure the coordination topic exists
// first, retrying while the brokers cannot be reached.
func (e *Elector) Run(ctx context.Context) error {
	if err := e.ensureTopic(ctx); err != nil {
		return nil // ctx ended
	}
	owns := func(units []int32) bool { return slices.Contains(units, 0) }
	opts := append(append([]kgo.Opt(nil), e.opts...),
		kgo.ConsumerGroup(e.cfg.Group),
		kgo.ConsumeTopics(e.cfg.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(e.cfg.SessionTimeout),
		kgo.HeartbeatInterval(e.cfg.SessionTimeout/5),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			units := assigned[e.cfg.Topic]
			e.assigned(units)
			e.state.Set(true, e.detail())
			if owns(units) {
				e.setRole(Leader, "the group assigned the coordination partition to this replica")
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
			units := revoked[e.cfg.Topic]
			if owns(units) {
				e.setRole(Standby, "the group moved the coordination partition")
			}
			e.revoked(units)
			e.state.Set(true, e.detail())
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			units := lost[e.cfg.Topic]
			if owns(units) {
				e.setRole(Standby, "this replica lost its group membership")
			}
			e.revoked(units)
			e.state.Set(false, "lost the group membership; rejoining")
		}),
	)
	for {
		resigned, err := e.member(ctx, opts)
		if err != nil {
			return err
		}
		if !resigned {
			e.state.Set(false, "stopped")
			return nil
		}
		// Stay out for a session timeout, so that another member takes
		// the partition, then join again as a standby.
		e.state.Set(true, "standby (handed over the lead)")
		if !backoff.Wait(ctx, e.cfg.SessionTimeout) {
			e.state.Set(false, "stopped")
			return nil
		}
	}
}

// member is one membership of the group: it joins, follows the group until
// ctx ends or Abdicate asks, then leaves (so that another member takes over
// at once) and reports whether it left to abdicate.
func (e *Elector) member(ctx context.Context, opts []kgo.Opt) (resigned bool, err error) {
	select {
	case <-e.resign: // a request that came as the role changed: stale
	default:
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return false, fmt.Errorf("fleet: group client: %w", err)
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go func() {
		select {
		case <-e.resign:
			resigned = true
			stopPoll()
		case <-pollCtx.Done():
		}
	}()
	for {
		fs := cl.PollFetches(pollCtx)
		if pollCtx.Err() != nil {
			break
		}
		fs.EachError(func(_ string, _ int32, err error) {
			e.log.Warn("Fleet group poll failed", "group", e.cfg.Group, "error", err)
		})
	}
	stopPoll()
	why := "shutting down"
	if ctx.Err() == nil {
		why = "handing the lead to another replica"
	}
	e.setRole(Standby, why)
	e.revoked(e.Units())
	leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.LeaveGroupContext(leaveCtx); err != nil {
		e.log.Warn("Leaving the fleet group failed; the others wait for the session timeout", "error", err)
	}
	cl.Close()
	return resigned && ctx.Err() == nil, nil
}

// Abdicate makes a leading replica leave the group for a session timeout,
// so that another member leads, then join again as a standby. It does
// nothing unless this replica leads.
func (e *Elector) Abdicate() {
	if e.Role() != Leader {
		return
	}
	select {
	case e.resign <- struct{}{}:
	default:
	}
}

// Members returns how many replicas the group has now, as its coordinator
// describes it.
func (e *Elector) Members(ctx context.Context) (int, error) {
	cl, err := kgo.NewClient(e.opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	groups, err := kadm.NewClient(cl).DescribeGroups(ctx, e.cfg.Group)
	if err != nil {
		return 0, err
	}
	g, ok := groups[e.cfg.Group]
	if !ok {
		return 0, fmt.Errorf("group %s not described", e.cfg.Group)
	}
	if g.Err != nil {
		return 0, g.Err
	}
	return len(g.Members), nil
}

// ensureTopic creates the coordination topic with one partition if it is
// missing, and checks that it has exactly one. It returns only when that is
// done or ctx ends; a topic with more partitions is logged once as an error
// and used anyway (partition 0 still elects).
func (e *Elector) ensureTopic(ctx context.Context) error {
	cl, err := kgo.NewClient(e.opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for attempt := 0; ; attempt++ {
		err := e.tryTopic(ctx, adm)
		if err == nil {
			return nil
		}
		e.state.Set(false, "coordination topic: "+err.Error())
		if attempt == 0 || attempt%30 == 0 {
			e.log.Warn("Cannot set up the fleet's coordination topic; retrying", "topic", e.cfg.Topic, "error", err)
		}
		if !backoff.Wait(ctx, time.Second) {
			return ctx.Err()
		}
	}
}

func (e *Elector) tryTopic(ctx context.Context, adm *kadm.Client) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	details, err := adm.ListTopics(rctx, e.cfg.Topic)
	if err != nil {
		return err
	}
	if d, ok := details[e.cfg.Topic]; ok && d.Err == nil {
		switch n := int32(len(d.Partitions)); {
		case n < e.cfg.Units:
			resp, err := adm.UpdatePartitions(rctx, int(e.cfg.Units), e.cfg.Topic)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				return fmt.Errorf("add partitions to %s for %d units of work: %w", e.cfg.Topic, e.cfg.Units, err)
			}
			e.log.Info("Gave the fleet's coordination topic a partition per unit of work", "topic", e.cfg.Topic, "partitions", e.cfg.Units, "had", n)
		case n > e.cfg.Units:
			e.log.Warn("The fleet's coordination topic has more partitions than units of work; the group assigns the extra ones too, which hold no work",
				"topic", e.cfg.Topic, "partitions", n, "units", e.cfg.Units)
		}
		return nil
	}
	resp, err := adm.CreateTopic(rctx, e.cfg.Units, -1, nil, e.cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create %s: %w", e.cfg.Topic, err)
	}
	return nil
}
