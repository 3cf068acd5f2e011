package steamseq

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// missingFrom returns the matches of want that got lacks, and how many
// of got are repeats.
func missingFrom(want, got []match.Match) (missing []match.Match, repeats int) {
	seen := map[int64]int{}
	for _, m := range got {
		if seen[m.ID]++; seen[m.ID] > 1 {
			repeats++
		}
	}
	for _, m := range want {
		if seen[m.ID] == 0 {
			missing = append(missing, m)
		}
	}
	return missing, repeats
}

// produce moves the fake's head by step every tick until it holds total
// matches, as Dota does, and closes the returned channel then.
func produce(t *testing.T, fake *steamfake.Server, step, total int64, tick time.Duration) <-chan struct{} {
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		defer close(done)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for n := int64(0); n < total; n += step {
			fake.Advance(min(step, total-n))
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	return done
}

// TestRescanFindsLateMatches: Steam lists 5% of the matches only once the
// head has moved 600 seqs (3 s) past them. The primary cursor, at the head,
// misses them; the rescan, 800 seqs or 5 s behind, hands on exactly those, once
// each. With the rescan off, they are missing.
func TestRescanFindsLateMatches(t *testing.T) {
	for _, rescan := range []bool{true, false} {
		name := map[bool]string{true: "rescan on", false: "rescan off"}[rescan]
		t.Run(name, func(t *testing.T) {
			fake, base := steamfake.Start(t, steamfake.Options{Count: 1, LateFraction: 0.05, LateBy: 600, HiddenEvery: 100})
			cfg := testConfig(base)
			cfg.StartSeqNum = fake.Head()
			cfg.IdleWait = 5 * time.Millisecond
			cfg.RescanBehind, cfg.RescanDelay = 800, 5*time.Second
			if !rescan {
				cfg.RescanBehind = -1
			}
			rec := newRecorder()
			r := start(t, cfg, noResume, rec)
			<-produce(t, fake, 2, 2000, 10*time.Millisecond)
			head := fake.Head()
			want := fake.Matches()
			waitFor(t, "the primary cursor at the head", func() bool { return r.s.Position() == head })
			if rescan {
				waitFor(t, "the rescan at the head", func() bool { return r.s.RescanPosition() == head })
			}
			got, _ := rec.snapshot()
			missing, repeats := missingFrom(want, got)
			late := testutil.ToFloat64(r.s.metrics.late)
			var listedLate int
			for _, m := range fake.LateMatches() {
				if m.SeqNum+600 <= head {
					listedLate++
				}
			}
			t.Logf("%d listed, %d of them late; handed on %d, %d missing, %d repeats, %v found by the rescan",
				len(want), listedLate, len(got), len(missing), repeats, late)
			if listedLate < 30 {
				t.Fatalf("only %d late matches: the test proves little", listedLate)
			}
			if repeats != 0 {
				t.Errorf("%d matches handed on twice", repeats)
			}
			if !rescan {
				if len(missing) < listedLate/2 {
					t.Errorf("without the rescan %d matches are missing, want most of the %d late ones: the fake lists them too early", len(missing), listedLate)
				}
				return
			}
			if len(missing) != 0 {
				t.Fatalf("%d matches missing, first %+v", len(missing), missing[0])
			}
			if late == 0 || late > float64(listedLate) || len(got) != len(want) {
				t.Errorf("ingestion_steam_late_matches_total = %v, %d handed on of %d; want the late ones found, each once", late, len(got), len(want))
			}
			for _, m := range got {
				if m.RescanSeq == 0 || m.RescanSeq > m.SeqNum {
					t.Fatalf("match %+v carries rescan position %d, want one at or below its seq", m, m.RescanSeq)
				}
			}
			if pos := testutil.ToFloat64(r.s.metrics.rescanPosition); pos != float64(head) {
				t.Errorf("ingestion_steam_rescan_position = %v, want %d", pos, head)
			}
			// Each late match at debug level; at info, the first at once and
			// the rest at most every 10 s: a line or two over this test.
			each := r.logs.Lines(t, "The rescan found a match that was not published: Steam listed it late, or could not serve it before")
			summaries := r.logs.Lines(t, "The rescan found matches that were not published: Steam listed them late, or could not serve them before")
			if len(each) != int(late) || len(summaries) == 0 || len(summaries) > 2 || summaries[0]["matches"] != 1.0 {
				t.Errorf("%d debug lines for %v late matches, %d summaries (the first %v); want one each, and one or two summaries starting with the first match alone",
					len(each), late, len(summaries), summaries)
			}
			if !strings.Contains(r.s.Status().Detail, "rescan at seq") {
				t.Errorf("status %q does not tell the rescan's position", r.s.Status().Detail)
			}
		})
	}
}

// TestRescanResumesWithoutRepeats: resumed with a rescan position and the
// seqs delivered above it, the rescan hands on only what was not
// delivered.
func TestRescanResumesWithoutRepeats(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 500})
	all := fake.Matches()
	var delivered []int64
	lost := map[int64]bool{}
	for i, m := range all[100:400] {
		if i%60 == 7 {
			lost[m.ID] = true // as if Steam had listed it late
			continue
		}
		delivered = append(delivered, m.SeqNum)
	}
	resume := func(_ context.Context, behind, _ int64) (Resume, error) {
		if behind != 1000 {
			t.Errorf("resume asked with behind %d, want the configured 1000", behind)
		}
		return Resume{Found: true, Seq: all[399].SeqNum, Rescan: all[99].SeqNum, Delivered: delivered}, nil
	}
	cfg := testConfig(base)
	cfg.IdleWait = 5 * time.Millisecond
	cfg.RescanBehind, cfg.RescanDelay = 1000, 50*time.Millisecond
	rec := newRecorder()
	r := start(t, cfg, resume, rec)
	waitFor(t, "the rescan at the head", func() bool { return r.s.RescanPosition() == all[499].SeqNum })
	got, _ := rec.snapshot()
	if len(got) != 100+len(lost) {
		t.Fatalf("handed on %d, want the 100 new and the %d the rescan window lacked", len(got), len(lost))
	}
	for _, m := range got {
		if m.SeqNum <= all[399].SeqNum && !lost[m.ID] {
			t.Fatalf("the rescan handed on %+v, which was delivered", m)
		}
	}
	if late := testutil.ToFloat64(r.s.metrics.late); late != float64(len(lost)) {
		t.Errorf("late matches = %v, want %d", late, len(lost))
	}
	if p, rp := r.s.Position(), r.s.RescanPosition(); p != all[499].SeqNum || rp != all[499].SeqNum {
		t.Errorf("positions %d and %d, want both cursors at the head %d", p, rp, all[499].SeqNum)
	}
}

