package config

import (
	"time"

	"github.com/dota-data/ingestion-service/internal/fleet"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
)

var fleetVars = []Var{
	{Name: "FLEET_GROUP", Help: "run as one replica of a fleet: replicas with the same group elect one writer through Kafka; empty runs alone; see [Fleet mode](fleet.md)",
		value: func(c Config) string { return c.Fleet.Group }},
	{Name: "FLEET_TOPIC", Default: fleet.DefaultTopic, Help: "coordination topic of the fleet, a partition per unit of work: the lead, then each backfill shard (created, or given more partitions, as needed)",
		value: func(c Config) string { return c.Fleet.Topic }},
	{Name: "FLEET_SESSION_TIMEOUT", Default: durationText(fleet.DefaultSessionTimeout), Help: "a leader silent this long is replaced (the longest failover); 6s to 30s on default brokers",
		value: func(c Config) string { return durationText(c.Fleet.SessionTimeout) }},
	{Name: "FLEET_COMMIT_INTERVAL", Default: durationText(kafkasink.DefaultCommitInterval), Help: "how often the leader commits its Kafka transaction",
		value: func(c Config) string { return durationText(c.Kafka.CommitInterval) }},
	{Name: "STANDBY_WINDOW", Default: durationText(fleet.DefaultStandbyWindow), Help: "how far back a standby keeps the matches it read, to publish those the old leader had not when it takes over",
		value: func(c Config) string { return durationText(c.Fleet.StandbyWindow) }},
}

// fleet reads the fleet's settings. A standby's window must outlast the
// session timeout: it must still hold what a dead leader read before the
// group noticed.
func (r *reader) fleet() fleet.Config {
	f := fleet.Config{
		Group:          r.set("FLEET_GROUP"),
		Topic:          r.str("FLEET_TOPIC"),
		SessionTimeout: r.positiveDuration("FLEET_SESSION_TIMEOUT", time.Second),
		StandbyWindow:  r.positiveDuration("STANDBY_WINDOW", time.Second),
	}
	if f.Enabled() && f.StandbyWindow <= f.SessionTimeout {
		r.fail("STANDBY_WINDOW", durationText(f.StandbyWindow), "want longer than FLEET_SESSION_TIMEOUT ("+durationText(f.SessionTimeout)+"): a standby must still hold what the old leader read before it died")
	}
	return f
}
