package steamseq

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dota-data/ingestion-service/internal/logtest"
	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// recorder is a Handler that keeps what it is given.
type recorder struct {
	// accept, when set, decides on each match before it is kept; a non-nil
	// error refuses it. It runs without the lock held.
	accept func(m match.Match) error

	mu      sync.Mutex
	matches []match.Match
	rejects []rejected
	got     chan struct{} // receives after every call
}

type rejected struct {
	reason match.Reason
	item   string
}

func newRecorder() *recorder { return &recorder{got: make(chan struct{}, 100_000)} }

func (r *recorder) Match(ctx context.Context, m match.Match) error {
	if ctx.Err() != nil {
		panic("the handler's context was cancelled")
	}
	if r.accept != nil {
		if err := r.accept(m); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.matches = append(r.matches, m)
	r.mu.Unlock()
	r.got <- struct{}{}
	return nil
}

func (r *recorder) Reject(_ context.Context, reason match.Reason, item []byte) {
	r.mu.Lock()
	r.rejects = append(r.rejects, rejected{reason, string(item)})
	r.mu.Unlock()
	r.got <- struct{}{}
}

// wait waits for n more calls.
func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-r.got:
		case <-timeout:
			t.Fatalf("timed out after %d of %d handler calls", i, n)
		}
	}
}

func (r *recorder) snapshot() ([]match.Match, []rejected) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]match.Match(nil), r.matches...), append([]rejected(nil), r.rejects...)
}

// testConfig is a Config for the fake at base with short waits.
func testConfig(base string) Config {
	return Config{
		BaseURL:      base,
		Keys:         []string{steamfake.DefaultKey},
		KeyInterval:  -1,
		RescanBehind: -1,
		IdleWait:     time.Hour,
		MinInterval:  -1,
		BackoffMin:   2 * time.Millisecond,
		BackoffMax:   10 * time.Millisecond,
		HeadInterval: -1,
	}
}

// noResume is a ResumeFunc with nothing delivered yet.
func noResume(context.Context, int64, int64) (Resume, error) { return Resume{}, nil }

// resumeAt returns a ResumeFunc that reports seq.
func resumeAt(seq int64) ResumeFunc {
	return func(context.Context, int64, int64) (Resume, error) {
		return Resume{Found: true, Seq: seq, Rescan: seq}, nil
	}
}

type running struct {
	s      *Scanner
	reg    *prometheus.Registry
	logs   *logtest.Buffer
	cancel context.CancelFunc
	done   chan error
}

// start runs a Scanner for cfg until the test ends.
func start(t *testing.T, cfg Config, resume ResumeFunc, h Handler) *running {
	t.Helper()
	r := &running{reg: prometheus.NewRegistry(), logs: &logtest.Buffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg, log, r.reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.s = s
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- s.Run(ctx, resume, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return r
}

// result waits for Run to return and returns its error.
func (r *running) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for Cleanup
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// stop cancels Run and waits for it, failing t if it does not return nil
// within limit.
func (r *running) stop(t *testing.T, limit time.Duration) {
	t.Helper()
	began := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
		if d := time.Since(began); d > limit {
			t.Errorf("Run took %v to return after cancel, want under %v", d, limit)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func (r *running) requests(endpoint, outcome string) float64 {
	return testutil.ToFloat64(r.s.cl.m.requests.WithLabelValues(endpoint, outcome))
}

// waitCalls waits until the fake has answered n calls.
func waitCalls(t *testing.T, f *steamfake.Server, n int) []steamfake.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	calls, err := f.WaitCalls(ctx, n)
	if err != nil {
		t.Fatalf("fake answered %d calls, want %d: %+v", len(calls), n, calls)
	}
	return calls
}

// waitFor polls cond, failing t if it does not hold within 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, what, 20*time.Second, cond)
}

// waitForWithin is waitFor with a timeout of its own.
func waitForWithin(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sequenceCalls returns the calls to the sequence endpoint.
func sequenceCalls(calls []steamfake.Call) []steamfake.Call {
	var out []steamfake.Call
	for _, c := range calls {
		if c.Endpoint == steamfake.Sequence {
			out = append(out, c)
		}
	}
	return out
}

// sameMatches fails t unless got equals want, match for match.
func sameMatches(t *testing.T, got, want []match.Match) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d matches, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("match %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
