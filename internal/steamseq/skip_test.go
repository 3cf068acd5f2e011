package steamseq

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// TestStepsPastABrokenMatch: one match Steam cannot serve (status 2 for
// every page that holds it) is narrowed down to, stepped past after
// SkipTries over SkipAfter, counted and logged with its seq; every other
// match is handed on, in order. The rescan tries it once more: if it
// still fails it is stepped past again and counted there; if Steam serves
// it by then, the rescan hands it on.
func TestStepsPastABrokenMatch(t *testing.T) {
	for _, tt := range []struct {
		name   string
		heals  bool
		hidden int64 // Options.HiddenEvery
	}{
		{"stays broken", false, 0},
		{"comes back", true, 0},
		// The match before the broken one is hidden: a one-match page
		// there is empty although matches follow.
		{"after a hidden match", false, 100},
	} {
		heals := tt.heals
		t.Run(tt.name, func(t *testing.T) {
			fake, base := steamfake.Start(t, steamfake.Options{Count: 1001, HiddenEvery: tt.hidden}) // the last is not hidden
			all := fake.Matches()
			at := 437
			if tt.hidden > 0 {
				for at = 400; all[at].SeqNum == all[at-1].SeqNum+1; at++ {
				}
			}
			broken := all[at]
			fake.Break(broken.SeqNum, 0)
			cfg := testConfig(base)
			cfg.StartSeqNum = all[0].SeqNum
			cfg.IdleWait = 5 * time.Millisecond
			cfg.SkipAfter = 100 * time.Millisecond
			cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 40*time.Millisecond
			cfg.RescanBehind, cfg.RescanDelay = 1_000_000, 300*time.Millisecond
			rec := newRecorder()
			r := start(t, cfg, noResume, rec)
			skipped := func(cursor string) float64 { return testutil.ToFloat64(r.s.cl.m.skipped.WithLabelValues(cursor)) }
			waitFor(t, "the primary cursor at the head", func() bool { return r.s.Position() == fake.Head() })
			if got := skipped(cursorPrimary); got != 1 {
				t.Fatalf("skipped{primary} = %v, want 1", got)
			}
			if heals {
				fake.Heal(broken.SeqNum)
			}
			waitFor(t, "the rescan at the head", func() bool { return r.s.RescanPosition() == fake.Head() })

			got, _ := rec.snapshot()
			want := append(append(all[:at:at], all[at+1:]...), broken)
			if !heals {
				want = want[:len(want)-1]
			}
			for i := range got {
				got[i].RescanSeq = 0 // where the rescan stood: not compared here
			}
			sameMatches(t, got, want)

			lines := r.logs.Lines(t, "Stepped past a broken match: Steam kept failing to serve it")
			if len(lines) == 0 || lines[0]["level"] != "ERROR" || lines[0]["cursor"] != cursorPrimary ||
				lines[0]["from_seq"].(float64) > float64(broken.SeqNum) || lines[0]["to_seq"] != float64(broken.SeqNum) {
				t.Fatalf("skip log lines = %v, want an error naming seq %d", lines, broken.SeqNum)
			}
			if !heals {
				// The rescan reads the seq the primary stepped past once,
				// and passes it: no tries over STEAM_SKIP_AFTER again.
				var rescanSteps []map[string]any
				for _, l := range r.logs.Lines(t, "Steam call failed, retrying") {
					if l["cursor"] == cursorRescan && strings.Contains(fmt.Sprint(l["then"]), "stepping past") {
						rescanSteps = append(rescanSteps, l)
					}
				}
				if len(rescanSteps) != 1 || !strings.Contains(fmt.Sprint(rescanSteps[0]["then"]), "after 1 tries") {
					t.Errorf("the rescan stepped past the broken seq as %v; want once, after one try", rescanSteps)
				}
			}
			wantRescanSkips := map[bool]float64{false: 1, true: 0}[heals]
			if got := skipped(cursorRescan); got != wantRescanSkips {
				t.Errorf("skipped{rescan} = %v, want %v", got, wantRescanSkips)
			}
			if late := testutil.ToFloat64(r.s.metrics.late); late != 1-wantRescanSkips {
				t.Errorf("late matches = %v, want %v", late, 1-wantRescanSkips)
			}

			// Narrowing down took few calls: about log2(100) halvings and
			// the tries of the one match, for each cursor.
			var oneMatch, failed int
			for _, c := range sequenceCalls(fake.Calls()) {
				if c.Requested == 1 {
					oneMatch++
				}
				if c.Matches == 0 && c.Status == 200 && c.StartAt <= broken.SeqNum {
					failed++
				}
			}
			if oneMatch < SkipTries || failed > 2*(8+2*SkipTries+4) {
				t.Errorf("%d one-match calls, %d failed calls: want the tries, and a narrowing that is short", oneMatch, failed)
			}
		})
	}
}

// TestImplausibleSeqIsRejected: a page whose last entry claims a
// match_seq_num far beyond the sequence (2^63-1, whose successor
// overflows; 10^15, which would skip every match in between) has that
// entry rejected once, as implausible_seq; the position never reaches it
// and the scan goes on from the plausible entries.
func TestImplausibleSeqIsRejected(t *testing.T) {
	for _, bogus := range []int64{1<<63 - 1, 1_000_000_000_000_000} {
		t.Run(strconv.FormatInt(bogus, 10), func(t *testing.T) {
			fake, base := steamfake.Start(t, steamfake.Options{Count: 300})
			all := fake.Matches()
			// The second page: two real matches, then the bogus one; asked
			// again, Steam serves it the same way.
			body := fmt.Sprintf(`{"result":{"status":1,"matches":[{"match_id":%d,"match_seq_num":%d},{"match_id":%d,"match_seq_num":%d},{"match_id":77,"match_seq_num":%d}]}}`,
				all[100].ID, all[100].SeqNum, all[101].ID, all[101].SeqNum, bogus)
			var once sync.Once
			rec := newRecorder()
			rec.accept = func(m match.Match) error {
				if m.SeqNum == all[99].SeqNum {
					once.Do(func() { fake.Fail(1, steamfake.Fault{Body: body}) })
				}
				return nil
			}
			cfg := testConfig(base)
			cfg.StartSeqNum = all[0].SeqNum
			cfg.IdleWait = 5 * time.Millisecond
			r := start(t, cfg, noResume, rec)
			waitFor(t, "the head", func() bool { return r.s.Position() == all[299].SeqNum })
			got, rejects := rec.snapshot()
			for i := range got {
				got[i].StartTime = 0
			}
			want := slices.Clone(all)
			for i := range want {
				want[i].StartTime = 0
			}
			sameMatches(t, got, want)
			if len(rejects) != 1 || rejects[0].reason != match.ImplausibleSeq || !strings.Contains(rejects[0].item, strconv.FormatInt(bogus, 10)) {
				t.Fatalf("rejects = %+v, want the bogus entry once as %s", rejects, match.ImplausibleSeq)
			}
			for _, c := range sequenceCalls(fake.Calls()) {
				if c.StartAt < 0 || c.StartAt > all[299].SeqNum+1 {
					t.Fatalf("a call asked from seq %d", c.StartAt)
				}
			}
			if lines := r.logs.Lines(t, "Steam listed a match with an implausible match_seq_num; rejected, and the position stays"); len(lines) != 1 || lines[0]["level"] != "ERROR" {
				t.Errorf("log lines = %v, want one error", lines)
			}
		})
	}
}
