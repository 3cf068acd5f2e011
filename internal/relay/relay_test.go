package relay

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dota-data/ingestion-service/internal/logtest"
	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/spool"
)

// producer is an in-memory Producer. While held, it keeps records pending
// instead of acknowledging them.
type producer struct {
	mu        sync.Mutex
	got       []int64
	matches   []match.Match // every delivered match, whole
	pending   []pending
	hold      bool
	failOnce  map[int64]bool
	closed    bool
	delivered chan struct{}

	refuseUntil time.Time // every record fails with refusal until then
	refusal     error
	attempts    map[int64]int
}

// refuse makes every record fail with err for d.
func (p *producer) refuse(err error, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusal, p.refuseUntil = err, time.Now().Add(d)
}

// maxAttempts returns the most times one match was produced.
func (p *producer) maxAttempts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, a := range p.attempts {
		n = max(n, a)
	}
	return n
}

type pending struct {
	m     match.Match
	token uint64
	done  func(uint64, error)
}

func newProducer() *producer {
	return &producer{failOnce: map[int64]bool{}, delivered: make(chan struct{}, 1)}
}

func (p *producer) Produce(_ context.Context, m match.Match, token uint64, done func(uint64, error)) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("producer closed")
	}
	if p.attempts == nil {
		p.attempts = map[int64]int{}
	}
	p.attempts[m.ID]++
	if time.Now().Before(p.refuseUntil) {
		p.mu.Unlock()
		done(token, p.refusal)
		return nil
	}
	if p.hold {
		p.pending = append(p.pending, pending{m, token, done})
		p.mu.Unlock()
		return nil
	}
	if p.failOnce[m.ID] {
		delete(p.failOnce, m.ID)
		p.mu.Unlock()
		done(token, errors.New("injected failure"))
		return nil
	}
	p.got = append(p.got, m.ID)
	p.matches = append(p.matches, m)
	p.mu.Unlock()
	done(token, nil)
	select {
	case p.delivered <- struct{}{}:
	default:
	}
	return nil
}

// setHold holds or releases records; releasing acknowledges those held.
func (p *producer) setHold(hold bool) {
	p.mu.Lock()
	p.hold = hold
	var release []pending
	if !hold {
		release, p.pending = p.pending, nil
		for _, r := range release {
			p.got = append(p.got, r.m.ID)
			p.matches = append(p.matches, r.m)
		}
	}
	p.mu.Unlock()
	for _, r := range release {
		r.done(r.token, nil)
	}
}

// close fails every held record, as a Kafka client does when closed.
func (p *producer) close() {
	p.mu.Lock()
	p.closed = true
	held := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, r := range held {
		r.done(r.token, errors.New("client closed"))
	}
}

func (p *producer) ids() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.got...)
}

func (p *producer) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for len(p.ids()) < n {
		select {
		case <-p.delivered:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("delivered %d of %d", len(p.ids()), n)
		}
	}
}

func openSpool(t *testing.T, dir string, maxBytes int64) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: dir, MaxBytes: maxBytes, SegmentBytes: 4096})
	if err != nil {
		t.Fatalf("open spool: %v", err)
	}
	t.Cleanup(func() {
		if err := sp.Close(); err != nil && !errors.Is(err, spool.ErrClosed) {
			t.Errorf("close spool: %v", err)
		}
	})
	return sp
}

type running struct {
	r      *Relay
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config, p Producer, sp Spool) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var s Spool
	if sp != nil {
		s = sp
	}
	r, err := New(cfg, p, s, slog.New(slog.DiscardHandler), m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-run.done; run.done <- nil })
	return run
}

func (run *running) stop(t *testing.T) {
	t.Helper()
	run.cancel()
	if err := <-run.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	run.done <- nil
}

func put(t *testing.T, r *Relay, from, to int64) {
	t.Helper()
	for id := from; id <= to; id++ {
		if err := r.Publish(context.Background(), match.Match{ID: id}); err != nil {
			t.Fatalf("Publish(%d): %v", id, err)
		}
	}
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func sameOrder(t *testing.T, got, want []int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("delivered %d matches, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivery %d is match %d, want %d", i, got[i], want[i])
		}
	}
}

func TestMemoryModeDeliversInOrder(t *testing.T) {
	p := newProducer()
	run := start(t, Config{Mode: Memory}, p, nil)
	put(t, run.r, 1, 5000)
	p.waitFor(t, 5000)
	sameOrder(t, p.ids(), seq(1, 5000))
}

