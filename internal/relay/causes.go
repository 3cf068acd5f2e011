package relay

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dota-data/ingestion-service/internal/backoff"
)

// failure is a delivery the Producer reported failed.
type failure struct {
	token uint64
	err   error
}

// retry is a failed delivery waiting to be tried again.
type retry struct {
	token uint64
	at    time.Time
}

// cause is one reason deliveries fail (a broker error, a timeout), and
// the state of its retries: every match it holds waits for the same
// retry, later each time a retry of it fails again, so that a refusal a
// retry cannot mend is not tried as often as one it can.
type cause struct {
	name      string
	permanent bool
	lastErr   error

	fails     int       // passes of retries that failed in a row
	next      time.Time // when its held matches are tried again
	since     time.Time // its first failure since it last delivered
	held      int       // matches that failed for it, not delivered yet
	oldest    int64     // when the oldest of them arrived, unix ns; 0 if none
	reported  time.Time // its last log line
	recovered bool      // a match of it was delivered since its last failure
}

// hold keeps the failed delivery tok, failed with err, for a retry when
// its cause is next due.
func (r *Relay) hold(tok uint64, err error, now time.Time) {
	name, permanent := r.cfg.Classify(err)
	c := r.causes[name]
	if c == nil {
		c = &cause{name: name, permanent: permanent}
		r.causes[name] = c
	}
	c.failed(err, now)
	s := &r.slots[tok%uint64(len(r.slots))]
	s.cause = c
	r.retries = append(r.retries, retry{token: tok, at: c.wait(now, r.cfg)})
}

// failed notes a failure of c at now: the first since a retry pass makes
// the next pass wait longer.
func (c *cause) failed(err error, now time.Time) {
	c.lastErr = err
	if c.since.IsZero() || c.recovered {
		c.since, c.recovered, c.fails = now, false, 0
	}
	if !c.next.After(now) {
		c.fails++
		c.next = time.Time{}
	}
}

// wait returns when c's held matches are tried again.
func (c *cause) wait(now time.Time, cfg Config) time.Time {
	if c.next.After(now) {
		return c.next
	}
	base, ceiling := cfg.RetryBackoff, cfg.RetryBackoffMax
	if c.permanent {
		base, ceiling = 10*base, 10*ceiling
	}
	c.next = now.Add(backoff.Delay(c.fails-1, base, ceiling))
	return c.next
}

// delivered notes that a match that had failed for c was delivered.
func (c *cause) delivered(time.Time) {
	c.recovered = true
	c.fails = 0
}

// reportCheck is how often, at most, report counts what the causes hold:
// it reads every held match, and runs from the relay's busy loop.
const reportCheck = 500 * time.Millisecond

// report logs, at most once a ReportEvery per cause, what each cause
// holds, and once when a cause holds nothing more; it keeps the summary
// for Status.
func (r *Relay) report(now time.Time) {
	if len(r.causes) == 0 || now.Sub(r.reportedAt) < reportCheck {
		return
	}
	r.reportedAt = now
	for _, c := range r.causes {
		c.held, c.oldest = 0, 0
	}
	for tok := r.frontier; tok < r.nextToken; tok++ {
		s := &r.slots[tok%uint64(len(r.slots))]
		if c := s.cause; c != nil && s.state.Load() != slotAcked {
			c.held++
			if c.oldest == 0 || s.at < c.oldest {
				c.oldest = s.at
			}
		}
	}
	var parts []string
	for name, c := range r.causes {
		if c.held == 0 {
			if c.recovered || c.next.Before(now.Add(-r.cfg.RetryBackoffMax)) {
				if !c.reported.IsZero() {
					r.log.Info("Kafka takes the matches it refused again", "cause", name, "refused_for", now.Sub(c.since).Round(time.Millisecond).String())
				}
				delete(r.causes, name)
			}
			continue
		}
		oldest := now.Sub(time.Unix(0, c.oldest)).Round(time.Second)
		parts = append(parts, fmt.Sprintf("%d held: %s, retry in %s", c.held, name, c.next.Sub(now).Round(time.Second)))
		if now.Sub(c.reported) < r.cfg.ReportEvery {
			continue
		}
		c.reported = now
		then := "retrying with a growing wait"
		if c.permanent {
			then = "a retry cannot mend this (a record too large, access refused, an invalid record): fix the broker's or the topic's settings; retrying rarely meanwhile"
		}
		r.log.Warn("Kafka refuses matches; holding them for a retry", "cause", name, "error", c.lastErr, "held", c.held,
			"oldest", oldest.String(), "failing_for", now.Sub(c.since).Round(time.Second).String(),
			"retry_in", c.next.Sub(now).Round(time.Millisecond).String(), "attempts", c.fails, "then", then)
	}
	if len(parts) == 0 {
		r.held.Store(nil)
		return
	}
	slices.Sort(parts)
	summary := strings.Join(parts, "; ")
	r.held.Store(&summary)
}
