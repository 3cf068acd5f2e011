package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dota-data/ingestion-service/internal/dedup"
	"github.com/dota-data/ingestion-service/internal/logtest"
	"github.com/dota-data/ingestion-service/internal/match"
)

// memPublisher is an in-memory Publisher.
type memPublisher struct {
	mu  sync.Mutex
	ids []int64
	err error
}

func (m *memPublisher) Publish(_ context.Context, x match.Match) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.ids = append(m.ids, x.ID)
	return nil
}

func newPipeline(t *testing.T, pub Publisher, opts Options) (*Pipeline, *logtest.Buffer) {
	t.Helper()
	logs := &logtest.Buffer{}
	p, err := New(pub, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, logs
}

func TestFramesArePublishedOrRejected(t *testing.T) {
	tests := []struct {
		name      string
		frames    []string
		published []int64
		rejected  map[match.Reason]float64
	}{
		{
			name:      "valid frames in order",
			frames:    []string{`{"match_id":3}`, `{"match_id":1,"x":2}`, `{"match_id":2}`},
			published: []int64{3, 1, 2},
		},
		{
			name:      "bad frames are dropped and the stream goes on",
			frames:    []string{`nope`, `{"match_id":10}`, `{"match_id":"11"}`, `[]`, `{"match_id":1.5}`, `{"match_id":0}`, `{}`, `{"match_id":null}`, `{"match_id":99999999999999999999}`, `{"match_id":12}`},
			published: []int64{10, 12},
			rejected: map[match.Reason]float64{
				match.InvalidJSON: 1, match.WrongType: 1, match.NotObject: 1, match.NotInteger: 1,
				match.NotPositive: 1, match.MissingID: 1, match.NullID: 1, match.OutOfRange: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &memPublisher{}
			p, _ := newPipeline(t, pub, Options{})
			for _, f := range tt.frames {
				p.Frame(context.Background(), []byte(f))
			}
			if got, want := pub.ids, tt.published; len(got) != len(want) || !equal(got, want) {
				t.Fatalf("published %v, want %v", got, want)
			}
			var totalRejected float64
			for _, r := range match.Reasons {
				got := testutil.ToFloat64(p.rejected[r])
				if got != tt.rejected[r] {
					t.Errorf("rejected{%s} = %v, want %v", r, got, tt.rejected[r])
				}
				totalRejected += got
			}
			c := p.Counts()
			if c.Received != int64(len(tt.frames)) || c.Accepted != int64(len(tt.published)) || float64(c.Rejected) != totalRejected {
				t.Fatalf("counts = %+v", c)
			}
			if got := testutil.ToFloat64(p.frames); got != float64(len(tt.frames)) {
				t.Fatalf("frames metric = %v", got)
			}
		})
	}
}

func equal(a, b []int64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOversizedFramesAreRejected(t *testing.T) {
	p, logs := newPipeline(t, &memPublisher{}, Options{FrameLogBytes: 8})
	p.Oversized(context.Background(), 1<<20, []byte("0123456789abcdef"))
	if got := testutil.ToFloat64(p.rejected[match.TooLarge]); got != 1 {
		t.Fatalf("rejected{too_large} = %v", got)
	}
	lines := logs.Lines(t, "Rejected frame")
	if len(lines) != 1 || lines[0]["frame"] != "01234567" || lines[0]["truncated"] != true || lines[0]["frame_bytes"] != float64(1<<20) {
		t.Fatalf("log lines = %v", lines)
	}
}

func TestRejectionLogsAreRateLimited(t *testing.T) {
	p, logs := newPipeline(t, &memPublisher{}, Options{RejectLogRate: 0.001, RejectLogBurst: 2})
	for i := 0; i < 50; i++ {
		p.Frame(context.Background(), []byte(`garbage`))
	}
	if got := len(logs.Lines(t, "Rejected frame")); got != 2 {
		t.Fatalf("%d rejection lines logged, want 2 (the burst)", got)
	}
	if got := p.suppressed.Load(); got != 48 {
		t.Fatalf("suppressed = %d, want 48", got)
	}
	if got := testutil.ToFloat64(p.rejected[match.InvalidJSON]); got != 50 {
		t.Fatalf("every rejection must still be counted: %v", got)
	}
}

func TestPublisherRefusalIsCountedAndLogged(t *testing.T) {
	p, logs := newPipeline(t, &memPublisher{err: errors.New("closed")}, Options{})
	p.Frame(context.Background(), []byte(`{"match_id":77}`))
	if c := p.Counts(); c.Dropped != 1 || c.Accepted != 0 {
		t.Fatalf("counts = %+v", c)
	}
	lines := logs.Lines(t, "Match dropped")
	if len(lines) != 1 || lines[0]["match_id"] != float64(77) {
		t.Fatalf("log lines = %v", lines)
	}
}

type fixedDelivery struct{ published, failed, buffered int64 }

func (f fixedDelivery) Spooled() int64 { return 7 }

func (f fixedDelivery) Published() int64 { return f.published }
func (f fixedDelivery) Failed() int64    { return f.failed }
func (f fixedDelivery) Buffered() int64  { return f.buffered }

// signalWriter forwards writes and signals each one.
type signalWriter struct {
	*logtest.Buffer
	wrote chan struct{}
}

func (s signalWriter) Write(p []byte) (int, error) {
	n, err := s.Buffer.Write(p)
	select {
	case s.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func TestLogSummaries(t *testing.T) {
	logs := &logtest.Buffer{}
	w := signalWriter{logs, make(chan struct{}, 1)}
	p, err := New(&memPublisher{}, slog.New(slog.NewJSONHandler(w, nil)), prometheus.NewRegistry(), Options{Dedup: dedup.New(dedup.Limit{Count: 10})})
	if err != nil {
		t.Fatal(err)
	}
	p.Frame(context.Background(), []byte(`{"match_id":1}`))
	p.Frame(context.Background(), []byte(`x`))
	<-w.wrote // the rejection's line
	p.Frame(context.Background(), []byte(`{"match_id":1}`))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.LogSummaries(ctx, 10*time.Millisecond, fixedDelivery{published: 1, failed: 0, buffered: 3})
	}()
	select {
	case <-w.wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("no summary logged")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := logs.Lines(t, "Ingestion progress")
	if len(lines) == 0 {
		t.Fatal("no summary line")
	}
	l := lines[0]
	if l["received"] != float64(3) || l["accepted"] != float64(1) || l["rejected"] != float64(1) || l["duplicates"] != float64(1) || l["dropped"] != float64(0) ||
		l["published"] != float64(1) || l["buffered"] != float64(3) || l["spooled"] != float64(7) {
		t.Fatalf("summary = %v", l)
	}
}

func TestDuplicatesWithinTheWindowAreSkipped(t *testing.T) {
	pub := &memPublisher{}
	p, _ := newPipeline(t, pub, Options{Dedup: dedup.New(dedup.Limit{Count: 3})})
	for _, id := range []int{1, 2, 1, 3, 2, 4, 5, 1} {
		p.Frame(context.Background(), []byte(`{"match_id":`+strconv.Itoa(id)+`}`))
	}
	// 1 is seen again after 2,3,4,5 pushed it out of a window of three.
	if want := []int64{1, 2, 3, 4, 5, 1}; !equal(pub.ids, want) || len(pub.ids) != len(want) {
		t.Fatalf("published %v, want %v", pub.ids, want)
	}
	if c := p.Counts(); c.Duplicates != 2 || testutil.ToFloat64(p.duplicates) != 2 {
		t.Fatalf("duplicates = %d", c.Duplicates)
	}
}

func TestMatchesFromSourcesWithoutFrames(t *testing.T) {
	pub := &memPublisher{}
	p, logs := newPipeline(t, pub, Options{Dedup: dedup.New(dedup.Limit{Count: 10})})
	ctx := context.Background()
	for _, m := range []match.Match{{ID: 5, SeqNum: 50}, {ID: 6}, {ID: 5, SeqNum: 50}, {ID: 0}, {ID: -3}} {
		if err := p.Match(ctx, m); err != nil {
			t.Fatalf("Match(%+v) = %v", m, err)
		}
	}
	p.Reject(ctx, match.NotInteger, []byte("[insert: api] 12x"))
	if want := []int64{5, 6}; !equal(pub.ids, want) || len(pub.ids) != len(want) {
		t.Fatalf("published %v, want %v", pub.ids, want)
	}
	c := p.Counts()
	if c != (Counts{Received: 6, Accepted: 2, Duplicates: 1, Rejected: 3}) {
		t.Fatalf("counts = %+v", c)
	}
	if got := testutil.ToFloat64(p.rejected[match.NotPositive]); got != 2 {
		t.Fatalf("not_positive rejections = %v", got)
	}
	if lines := logs.Lines(t, "Rejected frame"); len(lines) != 3 || lines[2]["frame"] != "[insert: api] 12x" || lines[2]["reason"] != "not_integer" {
		t.Fatalf("rejection logs = %v", lines)
	}

	// A refusal is returned, so that a source can stop where it is.
	refused := errors.New("closed")
	p2, _ := newPipeline(t, &memPublisher{err: refused}, Options{})
	if err := p2.Match(ctx, match.Match{ID: 9}); !errors.Is(err, refused) {
		t.Fatalf("Match on a refusing publisher = %v, want %v", err, refused)
	}
	if c := p2.Counts(); c.Dropped != 1 {
		t.Fatalf("counts = %+v", c)
	}
}
