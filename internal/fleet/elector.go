// Package fleet lets replicas of the service agree, through Kafka alone, on
// which one of them publishes.
//
// Every replica joins one consumer group (Config.Group) on a coordination
// topic of one partition (Config.Topic). Kafka's group protocol gives that
// partition to exactly one live member: that member leads. When it leaves,
// is killed or stops heartbeating for Config.SessionTimeout, the group
// rebalances and another member is given the partition. An Elector reports
// this replica's role as the group changes; it does not fence anything by
// itself: a deposed leader that is paused may still believe it leads until
// it hears from the group again, which is why the leader writes through a
// transactional producer whose ID all replicas share (see kafkasink), so
// that the broker refuses the old leader's writes once the new one starts.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
)

// Config configures an Elector. Zero fields take the default in their
// comment; Group is required.
type Config struct {
	// Group is the consumer group the replicas share. Replicas with the
	// same Group (and Topic) elect one leader among them.
	Group string
	// Topic is the coordination topic; default DefaultTopic. It needs one
	// partition, and is created with one (and the brokers' replication
	// factor) if it does not exist. Nothing is ever written to it.
	Topic string
	// SessionTimeout is how long the group waits for a silent member
	// before giving its partition to another: the longest a failover
	// takes; default 10s. Kafka bounds it with group.min.session.timeout.ms
	// (6s by default) and group.max.session.timeout.ms.
	SessionTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
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

// Elector takes part in the election of one leader among the replicas.
type Elector struct {
	cfg  Config
	opts []kgo.Opt
	log  *slog.Logger

	mu      sync.Mutex
	role    Role
	changed chan struct{} // signalled on every change of role
	resign  chan struct{} // Abdicate's request

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
	e.state.Set(true, string(r))
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// Run joins the group and follows it until ctx ends, then leaves it (so
// that another replica leads at once rather than after the session
// timeout) and returns nil. It makes sure the coordination topic exists
// first, retrying while the brokers cannot be reached.
func (e *Elector) Run(ctx context.Context) error {
	if err := e.ensureTopic(ctx); err != nil {
		return nil // ctx ended
	}
	owns := func(assigned map[string][]int32) bool {
		for _, p := range assigned[e.cfg.Topic] {
			if p == 0 {
				return true
			}
		}
		return false
	}
	opts := append(append([]kgo.Opt(nil), e.opts...),
		kgo.ConsumerGroup(e.cfg.Group),
		kgo.ConsumeTopics(e.cfg.Topic),
		kgo.SessionTimeout(e.cfg.SessionTimeout),
		kgo.HeartbeatInterval(e.cfg.SessionTimeout/5),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			e.state.Set(true, string(e.Role()))
			if owns(assigned) {
				e.setRole(Leader, "the group assigned the coordination partition to this replica")
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
			if owns(revoked) {
				e.setRole(Standby, "the group moved the coordination partition")
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			if owns(lost) {
				e.setRole(Standby, "this replica lost its group membership")
			}
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
		if n := len(d.Partitions); n != 1 {
			e.log.Error("The fleet's coordination topic should have one partition", "topic", e.cfg.Topic, "partitions", n)
		}
		return nil
	}
	resp, err := adm.CreateTopic(rctx, 1, -1, nil, e.cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create %s: %w", e.cfg.Topic, err)
	}
	return nil
}
