package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/match"
)

// CloseReport says what Close did with the matches Kafka had not
// acknowledged.
type CloseReport struct {
	// Spooled counts the matches the spool keeps for the next start: those
	// spooled while running that Kafka has not acknowledged, and those
	// Close wrote.
	Spooled int64
	// WrittenAtShutdown counts the matches Close wrote to the spool from
	// memory or from flight.
	WrittenAtShutdown int
	// Lost counts the matches Close could not keep: all of them in Memory
	// mode, or those a spool refused.
	Lost int
}

// Close ends the relay after Run has returned and the Producer has been
// closed (so that every outcome is known). Whatever Kafka has not
// acknowledged is kept: in Overflow and Disk modes, matches held in memory
// or in flight are written to the spool for the next start (spooled ones
// are there already) and the spool is closed; in Memory mode they are lost.
// It reports what it kept and lost, and returns the spool's errors, or an
// error counting lost matches.
func (r *Relay) Close() (CloseReport, error) {
	r.Abort()
	// Settle what is known (commit the acknowledged), but retry nothing:
	// the Producer is closed.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	r.settle(done, time.Now(), true)
	var rep CloseReport
	var errs []error
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for tok := r.frontier; tok < r.nextToken; tok++ {
		s := &r.slots[tok%uint64(len(r.slots))]
		if s.state.Load() == slotAcked || s.spooled {
			continue
		}
		if r.keep(s.m, s.at, now, &errs) {
			rep.WrittenAtShutdown++
		} else {
			rep.Lost++
		}
	}
	for r.ring.n > 0 {
		m, at := r.ring.pop()
		if r.keep(m, at, now, &errs) {
			rep.WrittenAtShutdown++
		} else {
			rep.Lost++
		}
	}
	if r.spool != nil {
		rep.Spooled = r.spool.Stats().Uncommitted
		if err := r.spool.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if rep.Lost > 0 {
		r.log.Error("Matches lost at shutdown: Kafka did not acknowledge them and there is no spool to keep them", "lost", rep.Lost, "mode", string(r.cfg.Mode))
		errs = append(errs, errLost(rep.Lost))
	}
	return rep, errors.Join(errs...)
}

type errLost int

func (e errLost) Error() string {
	return fmt.Sprintf("relay: %d matches lost at shutdown", int(e))
}

// keep writes a match to the spool, reporting false if there is none or it
// refused.
func (r *Relay) keep(m match.Match, at int64, now time.Time, errs *[]error) bool {
	if r.spool == nil {
		return false
	}
	ts := now
	if at != 0 {
		ts = time.Unix(0, at)
	}
	if _, err := r.spool.Append(encode(&r.putBuf, m), ts); err != nil {
		*errs = append(*errs, err)
		return false
	}
	return true
}

// Status reports the relay's health for readiness: down while it is full
// (reading paused, or new matches dropped).
func (r *Relay) Status() health.Status {
	st := r.Stats()
	status := r.state.Status()
	detail := fmt.Sprintf("%d in memory, %d in flight", st.Memory, st.InFlight)
	if r.spool != nil {
		detail += fmt.Sprintf(", %d spooled (%d bytes)", st.SpoolRecords, st.SpoolBytes)
	}
	if !st.Oldest.IsZero() {
		detail += fmt.Sprintf(", oldest unacknowledged %s", time.Since(st.Oldest).Round(time.Millisecond))
	}
	if held := r.held.Load(); held != nil {
		detail += "; refused by Kafka, " + *held
	}
	status.Detail = status.Detail + ": " + detail
	return status
}

// Stats are the relay's current figures.
type Stats struct {
	// Memory counts matches waiting in memory.
	Memory int
	// InFlight counts matches handed to the Producer, not yet acknowledged.
	InFlight int64
	// SpoolRecords and SpoolBytes describe the spool's unacknowledged backlog.
	SpoolRecords int64
	SpoolBytes   int64
	// SpoolCorruptBytes counts damaged bytes the spool skipped since Open.
	SpoolCorruptBytes int64
	// Oldest is when the oldest unacknowledged match arrived; zero if none.
	Oldest time.Time
	// Dropped counts matches Publish dropped.
	Dropped int64
	// Full is true while Publish finds no room.
	Full bool
}

// Stats returns the current figures.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	st := Stats{Memory: r.ring.n, Full: r.full}
	r.mu.Unlock()
	st.InFlight = r.inFlightCount.Load()
	if r.spool != nil {
		ss := r.spool.Stats()
		st.SpoolRecords, st.SpoolBytes, st.SpoolCorruptBytes = ss.Uncommitted, ss.Bytes, ss.CorruptBytes
	}
	if ns := r.oldestNS.Load(); ns != 0 {
		st.Oldest = time.Unix(0, ns)
	}
	st.Dropped = r.dropped.Load()
	return st
}