// TestNoSilentStartAtTheHead: records that no scan wrote refuse the start
// unless a start seq is configured; with nothing at all the scan starts
// at the head, with a warning.
func TestNoSilentStartAtTheHead(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 50})
	foreign := func(context.Context, int64, int64) (Resume, error) { return Resume{Foreign: true}, nil }

	r := start(t, testConfig(base), foreign, newRecorder())
	err := r.result(t)
	if !errors.Is(err, ErrForeignTopic) || !strings.Contains(err.Error(), "STEAM_START_SEQ_NUM") {
		t.Fatalf("Run = %v, want ErrForeignTopic naming STEAM_START_SEQ_NUM", err)
	}
	if len(fake.Calls()) != 0 {
		t.Errorf("%d calls to Steam before refusing", len(fake.Calls()))
	}

	cfg := testConfig(base)
	cfg.StartSeqNum = fake.Matches()[10].SeqNum
	rec := newRecorder()
	start(t, cfg, foreign, rec)
	rec.wait(t, 40)

	rec = newRecorder()
	r = start(t, testConfig(base), noResume, rec)
	rec.wait(t, 1)
	lines := r.logs.Lines(t, "Steam scanner starting at the newest match: nothing was delivered before, and STEAM_START_SEQ_NUM is not set (a first run)")
	if len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["start_seq"] != float64(fake.Head()) {
		t.Errorf("first-run log lines = %v, want one warning with the start seq", lines)
	}
}