func TestOverflowSpillsToDiskAndReplaysInOrder(t *testing.T) {
	p := newProducer()
	p.setHold(true) // Kafka is down
	sp := openSpool(t, t.TempDir(), 0)
	run := start(t, Config{Mode: Overflow, MaxRecords: 100, MaxInFlight: 10}, p, sp)

	put(t, run.r, 1, 2000) // none of these may block
	waitStats(t, run.r, "the backlog on disk", func(s Stats) bool { return s.SpoolRecords >= 1800 && !s.Oldest.IsZero() })
	st := run.r.Stats()
	if st.Memory > 100 || st.InFlight > 10 || st.SpoolBytes == 0 || st.Oldest.IsZero() {
		t.Fatalf("stats while Kafka is down: %+v", st)
	}
	if got := testutil.ToFloat64(gauge(t, run.reg, "ingestion_spool_records")); got < 1800 {
		t.Fatalf("ingestion_spool_records = %v", got)
	}

	p.setHold(false) // Kafka is back
	p.waitFor(t, 2000)
	sameOrder(t, p.ids(), seq(1, 2000))
	waitStats(t, run.r, "an empty spool", func(s Stats) bool { return s.SpoolRecords == 0 && s.InFlight == 0 })

	// Back to memory: new matches no longer touch the disk.
	put(t, run.r, 2001, 2010)
	p.waitFor(t, 2010)
	sameOrder(t, p.ids(), seq(1, 2010))
}

