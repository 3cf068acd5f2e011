package steamseq

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// shardRecorder is a ShardHandler that keeps what it is given; commit,
// when set, decides on each page's end.
type shardRecorder struct {
	commit func(at ShardCursor) error

	mu      sync.Mutex
	page    []match.Match // of the open page
	matches []match.Match // of the committed pages
	objects map[int64][]byte
	rejects int
	cursors []ShardCursor
}

func (r *shardRecorder) MatchObject(_ context.Context, m match.Match, object []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.page = append(r.page, m)
	if r.objects == nil {
		r.objects = map[int64][]byte{}
	}
	r.objects[m.SeqNum] = append([]byte(nil), object...)
	return nil
}

func (r *shardRecorder) Reject(context.Context, match.Reason, []byte) {
	r.mu.Lock()
	r.rejects++
	r.mu.Unlock()
}

func (r *shardRecorder) EndShardPage(_ context.Context, at ShardCursor) error {
	if r.commit != nil {
		if err := r.commit(at); err != nil {
			r.mu.Lock()
			r.page = nil
			r.mu.Unlock()
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.matches = append(r.matches, r.page...)
	r.page = nil
	r.cursors = append(r.cursors, at)
	return nil
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	cl, err := NewClient(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestScanShard: a shard hands on exactly the listed matches of its range,
// each object as served, through thin pages (hidden matches) and gaps,
// nothing at or past its end, and ends with a cursor at its end.
func TestScanShard(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 3000, HiddenEvery: 7, GapEvery: 50, Gap: 13})
	all := fake.Matches()
	r := Range{From: all[500].SeqNum + 1, To: all[2100].SeqNum} // starts and ends between listed matches
	cfg := testConfig(base)
	cl := newTestClient(t, cfg)
	rec := &shardRecorder{}
	if err := cl.ScanShard(t.Context(), StartShard(r), rec, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	var want []match.Match
	for _, m := range all {
		if m.SeqNum >= r.From && m.SeqNum < r.To {
			want = append(want, m)
		}
	}
	got := rec.matches
	if len(got) != len(want) {
		t.Fatalf("got %d matches, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].SeqNum != want[i].SeqNum {
			t.Fatalf("match %d = %+v, want %+v", i, got[i], want[i])
		}
		if body, _ := fake.Body(want[i].SeqNum); string(rec.objects[want[i].SeqNum]) != body {
			t.Fatalf("object of seq %d differs from what the fake served", want[i].SeqNum)
		}
	}
	last := rec.cursors[len(rec.cursors)-1]
	if !last.Done() || last.Position != r.To-1 || last.Matches != int64(len(want)) || len(last.Skipped) != 0 {
		t.Fatalf("last cursor %+v, want done at %d with %d matches", last, r.To-1, len(want))
	}
	for i := 1; i < len(rec.cursors); i++ {
		if rec.cursors[i].Position <= rec.cursors[i-1].Position {
			t.Fatalf("cursor %d at %d after %d: not forward", i, rec.cursors[i].Position, rec.cursors[i-1].Position)
		}
	}
	// A finished shard makes no call.
	calls := len(fake.Calls())
	if err := cl.ScanShard(t.Context(), last, rec, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Calls()); n != calls {
		t.Fatalf("a finished shard called Steam %d times", n-calls)
	}
}

// TestScanShardStepsPastABrokenMatch: the broken match's seq is stepped
// past and kept in the cursor; the shard resumes from a committed cursor
// after a page that did not commit, and hands on the page again.
func TestScanShardStepsPastABrokenMatch(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 1000})
	all := fake.Matches()
	broken := all[420].SeqNum
	fake.Break(broken, 0)
	cfg := testConfig(base)
	cfg.SkipAfter = 50 * time.Millisecond
	cl := newTestClient(t, cfg)
	r := Range{From: all[100].SeqNum, To: all[900].SeqNum}
	fail := errors.New("transaction aborted")
	pages := 0
	rec := &shardRecorder{commit: func(ShardCursor) error {
		if pages++; pages == 3 {
			return fail
		}
		return nil
	}}
	err := cl.ScanShard(t.Context(), StartShard(r), rec, slog.New(slog.DiscardHandler), nil)
	if !errors.Is(err, fail) {
		t.Fatalf("ScanShard = %v, want the handler's error", err)
	}
	resume := rec.cursors[len(rec.cursors)-1]
	if err := cl.ScanShard(t.Context(), resume, rec, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	last := rec.cursors[len(rec.cursors)-1]
	if len(last.Skipped) != 1 || last.Skipped[0] != (SeqRange{broken, broken}) || last.SkippedSeqs() != 1 {
		t.Fatalf("skipped %+v, want the broken seq %d alone", last.Skipped, broken)
	}
	if got, want := len(rec.matches), 800-1; got != want || last.Matches != int64(want) {
		t.Fatalf("got %d matches (cursor %d), want %d: every match of the range but the broken one, once", got, last.Matches, want)
	}
	seen := map[int64]bool{}
	for _, m := range rec.matches {
		if seen[m.SeqNum] || m.SeqNum == broken || m.SeqNum < r.From || m.SeqNum >= r.To {
			t.Fatalf("seq %d handed on twice, broken, or outside the range", m.SeqNum)
		}
		seen[m.SeqNum] = true
	}
}

// TestBackfillWaitsForTheForwardScan: with one key, a caller of the
// forward scan that waits gets the key before every backfill caller
// waiting, and the rescan, not allowed to call, keeps none from it.
func TestBackfillWaitsForTheForwardScan(t *testing.T) {
	cfg := Config{Keys: []string{"k"}, KeyInterval: 300 * time.Millisecond, MinInterval: 300 * time.Millisecond, DailyCalls: -1}.withDefaults()
	p := newKeyPool(cfg, mustMetrics(t), slog.New(slog.DiscardHandler))
	ctx := t.Context()
	p.acquire(ctx, prioForward) // the key is busy for an interval
	order := make(chan priority, 10)
	var wg sync.WaitGroup
	for _, prio := range []priority{prioBackfill, prioBackfill, prioRescan} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p.acquire(ctx, prio) != nil {
				order <- prio
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // the others wait first
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.acquire(ctx, prioForward)
		order <- prioForward
	}()
	got := []priority{<-order, <-order, <-order}
	if got[0] != prioForward || got[1] != prioBackfill || got[2] != prioBackfill {
		t.Fatalf("order %v, want the forward scan, then the two backfill callers (the rescan may not call)", got)
	}
	p.allowLow(true)
	if prio := <-order; prio != prioRescan {
		t.Fatalf("then %v, want the rescan once allowed", prio)
	}
	wg.Wait()
}

// TestDailyCallsHoldAKeyUntilMidnight: a key that made DailyCalls calls
// in a UTC day rests until 00:00 UTC and is shown exhausted; the other
// key takes the calls meanwhile.
func TestDailyCallsHoldAKeyUntilMidnight(t *testing.T) {
	cfg := Config{Keys: []string{"a", "b"}, KeyInterval: -1, MinInterval: -1, DailyCalls: 3}.withDefaults()
	m := mustMetrics(t)
	p := newKeyPool(cfg, m, slog.New(slog.DiscardHandler))
	// The clock stands 2 s before midnight UTC.
	midnight := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	offset := time.Until(midnight.Add(-2 * time.Second))
	p.now = func() time.Time { return time.Now().Add(offset) }
	used := map[string]int{}
	for range 6 {
		used[p.acquire(t.Context(), prioBackfill).label]++
	}
	if used["1"] != 3 || used["2"] != 3 {
		t.Fatalf("calls by key %v, want 3 each before midnight", used)
	}
	if ex := p.exhausted(); len(ex) != 2 {
		t.Fatalf("exhausted %v, want both keys", ex)
	}
	began := time.Now()
	left := midnight.Sub(p.now())
	k := p.acquire(t.Context(), prioBackfill)
	if waited := time.Since(began); waited < left-50*time.Millisecond {
		t.Fatalf("a call after both keys' budgets went after %v, want it to wait for midnight (%v)", waited, left)
	}
	if len(p.exhausted()) != 0 || k.today != 1 {
		t.Fatalf("after midnight: exhausted %v, key %s today %d; want none, the key used counted from 1", p.exhausted(), k.label, k.today)
	}
}
