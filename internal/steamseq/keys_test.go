package steamseq

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// keyTally counts the calls the fake answered, by key.
type keyTally struct {
	calls, refused  []int
	total, refusals int
}

func tallyKeys(calls []steamfake.Call, keys int) keyTally {
	t := keyTally{calls: make([]int, keys), refused: make([]int, keys)}
	for _, c := range calls {
		if c.Key < 0 || c.Key >= keys {
			continue
		}
		t.calls[c.Key]++
		t.total++
		if c.Status == http.StatusTooManyRequests {
			t.refused[c.Key]++
			t.refusals++
		}
	}
	return t
}

// TestAdaptivePacing: two keys against a fake that allows each one call
// per 60 ms and answers 429 beyond it. Each key starts at 200 ms, speeds
// up until Steam refuses it, and settles near the limit: few calls are
// refused, both keys carry the load, and the metrics show each key's
// interval and refusals. A scanner that called at its floor (no adaptive
// pacing) would see most calls refused.
func TestAdaptivePacing(t *testing.T) {
	const limit = 60 * time.Millisecond
	keys := []string{"key-one", "key-two"}
	fake, base := steamfake.Start(t, steamfake.Options{Count: 200_000, Keys: keys, RateInterval: limit})
	cfg := testConfig(base)
	cfg.Keys = keys
	cfg.KeyInterval = 200 * time.Millisecond
	cfg.MinInterval = 5 * time.Millisecond
	cfg.MatchesRequested = 5
	cfg.HeadInterval = 300 * time.Millisecond // GetMatchHistory shares the keys' budget
	cfg.StartSeqNum = fake.Matches()[0].SeqNum
	r := start(t, cfg, noResume, newRecorder())

	const warmUp, measured = 80, 250
	waitCalls(t, fake, warmUp)
	calls := waitCalls(t, fake, warmUp+measured)
	r.stop(t, 5*time.Second)

	all := tallyKeys(calls, 2)
	final := tallyKeys(fake.Calls(), 2)
	steady := tallyKeys(calls[warmUp:warmUp+measured], 2)
	intervals := r.s.KeyIntervals()
	t.Logf("all %d calls: %d refused (%.1f%%), per key %v refused %v; steady state: %d of %d refused (%.1f%%); learned intervals %v (limit %v)",
		all.total, all.refusals, 100*float64(all.refusals)/float64(all.total), all.calls, all.refused,
		steady.refusals, steady.total, 100*float64(steady.refusals)/float64(steady.total), intervals, limit)

	if all.total < warmUp+measured || all.refusals == 0 {
		t.Fatalf("%d calls, %d refused: the keys never reached Steam's limit, so nothing was learnt", all.total, all.refusals)
	}
	// About 1 in 80 in theory; a loaded machine adds some.
	if f := float64(steady.refusals) / float64(steady.total); f > 0.08 {
		t.Errorf("%.1f%% of the calls refused in steady state, want at most 8%%", 100*f)
	}
	for i, n := range steady.calls {
		if n < steady.total/3 {
			t.Errorf("key %d made %d of %d calls, want a fair share", i+1, n, steady.total)
		}
	}
	for i, iv := range intervals {
		if iv < limit*8/10 || iv > limit*2 {
			t.Errorf("key %d learnt %v, want near the limit %v", i+1, iv, limit)
		}
		label := []string{"1", "2"}[i]
		if got := testutil.ToFloat64(r.s.cl.m.keyInterval.WithLabelValues(label)); got != iv.Seconds() {
			t.Errorf("ingestion_steam_key_interval_seconds{key=%q} = %v, want %v", label, got, iv.Seconds())
		}
		// The fake counts a call the scanner, stopped, may never read.
		if got, n := testutil.ToFloat64(r.s.cl.m.keyRefused.WithLabelValues(label)), float64(final.refused[i]); got != n && got != n-1 {
			t.Errorf("ingestion_steam_key_refused_total{key=%q} = %v, want the fake's %v", label, got, n)
		}
	}
	var history int
	for _, c := range calls {
		if c.Endpoint == steamfake.History {
			history++
		}
	}
	if history == 0 {
		t.Error("no GetMatchHistory call was made")
	}
}