func TestDiskModeWritesAheadOfProducing(t *testing.T) {
	dir := t.TempDir()
	p := newProducer()
	p.setHold(true)
	sp := openSpool(t, dir, 0)
	r, err := New(Config{Mode: Disk}, p, sp, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	put(t, r, 1, 300)
	// Before anything is produced, every accepted match is on disk: a
	// process killed now loses nothing. Read a copy of the directory as it
	// is, without closing anything (the spool keeps it locked).
	copyDir := t.TempDir()
	copyFiles(t, dir, copyDir)
	again := openSpool(t, copyDir, 0)
	var ids []int64
	buf := make([]byte, 0, 16)
	for {
		payload, _, _, ok, err := again.Next(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		m, err := Decode(payload)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	sameOrder(t, ids, seq(1, 300))
}

func TestBlockWhenFull(t *testing.T) {
	p := newProducer()
	p.setHold(true)
	run := start(t, Config{Mode: Memory, MaxRecords: 5, MaxInFlight: 5}, p, nil)
	put(t, run.r, 1, 10) // 5 in flight, 5 in memory
	waitStats(t, run.r, "five in flight", func(s Stats) bool { return s.InFlight == 5 && s.Memory == 5 })

	blocked := make(chan error, 1)
	go func() { blocked <- run.r.Publish(context.Background(), match.Match{ID: 11}) }()
	select {
	case err := <-blocked:
		t.Fatalf("Publish on a full relay returned %v instead of blocking", err)
	case <-time.After(100 * time.Millisecond):
	}
	if st := run.r.Status(); st.Up {
		t.Fatalf("status while full = %+v, want down", st)
	}
	p.setHold(false)
	if err := <-blocked; err != nil {
		t.Fatalf("blocked Publish: %v", err)
	}
	p.waitFor(t, 11)
	sameOrder(t, p.ids(), seq(1, 11))
	waitStats(t, run.r, "room again", func(Stats) bool { return run.r.Status().Up })
}

func TestAbortReleasesBlockedPublish(t *testing.T) {
	p := newProducer()
	p.setHold(true)
	run := start(t, Config{Mode: Memory, MaxRecords: 1, MaxInFlight: 1}, p, nil)
	put(t, run.r, 1, 2)
	waitStats(t, run.r, "full", func(s Stats) bool { return s.InFlight == 1 && s.Memory == 1 })
	blocked := make(chan error, 1)
	go func() { blocked <- run.r.Publish(context.Background(), match.Match{ID: 3}) }()
	run.r.Abort()
	if err := <-blocked; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Publish after Abort = %v, want ErrClosed", err)
	}
}

func TestDropNewestWhenFull(t *testing.T) {
	p := newProducer()
	p.setHold(true)
	sp := openSpool(t, t.TempDir(), 8192) // room for a few hundred records
	run := start(t, Config{Mode: Overflow, WhenFull: DropNewest, MaxRecords: 10, MaxInFlight: 10}, p, sp)
	var dropped int
	for id := int64(1); id <= 5000; id++ {
		err := run.r.Publish(context.Background(), match.Match{ID: id})
		switch {
		case errors.Is(err, ErrDropped):
			dropped++
		case err != nil:
			t.Fatal(err)
		}
	}
	if dropped == 0 || run.r.Stats().Dropped != int64(dropped) {
		t.Fatalf("dropped %d, stats say %d", dropped, run.r.Stats().Dropped)
	}
	accepted := 5000 - dropped
	p.setHold(false)
	p.waitFor(t, accepted)
	// Everything accepted arrives, in order, and nothing else.
	got := p.ids()
	if len(got) != accepted {
		t.Fatalf("delivered %d, accepted %d", len(got), accepted)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order: %d after %d", got[i], got[i-1])
		}
	}
}

func TestFailedDeliveryIsRetried(t *testing.T) {
	p := newProducer()
	p.failOnce[3] = true
	run := start(t, Config{Mode: Memory, RetryBackoff: 5 * time.Millisecond}, p, nil)
	put(t, run.r, 1, 5)
	p.waitFor(t, 5)
	got := map[int64]bool{}
	for _, id := range p.ids() {
		got[id] = true
	}
	if len(got) != 5 || !got[3] {
		t.Fatalf("delivered %v", p.ids())
	}
	if n := testutil.ToFloat64(run.r.metrics.retries); n != 1 {
		t.Fatalf("retries = %v, want 1", n)
	}
}

func TestCloseKeepsUnacknowledgedMatchesForTheNextStart(t *testing.T) {
	dir := t.TempDir()
	p := newProducer()
	p.setHold(true)
	sp := openSpool(t, dir, 0)
	run := start(t, Config{Mode: Overflow, MaxRecords: 20, MaxInFlight: 10}, p, sp)
	put(t, run.r, 1, 100) // 10 in flight, the rest in memory or spooled
	waitStats(t, run.r, "ten in flight", func(s Stats) bool { return s.InFlight == 10 })
	run.stop(t)
	p.close() // the Kafka client fails what it held
	before := run.r.Stats()
	rep, err := run.r.Close()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if want := (CloseReport{Spooled: 100, WrittenAtShutdown: 100 - int(before.SpoolRecords)}); rep != want || before.SpoolRecords >= 90 {
		t.Fatalf("Close reported %+v with %d spooled before, want %+v: all 100 spooled, none lost", rep, before.SpoolRecords, want)
	}

	// The next start replays all 100.
	p2 := newProducer()
	sp2 := openSpool(t, dir, 0)
	run2 := start(t, Config{Mode: Overflow}, p2, sp2)
	p2.waitFor(t, 100)
	got := map[int64]bool{}
	for _, id := range p2.ids() {
		got[id] = true
	}
	if len(got) != 100 {
		t.Fatalf("after restart %d distinct matches delivered, want 100", len(got))
	}
	run2.stop(t)
}

func TestMemoryModeReportsLossAtClose(t *testing.T) {
	p := newProducer()
	p.setHold(true)
	run := start(t, Config{Mode: Memory, MaxInFlight: 4}, p, nil)
	put(t, run.r, 1, 10)
	waitStats(t, run.r, "four in flight", func(s Stats) bool { return s.InFlight == 4 })
	run.stop(t)
	p.close()
	rep, err := run.r.Close()
	if err == nil || err.Error() != "relay: 10 matches lost at shutdown" {
		t.Fatalf("Close = %v, want 10 lost", err)
	}
	if rep != (CloseReport{Lost: 10}) {
		t.Fatalf("Close reported %+v, want 10 lost and nothing spooled", rep)
	}
}

func TestCloseInputEndsRunOnceDrained(t *testing.T) {
	p := newProducer()
	run := start(t, Config{Mode: Overflow, MaxRecords: 10}, p, openSpool(t, t.TempDir(), 0))
	put(t, run.r, 1, 500)
	run.r.CloseInput()
	select {
	case err := <-run.done:
		if err != nil {
			t.Fatal(err)
		}
		run.done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after CloseInput")
	}
	if len(p.ids()) != 500 {
		t.Fatalf("Run returned with %d of 500 delivered", len(p.ids()))
	}
}

func waitStats(t *testing.T, r *Relay, what string, cond func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(r.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, r.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: "copy"}, func() float64 { return mf.GetMetric()[0].GetGauge().GetValue() })
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func copyFiles(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "lock" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSequenceNumbersSurviveMemorySpoolAndRestart(t *testing.T) {
	dir := t.TempDir()
	p := newProducer()
	p.setHold(true)
	sp := openSpool(t, dir, 0)
	run := start(t, Config{Mode: Overflow, MaxRecords: 20, MaxInFlight: 10}, p, sp)
	want := map[int64]match.Match{}
	for id := int64(1); id <= 100; id++ {
		m := match.Match{ID: id, SeqNum: 5000 + id, StartTime: 1_700_000_000 + id}
		if id%10 == 0 {
			m.SeqNum, m.StartTime = 0, 0 // a source may lack them for some
		}
		want[id] = m
		if err := run.r.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	// 10 in flight, 20 in memory, 70 spooled.
	waitStats(t, run.r, "ten in flight", func(s Stats) bool { return s.InFlight == 10 })
	run.stop(t)
	p.close()
	if _, err := run.r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	p2 := newProducer()
	run2 := start(t, Config{Mode: Overflow}, p2, openSpool(t, dir, 0))
	p2.waitFor(t, 100)
	run2.stop(t)
	p2.mu.Lock()
	defer p2.mu.Unlock()
	for _, m := range p2.matches {
		if m != want[m.ID] {
			t.Errorf("delivered %+v, want %+v", m, want[m.ID])
		}
	}
}

func TestDecode(t *testing.T) {
	for _, m := range []match.Match{
		{ID: 1},
		{ID: 1<<63 - 1},
		{ID: 42, SeqNum: 7},
		{ID: 42, StartTime: 1_700_000_000},
		{ID: 42, SeqNum: 6_000_000_000, StartTime: 1_700_000_000},
		{ID: 42, SeqNum: 6_000_000_000, StartTime: 1_700_000_000, RescanSeq: 5_999_950_000},
		{ID: 42, RescanSeq: 3},
	} {
		var buf [maxPayload]byte
		got, err := Decode(encode(&buf, m))
		if err != nil || got != m {
			t.Errorf("Decode(encode(%+v)) = %+v, %v", m, got, err)
		}
	}
	for _, p := range [][]byte{nil, {1}, {3, 1, 0, 0, 0, 0, 0, 0, 0}, {1, 0, 0, 0, 0, 0, 0, 0, 0}, make([]byte, payloadV2), append([]byte{2}, make([]byte, payloadV3-1)...)} {
		if m, err := Decode(p); err == nil {
			t.Errorf("Decode(%v) = %+v, want an error", p, m)
		}
	}
}

// TestRefusalsAreHeldAndSummarised: a broker refuses every record for
// a while for a reason no retry can mend. The relay holds them all for
// one retry of their cause at a time, later each time it fails again
// (not one a match, not at a fixed pace); logs the cause at most once a
// ReportEvery, readiness says what is held, and once the broker takes
// records again every match is delivered and the relay says so once.
func TestRefusalsAreHeldAndSummarised(t *testing.T) {
	p := newProducer()
	tooLarge := errors.New("MESSAGE_TOO_LARGE: the broker refuses the record")
	p.refuse(tooLarge, 1500*time.Millisecond)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	cfg := Config{Mode: Memory, RetryBackoff: 5 * time.Millisecond, RetryBackoffMax: 50 * time.Millisecond, ReportEvery: 400 * time.Millisecond,
		Classify: func(err error) (string, bool) {
			if errors.Is(err, tooLarge) {
				return "MESSAGE_TOO_LARGE", true
			}
			return "other", false
		}}
	r, err := New(cfg, p, nil, slog.New(slog.NewJSONHandler(logs, nil)), m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	put(t, r, 1, 200)
	waitFor(t, "readiness naming what is held", func() bool {
		return strings.Contains(r.Status().Detail, "200 held: MESSAGE_TOO_LARGE")
	})
	p.waitFor(t, 200)
	attempts := p.maxAttempts()
	// A retry every 50 ms (10 times RetryBackoff) doubling to 500 ms over
	// 1.5 s is about 6 passes; a fixed 5 ms would be 300.
	if attempts > 12 {
		t.Errorf("a match was tried %d times in 1.5 s: the retries do not back off", attempts)
	}
	waitFor(t, "the recovery logged", func() bool { return len(logs.Lines(t, "Kafka takes the matches it refused again")) == 1 })
	held := logs.Lines(t, "Kafka refuses matches; holding them for a retry")
	most := 0.0
	for _, l := range held {
		most = max(most, l["held"].(float64))
	}
	if len(held) == 0 || len(held) > 5 || held[0]["cause"] != "MESSAGE_TOO_LARGE" || most != 200 {
		t.Fatalf("%d summary lines (%v); want one a 400 ms at most over 1.5 s, each with the cause and the matches held", len(held), held)
	}
	if n := strings.Count(logs.String(), "\n"); n > 10 {
		t.Errorf("%d log lines in all, want a few", n)
	}
	t.Logf("each match tried at most %d times; %d summary lines", attempts, len(held))
}

// failHeld fails what the producer holds, as a fenced writer's client
// does, and goes on producing.
func (p *producer) failHeld() {
	p.mu.Lock()
	held := p.pending
	p.pending, p.hold = nil, false
	p.mu.Unlock()
	for _, r := range held {
		r.done(r.token, errors.New("fenced"))
	}
}

// TestSkipDeliveredPassesOverWhatTheTopicHolds: a backlog kept from an
// earlier lead (failed in flight, in memory, in the spool) is matched
// against what the topic holds when the relay runs again: only the
// matches the topic lacks are sent, and the spool is committed past the
// others.
func TestSkipDeliveredPassesOverWhatTheTopicHolds(t *testing.T) {
	dir := t.TempDir()
	p := newProducer()
	p.setHold(true)
	sp := openSpool(t, dir, 0)
	run := start(t, Config{Mode: Overflow, MaxRecords: 20, MaxInFlight: 10, RetryBackoff: time.Millisecond}, p, sp)
	put(t, run.r, 1, 100)
	waitStats(t, run.r, "ten in flight", func(s Stats) bool { return s.InFlight == 10 })
	if st := run.r.Stats(); st.SpoolRecords == 0 {
		t.Fatalf("nothing spooled (%+v): the test would not cover the spool", st)
	}
	run.stop(t)
	p.failHeld() // the writer is fenced; the ten come back failed

	inTopic := map[int64]bool{}
	for id := int64(1); id <= 100; id += 2 {
		inTopic[id] = true // another leader delivered the odd ones
	}
	run.r.SkipDelivered(inTopic)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.r.Run(ctx) }()
	p.waitFor(t, 50)
	waitStats(t, run.r, "the backlog settled", func(s Stats) bool { return s.InFlight == 0 && s.Memory == 0 && s.SpoolRecords == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := p.ids()
	slices.Sort(got)
	var want []int64
	for id := int64(2); id <= 100; id += 2 {
		want = append(want, id)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sent %v, want only the even IDs the topic lacks", got)
	}
	if n := testutil.ToFloat64(run.r.metrics.delivered); n != 50 {
		t.Fatalf("ingestion_relay_already_delivered_total = %v, want 50", n)
	}
	if run.r.skipIDs != nil {
		t.Fatalf("the set is kept after the backlog was taken")
	}
}

// TestRefusedProduceIsRetried: a Producer that refuses matches outright
// (a fleet replica's sink while it does not lead) gets them again once it
// takes them; none is left failed with the frontier waiting on it.
func TestRefusedProduceIsRetried(t *testing.T) {
	p := newProducer()
	p.mu.Lock()
	p.closed = true // Produce returns an error
	p.mu.Unlock()
	run := start(t, Config{Mode: Memory, MaxInFlight: 4, RetryBackoff: 5 * time.Millisecond}, p, nil)
	put(t, run.r, 1, 10)
	waitStats(t, run.r, "four refused in flight", func(s Stats) bool { return s.InFlight == 4 })
	time.Sleep(20 * time.Millisecond)
	p.mu.Lock()
	p.closed = false
	p.mu.Unlock()
	p.waitFor(t, 10)
	waitStats(t, run.r, "nothing held", func(s Stats) bool { return s.InFlight == 0 && s.Memory == 0 })
}

// TestIdleRelayCommitsWhatItHeldBack: an idle relay sets no ticker, so a
// commit that CommitInterval held back must still happen once the stream
// goes quiet, and the oldest-match gauge must then read zero rather than
// age for ever.
func TestIdleRelayCommitsWhatItHeldBack(t *testing.T) {
	p := newProducer()
	sp := openSpool(t, t.TempDir(), 0)
	run := start(t, Config{Mode: Disk, CommitInterval: 300 * time.Millisecond}, p, sp)
	put(t, run.r, 1, 3)
	p.waitFor(t, 3)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := run.r.Stats()
		if st.SpoolRecords == 0 && st.Oldest.IsZero() && st.InFlight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the last delivery: %+v, want nothing uncommitted or unacknowledged", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond, failing t if it does not hold within 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
