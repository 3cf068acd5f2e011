//go:build faults

package main

import (
	"testing"
	"time"
)

// TestFaultBackfillFleet: three replicas, each with its own two keys,
// backfill 200,000 seqs in 16 shards against a fake as strict as Steam
// (each key limited, 429 without Retry-After; hidden matches; 3% listed
// late; a match that never loads; real-size objects), with the forward
// scan on the lead. A quarter of the way one replica is killed with
// kill -9, at two fifths another is paused past the session timeout and
// resumed, half-way a fourth joins. Both topics hold every listed match
// of the range exactly once (read_committed), every object byte for byte
// as served, nothing outside the range; each shard's committed cursors
// only move forward (no page of a fenced writer committed); and, out of
// the windows that follow a fault, the forward scan is never more than
// two pages behind the head. It runs against the cluster KAFKA_TEST_BROKERS
// names, else kfake.
func TestFaultBackfillFleet(t *testing.T) {
	res := backfillFleet(t, fleetRun{seqs: 200_000, shards: 16, replicas: 3, rate: 200 * time.Millisecond,
		kill: true, pause: true, join: true, forward: true, timeout: 15 * time.Minute})
	refused := 100 * float64(res.refused) / float64(max(res.calls+res.refused, 1))
	t.Logf("took %s: %d calls answered, %d refused (%.1f%%), %d shard cursors committed; the forward scan at most %.2f pages behind the head (%s in; %d samples once caught up, out of the faults' windows)",
		res.took.Round(time.Millisecond), res.calls, res.refused, refused, res.cursorCommit, res.maxLagPages, res.maxLagAt.Round(time.Second), res.lagSamples)
	if res.lagSamples < 10 || res.maxLagPages > 2 {
		t.Errorf("the forward scan was %.2f pages behind the head (%d samples); want at most 2", res.maxLagPages, res.lagSamples)
	}
	if refused > 5 {
		t.Errorf("%.1f%% of the calls refused; want at most 5%%", refused)
	}
}