// TestRefusedCallGoesToTheNextKey: a 429 on one key is retried at once
// with the other, which is free, rather than after a backoff.
func TestRefusedCallGoesToTheNextKey(t *testing.T) {
	keys := []string{"key-one", "key-two"}
	fake, base := steamfake.Start(t, steamfake.Options{Count: 300, Keys: keys})
	cfg := testConfig(base)
	cfg.Keys = keys
	cfg.KeyInterval = time.Second
	cfg.BackoffMin, cfg.BackoffMax = time.Hour, time.Hour // a backoff would stall the test
	cfg.StartSeqNum = fake.Matches()[0].SeqNum
	fake.Fail(1, steamfake.Fault{Status: http.StatusTooManyRequests})
	rec := newRecorder()
	r := start(t, cfg, noResume, rec)
	rec.wait(t, 100)
	calls := waitCalls(t, fake, 2)
	if calls[0].Status != http.StatusTooManyRequests || calls[1].Status != http.StatusOK ||
		calls[0].Key == calls[1].Key || calls[1].StartAt != calls[0].StartAt {
		t.Fatalf("calls = %+v, want a 429 then the same page with the other key", calls[:2])
	}
	if gap := calls[1].Time.Sub(calls[0].Time); gap > 500*time.Millisecond {
		t.Errorf("the retry came %v after the 429, want at once", gap)
	}
	// A first call is not at the key's pace: its refusal says someone
	// else used the key, not that the interval is too short.
	if ivs := r.s.KeyIntervals(); ivs[0] != time.Second || ivs[1] != time.Second {
		t.Errorf("intervals after a refused first call = %v, want both kept at 1s", ivs)
	}
}

// TestKeyPoolLearns drives the pool directly: slow start's first refusal
// takes the key back to the interval before its last step, later refusals
// of calls made at the key's pace slow it down by 1.15 (the last check),
// runs of successes speed it up (fast
// before its first refusal, slowly after), never below MinInterval; a
// refusal after the key sat idle holds it back without changing what it
// learnt.
func TestKeyPoolLearns(t *testing.T) {
	cfg := Config{Keys: []string{"k"}, KeyInterval: 20 * time.Millisecond, MinInterval: 10 * time.Millisecond, BackoffMax: time.Second}.withDefaults()
	p := newKeyPool(cfg, mustMetrics(t), slog.New(slog.DiscardHandler))
	ctx := t.Context()
	call := func() *apiKey {
		k := p.acquire(ctx, prioForward)
		if k == nil {
			t.Fatal("no key")
		}
		return k
	}
	// paced is a call made when the key came due: whether a real one
	// starts within half an interval of that depends on the machine's
	// load, and this test is about what the pool learns from it.
	paced := func() *apiKey {
		k := call()
		p.mu.Lock()
		k.pressed = true
		p.mu.Unlock()
		return k
	}
	k := call() // the first call: not at pace
	p.refused(k, 0)
	if iv := p.intervals()[0]; iv != 20*time.Millisecond || k.refused {
		t.Fatalf("after a refused first call: interval %v, slow start over %v; want 20ms, no", iv, k.refused)
	}
	for range slowStartAfter {
		p.succeeded(paced())
	}
	if iv := p.intervals()[0]; iv != 16*time.Millisecond {
		t.Fatalf("after %d successes at pace: %v, want 16ms (×0.8)", slowStartAfter, iv)
	}
	p.refused(paced(), 0)
	if iv := p.intervals()[0]; iv != 20*time.Millisecond || !k.refused {
		t.Fatalf("after slow start's first refusal at pace: %v, want 20ms (the step before, not ×1.15 = 18.4ms) and slow start over", iv)
	}
	for range speedUpAfter {
		p.succeeded(paced())
	}
	if iv := p.intervals()[0]; iv != time.Duration(float64(20*time.Millisecond)*speedUp) {
		t.Fatalf("after %d successes: %v, want ×%v", speedUpAfter, iv, speedUp)
	}
	for range 25 * speedUpAfter {
		p.succeeded(paced())
	}
	if iv := p.intervals()[0]; iv != cfg.MinInterval {
		t.Fatalf("after many successes: %v, want the floor %v", iv, cfg.MinInterval)
	}
	time.Sleep(50 * time.Millisecond) // the key sits idle
	p.refused(call(), 0)
	if iv := p.intervals()[0]; iv != cfg.MinInterval {
		t.Fatalf("a refusal after idling: %v, want the learnt %v kept", iv, cfg.MinInterval)
	}
	p.refused(paced(), 0) // at pace, after the hold
	if iv := p.intervals()[0]; iv != 11500*time.Microsecond {
		t.Fatalf("a refusal at pace: %v, want 11.5ms", iv)
	}
}

