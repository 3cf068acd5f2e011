// Package backfill reads Steam's match sequence from the past: a bounded
// range of seqs split into shards, each scanned forward from its start to
// its end and written exactly once, each page in one Kafka transaction
// with the shard's cursor (steamtxn). The replicas of a fleet share the
// shards through Kafka's consumer-group protocol (fleet.Elector: a
// partition of the coordination topic per shard); a replica alone scans
// them all. Progress is in the cursor topic, where `backfill status`
// reads it.
package backfill

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dota-data/ingestion-service/internal/steamseq"
)

// Bound is one end of a backfill's range as configured: a match_seq_num,
// or a date (00:00 UTC that day) that the service turns into a seq by a
// search over the sequence's start times.
type Bound struct {
	// Seq is the match_seq_num, when the bound was given as one.
	Seq int64
	// Date is the day, when the bound was given as one.
	Date time.Time
}

// ParseBound reads a bound: a positive integer (a match_seq_num) or a
// date, YYYY-MM-DD (UTC).
func ParseBound(s string) (Bound, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 1 {
			return Bound{}, errors.New("want a match_seq_num from 1, or a date such as 2024-01-01")
		}
		return Bound{Seq: n}, nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Bound{}, errors.New("want a match_seq_num from 1, or a date such as 2024-01-01 (UTC)")
	}
	if d.Before(FirstDay) {
		return Bound{}, fmt.Errorf("want a date from %s, when Steam's sequence begins", FirstDay.Format(time.DateOnly))
	}
	return Bound{Date: d}, nil
}

// FirstDay is the first day of Steam's match sequence: its first matches
// are dated 2011-03-03 (joshuaduffy/dota2api#57).
var FirstDay = time.Date(2011, 3, 1, 0, 0, 0, 0, time.UTC)

// IsZero reports whether b is unset.
func (b Bound) IsZero() bool { return b.Seq == 0 && b.Date.IsZero() }

// String writes b as it was given.
func (b Bound) String() string {
	if b.Seq > 0 {
		return strconv.FormatInt(b.Seq, 10)
	}
	if !b.Date.IsZero() {
		return b.Date.Format(time.DateOnly)
	}
	return ""
}

// Config configures a backfill. Its zero value (no range) runs none.
type Config struct {
	// From is the first seq of the range (or the day it starts at).
	From Bound
	// To is the end of the range, excluded (or the day it ends before).
	To Bound
	// Shards is how many equal shards the range is split into; default
	// DefaultShards.
	Shards int
	// Forward reports whether the forward scan runs too (on the fleet's
	// lead): it then has the keys first. STEAM_FORWARD_SCAN=false runs
	// the backfill alone.
	Forward bool
}

// DefaultShards is Config.Shards when unset: enough for a fleet of a few
// replicas to share evenly, few enough that each shard's transactional
// writer is cheap.
const DefaultShards = 16

// MaxShards bounds Config.Shards: each shard is a partition of the
// coordination topic and a transactional writer while held.
const MaxShards = 1024

// Enabled reports whether a range is configured.
func (c Config) Enabled() bool { return !c.From.IsZero() || !c.To.IsZero() }

// Split returns the shards of r: n ranges of equal length (the first ones
// a seq longer when r does not divide evenly), in order, covering r. It
// returns fewer when r holds fewer than n seqs.
func Split(r steamseq.Range, n int) []steamseq.Range {
	total := r.Len()
	if n < 1 || total == 0 {
		return nil
	}
	if int64(n) > total {
		n = int(total)
	}
	size, extra := total/int64(n), total%int64(n)
	out := make([]steamseq.Range, 0, n)
	from := r.From
	for i := range int64(n) {
		to := from + size
		if i < extra {
			to++
		}
		out = append(out, steamseq.Range{From: from, To: to})
		from = to
	}
	return out
}
