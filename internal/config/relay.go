package config

import (
	"github.com/dota-data/ingestion-service/internal/dedup"
	"github.com/dota-data/ingestion-service/internal/relay"
	"github.com/dota-data/ingestion-service/internal/spool"
)

// The relay, its spool and the de-duplication window stand between a
// live source and Kafka; the Steam scans write Kafka transactions and
// replay from their committed cursors, and use none of them.
var relayVars = []Var{
	{Name: "BUFFER_MAX_RECORDS", Default: "100000", Sources: liveSources, Help: "matches held in memory before spilling to disk (overflow) or blocking/dropping (memory)",
		value: func(c Config) string { return itoa(c.Relay.MaxRecords) }},
	{Name: "SPOOL_MODE", Default: string(relay.Overflow), Sources: liveSources, Help: "overflow (memory, then disk), disk (write every match ahead) or memory (no disk); ignored with `SOURCE=steam-sequence`, which writes Kafka transactions and needs no spool",
		value: func(c Config) string { return string(c.Relay.Mode) }},
	{Name: "SPOOL_DIR", Default: "spool", Help: "directory of the disk spool, relative to the working directory unless absolute",
		value: func(c Config) string { return c.Spool.Dir }},
	{Name: "SPOOL_MAX_BYTES", Default: "1GiB", Sources: liveSources, Help: "cap on the spool's files; bytes, or with KiB, MiB, GiB",
		value: func(c Config) string { return bytesText(c.Spool.MaxBytes) }},
	{Name: "SPOOL_FSYNC", Default: "1s", Sources: liveSources, Help: "always (fsync every match), an interval such as 100ms, or never (leave it to the OS)",
		value: func(c Config) string { return c.Spool.Sync.String() }},
	{Name: "SPOOL_WHEN_FULL", Default: string(relay.Block), Sources: liveSources, Help: "block (stop reading the stream) or drop_newest (count and log each dropped match)",
		value: func(c Config) string { return string(c.Relay.WhenFull) }},
	{Name: "DEDUP_WINDOW", Default: "50000", Sources: liveSources, Help: "skip an ID seen among the last N matches (a count) or within a duration such as 10m; 0 disables. Not used by `steam-sequence`, which reads each seq once per committed page",
		value: func(c Config) string { return c.Dedup.String() }},
}

// relay reads the relay's settings; maxInFlight is the Kafka client's
// share of the matches held.
func (r *reader) relay(maxInFlight int) relay.Config {
	return relay.Config{
		Mode:        relay.Mode(r.oneOf("SPOOL_MODE", false, string(relay.Overflow), string(relay.Disk), string(relay.Memory))),
		WhenFull:    relay.WhenFull(r.oneOf("SPOOL_WHEN_FULL", false, string(relay.Block), string(relay.DropNewest))),
		MaxRecords:  r.integer("BUFFER_MAX_RECORDS", 1, 100_000_000),
		MaxInFlight: maxInFlight,
	}
}

// spool reads the disk spool's settings.
func (r *reader) spool() spool.Options {
	return spool.Options{
		Dir:      r.str("SPOOL_DIR"),
		MaxBytes: r.bytes("SPOOL_MAX_BYTES"),
		Sync:     r.syncPolicy("SPOOL_FSYNC"),
	}
}

// dedup reads the de-duplication window: a count or an age.
func (r *reader) dedup() dedup.Limit {
	return parsed(r, "DEDUP_WINDOW", "want a count such as 50000 or a duration such as 10m", func(s string) (dedup.Limit, bool) {
		l, err := dedup.ParseLimit(s)
		return l, err == nil
	})
}

// bytesText writes a size as SPOOL_MAX_BYTES is written: in the largest
// binary unit that divides it.
func bytesText(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return itoa(n/u.size) + u.suffix
		}
	}
	return itoa(n)
}