func mustMetrics(t *testing.T) *clientMetrics {
	t.Helper()
	m, err := newClientMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRejectedKeyIsHeldBack: a key Steam refuses (403) is held back and
// the scan goes on with the other key.
func TestRejectedKeyIsHeldBack(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 1000, Keys: []string{"good-key"}})
	cfg := testConfig(base)
	cfg.Keys = []string{"revoked-s3cr3t", "good-key"}
	cfg.BackoffMin, cfg.BackoffMax = 200*time.Millisecond, time.Second
	cfg.StartSeqNum = fake.Matches()[0].SeqNum
	rec := newRecorder()
	r := start(t, cfg, noResume, rec)
	rec.wait(t, 1000)
	var forbidden, ok int
	for _, c := range fake.Calls() {
		switch c.Status {
		case http.StatusForbidden:
			forbidden++
		case http.StatusOK:
			ok++
		}
	}
	if forbidden == 0 || forbidden > ok/2 || ok < 10 {
		t.Errorf("%d calls refused the key, %d went through; want the bad key tried and held back", forbidden, ok)
	}
	if got := testutil.ToFloat64(r.s.cl.m.keyCalls.WithLabelValues("2")); got < 10 {
		t.Errorf("ingestion_steam_key_calls_total{key=\"2\"} = %v", got)
	}
	if logs := r.logs.String(); !strings.Contains(logs, "refused API key 1") || strings.Contains(logs, "s3cr3t") {
		t.Errorf("logs do not name the refused key by position only: %s", logs)
	}
}

// TestRandomRefusalsDoNotSlowTheKey: a Steam that refuses one call in
// seven whatever the pace, with Retry-After: 1, on top of a limit of one
// call per 100 ms. The scan starts 600 matches behind a head that moves
// 10 a second, with pages of 10: it must call at its key's pace to catch
// up. The key keeps an interval near the limit, waits out each
// Retry-After once, and the scan catches up with the head. Before, every
// such 429 made the interval 1.15 times longer, and the key crawled at
// its ceiling, far behind the head.
func TestRandomRefusalsDoNotSlowTheKey(t *testing.T) {
	const limit, perSecond, run = 100 * time.Millisecond, 10, 30 * time.Second
	fake, base := steamfake.Start(t, steamfake.Options{Count: 600, RateInterval: limit,
		RandomRefusals: 1.0 / 7, RandomRetryAfter: "1"})
	cfg := testConfig(base)
	cfg.KeyInterval = 4 * limit
	cfg.MinInterval = limit / 2
	cfg.BackoffMax = 10 * time.Second
	cfg.MatchesRequested = 10
	cfg.HeadInterval = time.Hour
	cfg.IdleWait = 500 * time.Millisecond
	cfg.StartSeqNum = fake.Matches()[0].SeqNum
	rec := newRecorder()
	r := start(t, cfg, noResume, rec)

	began := time.Now()
	tick := time.NewTicker(time.Second / perSecond)
	defer tick.Stop()
	for time.Since(began) < run {
		<-tick.C
		fake.Advance(1)
	}
	head := fake.Head()
	matches, _ := rec.snapshot()
	r.stop(t, 5*time.Second)
	last := int64(0)
	for _, m := range matches {
		last = max(last, m.SeqNum)
	}
	calls := fake.Calls()
	var random, paced, waitedOut int
	for i, c := range calls {
		if c.Status != http.StatusTooManyRequests {
			continue
		}
		if c.RetryAfter == "" {
			paced++
			continue
		}
		random++
		if i+1 < len(calls) && calls[i+1].Time.Sub(c.Time) >= 900*time.Millisecond {
			waitedOut++
		}
	}
	iv := r.s.KeyIntervals()[0]
	unpaced := testutil.ToFloat64(r.s.cl.m.keyRefusedUnpaced.WithLabelValues("1"))
	t.Logf("%v at %d matches/s: %d calls, %d refused at random (Retry-After 1; %d waited out), %d for the pace, %.0f taken as not the pace; "+
		"learnt interval %v (limit %v); the scan at %d, the head at %d: %d behind",
		run, perSecond, len(calls), random, waitedOut, paced, unpaced, iv, limit, last, head, head-last)

	if random < 10 {
		t.Fatalf("only %d random refusals: the fake did not refuse as configured", random)
	}
	if iv > 2*limit {
		t.Errorf("the key's interval grew to %v against a limit of %v", iv, limit)
	}
	if waitedOut < random*9/10 {
		t.Errorf("%d of %d Retry-After waited out, want each", waitedOut, random)
	}
	if behind := head - last; behind > 2*perSecond {
		t.Errorf("the scan ended %d matches behind the head, want at most %d (2 s)", behind, 2*perSecond)
	}
}
