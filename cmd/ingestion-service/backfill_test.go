package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// TestBackfillBesideTheForwardScan: one replica runs the forward scan from
// a seq on and a backfill of the range before it in four shards, against
// a fake with hidden matches, gaps and a match that never loads. Both
// topics hold every listed match from the backfill's start on exactly
// once (read_committed), each object as served, and nothing before it;
// the broken match's seq is kept with its shard. Started again, the
// finished shards call Steam no more.
func TestBackfillBesideTheForwardScan(t *testing.T) {
	cluster := kafkatest.Start(t)
	ids, objects := cluster.Topic(t, 3), cluster.Topic(t, 3)
	fake, url := steamfake.Start(t, steamfake.Options{Count: 12_000, Compact: true, HiddenEvery: 97, GapEvery: 1000, Gap: 37})
	all := fake.Matches()
	from, to := all[1500].SeqNum-3, all[9000].SeqNum // the backfill's range; the forward scan starts at its end
	broken := all[4321].SeqNum
	fake.Break(broken, 0)
	env := steamEnv(cluster, ids, url, to, filepath.Join(t.TempDir(), "spool"), "0")
	env["STEAM_MATCHES_TOPIC"] = objects
	env["STEAM_BACKFILL_FROM"] = strconv.FormatInt(from, 10)
	env["STEAM_BACKFILL_TO"] = strconv.FormatInt(to, 10)
	env["STEAM_BACKFILL_SHARDS"] = "4"
	env["STEAM_SKIP_AFTER"] = "1ms"
	svc := startService(t, env)
	svc.waitFor(t, "the backfill finished", 2*time.Minute, func() bool {
		return strings.Contains(svc.out.String(), "Backfill finished")
	})
	last := fake.Matches()[len(fake.Matches())-1].SeqNum
	svc.waitFor(t, "the forward scan at the head", time.Minute, func() bool {
		return labelled(t, svc, "ingestion_steam_committed_cursor", `cursor="primary"`) == float64(last)
	})
	if got := svc.metric(t, "ingestion_backfill_remaining_seqs"); got != 0 {
		t.Fatalf("ingestion_backfill_remaining_seqs = %v, want 0", got)
	}
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	for _, topic := range []string{ids, objects} {
		tl := fake.TallyRange(cluster.ReadCommitted(t, topic, time.Minute), topic == objects, from, 0)
		t.Logf("%s: %s", topic, tl)
		if !tl.ExactlyOnce() {
			t.Fatalf("%s: %s; want every listed match from seq %d on exactly once, nothing before", topic, tl, from)
		}
	}
	out := svc.out.String()
	if !strings.Contains(out, `"skipped_seqs":1`) || !strings.Contains(out, strconv.FormatInt(broken, 10)) {
		t.Fatalf("the broken seq %d is not reported with its shard", broken)
	}
	checkStatus(t, env, from, to, 4, broken)

	// Again: the finished shards make no call.
	calls := len(fake.Calls())
	again := startService(t, env)
	again.waitFor(t, "the forward scan running again", time.Minute, func() bool {
		return strings.Contains(again.out.String(), "Resuming from the last committed cursor")
	})
	again.waitFor(t, "the shards read as finished", time.Minute, func() bool {
		return again.metric(t, "ingestion_backfill_shard_remaining_seqs") == 0 && strings.Contains(again.out.String(), "Backfill finished")
	})
	for _, c := range fake.Calls()[calls:] {
		if c.Endpoint == steamfake.Sequence && c.StartAt < to {
			t.Fatalf("a call for seq %d after the restart: a finished shard called Steam", c.StartAt)
		}
	}
	if code, _ := again.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// checkStatus runs `backfill status` as a person and as a script would:
// both say the backfill of [from, to) in shards is finished, with the
// listed matches of the range written and the broken seq skipped.
func checkStatus(t *testing.T, env map[string]string, from, to int64, shards int, broken int64) {
	t.Helper()
	code, text := runCommand(t, env, "backfill", "status")
	t.Logf("backfill status:\n%s", text)
	if code != 0 || !strings.Contains(text, "Backfill finished") || strings.Count(text, "\nshard ") != shards ||
		!strings.Contains(text, strconv.FormatInt(broken, 10)) {
		t.Fatalf("backfill status: exit %d, want 0, %d shards, finished, the broken seq %d named:\n%s", code, shards, broken, text)
	}
	code, js := runCommand(t, env, "backfill", "status", "-json")
	var p backfill.Progress
	if err := json.Unmarshal([]byte(js), &p); code != 0 || err != nil {
		t.Fatalf("backfill status -json: exit %d, %v:\n%s", code, err, js)
	}
	if !p.Finished || len(p.Shards) != shards || p.Seqs != to-from || p.SeqsDone != p.Seqs || p.SkippedSeqs != 1 || p.Matches <= 0 {
		t.Fatalf("backfill status -json = %+v, want %d shards finished, %d seqs done, 1 skipped", p, shards, to-from)
	}
	for _, s := range p.Shards {
		if !s.Started || s.Replica == "" {
			t.Fatalf("shard %d: %+v, want started with its replica named", s.Index, s)
		}
	}
}

// devSteamChecks: dev -source steam-sequence runs the forward scan and a
// backfill whose status, run with the command the banner prints, fills
// up.
func devSteamChecks(t *testing.T, svc *service) {
	t.Helper()
	out := svc.out.String()
	i := strings.Index(out, "KAFKA_BOOTSTRAP_SERVERS=")
	if i < 0 || !strings.Contains(out, "isolation.level=read_committed") {
		t.Fatalf("dev mode printed no status command or read_committed kcat lines:\n%s", out)
	}
	line := strings.ReplaceAll(out[i:strings.Index(out[i:], "ingestion-service backfill status")+i], "\\\n", " ")
	env := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			env[k] = v
		}
	}
	svc.waitFor(t, "the backfill under way", time.Minute, func() bool {
		code, js := runCommand(t, env, "backfill", "status", "-json")
		var p backfill.Progress
		return code == 0 && json.Unmarshal([]byte(js), &p) == nil && p.SeqsDone > 0 && len(p.Shards) == 4
	})
	svc.waitFor(t, "the forward scan committing", time.Minute, func() bool {
		return labelled(t, svc, "ingestion_steam_committed_cursor", `cursor="primary"`) > 0
	})
}