// TestImplausibleResumeRefused: a store that hands back a position no scan
// could reach (2^63-1 would make the next page start at -2^63) stops the
// scan with an error before any call to Steam, rather than wedge it.
func TestImplausibleResumeRefused(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 50})
	r := start(t, testConfig(base), resumeAt(1<<63-1), newRecorder())
	if err := r.result(t); err == nil || !strings.Contains(err.Error(), "implausible") {
		t.Fatalf("Run = %v, want an error saying the resume position is implausible", err)
	}
	if len(fake.Calls()) != 0 {
		t.Errorf("%d calls to Steam with an implausible position", len(fake.Calls()))
	}
}

// TestLateMatchesBehindABrokenOneFoundSoon: one match Steam never serves,
// 3% listed late, and a head that freezes after the primary cursor has
// stepped past the broken match. The rescan reads that match once and
// passes it, so the late matches listed beyond it are found within
// RescanDelay plus half of SkipAfter (a minute of the default two, as the
// service must) of the primary reaching the frozen head, which is the
// freeze on a machine that keeps up. That the rescan passes it after one
// try is TestStepsPastABrokenMatch's check.
func TestLateMatchesBehindABrokenOneFoundSoon(t *testing.T) {
	const lateBy = 200
	fake, base := steamfake.Start(t, steamfake.Options{Count: 400, LateFraction: 0.03, LateBy: lateBy})
	all := fake.Matches()
	broken := all[150]
	fake.Break(broken.SeqNum, 0)
	cfg := testConfig(base)
	cfg.StartSeqNum = all[0].SeqNum
	cfg.IdleWait = 5 * time.Millisecond
	cfg.SkipAfter = 4 * time.Second
	cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 500*time.Millisecond
	cfg.RescanBehind, cfg.RescanDelay = 1_000_000, 2*time.Second
	rec := newRecorder()
	r := start(t, cfg, noResume, rec)
	<-produce(t, fake, 20, 3200, 50*time.Millisecond) // 8 s, then the head freezes
	froze := time.Now()
	head := fake.Head()
	waitFor(t, "the primary cursor at the frozen head", func() bool { return r.s.Position() == head })
	frozen := time.Now() // the clock starts when the primary has read everything
	var late []match.Match
	for _, m := range fake.LateMatches() {
		if m.SeqNum+lateBy <= head && m.SeqNum > broken.SeqNum {
			late = append(late, m)
		}
	}
	if len(late) < 20 {
		t.Fatalf("only %d late matches listed past the broken one: the test proves little", len(late))
	}
	bound := cfg.RescanDelay + cfg.SkipAfter/2
	deadline := frozen.Add(cfg.RescanDelay + 2*cfg.SkipAfter)
	var found time.Duration
	for {
		got, _ := rec.snapshot()
		if missing, _ := missingFrom(late, got); len(missing) == 0 {
			found = time.Since(frozen)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("late matches past the broken one still missing %v after the head froze", time.Since(frozen).Round(time.Millisecond))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The rescan's pass to the head is not what is measured: under the
	// race detector beside the whole suite it took longer than waitFor's
	// 20 s (CI), with the primary itself 13 s late to the frozen head.
	waitForWithin(t, "the rescan at the head", time.Minute, func() bool { return r.s.RescanPosition() == head })
	got, _ := rec.snapshot()
	missing, repeats := missingFrom(fake.Matches(), got)
	t.Logf("%d late matches listed past the broken seq %d: all found %v after the primary reached the frozen head, %v after the freeze (bound: the rescan delay %v + %v); at the end %d missing, %d repeats",
		len(late), broken.SeqNum, found.Round(time.Millisecond), frozen.Add(found).Sub(froze).Round(time.Millisecond), cfg.RescanDelay, cfg.SkipAfter/2, len(missing), repeats)
	if found > bound {
		t.Errorf("the late matches were found %v after the primary reached the frozen head, want within %v", found.Round(time.Millisecond), bound)
	}
	if len(missing) != 0 || repeats != 0 {
		t.Errorf("%d matches missing, %d repeats", len(missing), repeats)
	}
	if got := testutil.ToFloat64(r.s.cl.m.skipped.WithLabelValues(cursorRescan)); got != 1 {
		t.Errorf("skipped{rescan} = %v, want the broken match passed once", got)
	}
}