// TestBackfillAlone: with STEAM_FORWARD_SCAN=false a replica runs the
// backfill alone: readiness's checks are the backfill's (its shards
// named) and Kafka's, the topic holds the range's matches once and
// nothing past it, and the forward scan made no call.
func TestBackfillAlone(t *testing.T) {
	cluster := kafkatest.Start(t)
	ids := cluster.Topic(t, 3)
	fake, url := steamfake.Start(t, steamfake.Options{Count: 6000, Compact: true, HiddenEvery: 50})
	all := fake.Matches()
	from, to := all[1000].SeqNum, all[4000].SeqNum
	env := steamEnv(cluster, ids, url, 0, filepath.Join(t.TempDir(), "spool"), "0")
	delete(env, "STEAM_START_SEQ_NUM")
	env["STEAM_BACKFILL_FROM"] = strconv.FormatInt(from, 10)
	env["STEAM_BACKFILL_TO"] = strconv.FormatInt(to, 10)
	env["STEAM_BACKFILL_SHARDS"] = "3"
	env["STEAM_FORWARD_SCAN"] = "false"
	svc := startService(t, env)
	svc.waitFor(t, "the backfill finished", time.Minute, func() bool {
		return strings.Contains(svc.out.String(), "Backfill finished")
	})
	code, body := svc.get(t, "/api/v1/ready")
	if code != 200 || !strings.Contains(body, `"backfill"`) || !strings.Contains(body, "holds 3 of 3 backfill shards: 0 (done), 1 (done), 2 (done)") || strings.Contains(body, "steam_sequence") {
		t.Fatalf("ready = %d %s; want 200 with the backfill's check naming its shards, and no forward scan", code, body)
	}
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	tl := fake.TallyRange(cluster.ReadCommitted(t, ids, time.Minute), false, from, to)
	if !tl.ExactlyOnce() {
		t.Fatalf("%s; want the range's matches once, nothing else", tl)
	}
	for _, c := range fake.Calls() {
		if c.Endpoint == steamfake.History || c.StartAt >= to {
			t.Fatalf("a call %+v outside the backfill: the forward scan ran", c)
		}
	}
}
