package steamtxn

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
	"github.com/dota-data/ingestion-service/internal/steamseq"
)

// passThrough is a Front that publishes every match to the Writer.
type passThrough struct {
	w       *Writer
	rejects int
}

func (p *passThrough) Match(ctx context.Context, m match.Match) error { return p.w.Publish(ctx, m) }
func (p *passThrough) Reject(context.Context, match.Reason, []byte)   { p.rejects++ }

// seqsAbove returns the match_seq_nums of the committed ID records above
// floor, as a restarted scan reads them back for its rescan.
func seqsAbove(t *testing.T, cluster *kafkatest.Cluster, topic string, floor int64) []int64 {
	t.Helper()
	var out []int64
	for _, r := range cluster.ReadCommitted(t, topic, 30*time.Second) {
		for _, h := range r.Headers {
			if h.Key == kafkasink.HeaderSeqNum {
				if q, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && q > floor {
					out = append(out, q)
				}
			}
		}
	}
	return out
}

// TestScanExactlyOnceAcrossCrashes: the scanner writes through a Writer
// and a kafkasink.PageWriter while Steam lists matches late (rescan on)
// and hides some. Three times its writer is closed under it mid-scan, as
// a crash would leave the open transaction; each time a new writer and
// scanner resume from the last committed cursor. Read as a consumer of
// committed data, the IDs topic and the matches topic each hold every
// listed match once, every object byte for byte as Steam served it, and
// the last cursor is the scanner's position.
func TestScanExactlyOnceAcrossCrashes(t *testing.T) {
	cluster := kafkatest.Start(t)
	ids, objects := cluster.Topic(t, 3), cluster.Topic(t, 3)
	cursors := "cursors-" + ids
	fake, base := steamfake.Start(t, steamfake.Options{Count: 1, LateFraction: 0.05, LateBy: 600, HiddenEvery: 100, Compact: true})
	first := fake.Head()
	const total = 3000
	go func() {
		for n := 0; n < total; n += 5 {
			fake.Advance(5)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	pageCfg := kafkasink.PageConfig{
		Kafka:           kafkasink.Config{Brokers: cluster.Brokers, Topic: ids, Compression: "zstd", ExtraOpts: cluster.Opts},
		TransactionalID: "steam-" + ids,
		CursorTopic:     cursors,
		CursorKey:       ids,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var last *steamseq.Scanner
	var objectBytes, pages float64 // committed, over the runs
	var latencies uint64
	tallyRun := func(w *Writer) {
		objectBytes += testutil.ToFloat64(w.m.objectBytes)
		pages += testutil.ToFloat64(w.m.transactions.WithLabelValues("committed"))
		latencies += histogramCount(t, w.m.latency)
	}
	for run := range 4 {
		pw, cursor, err := kafkasink.NewPageWriter(ctx, pageCfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		resume := func(context.Context, int64, int64) (steamseq.Resume, error) {
			if cursor == nil {
				return steamseq.Resume{}, nil
			}
			c, err := DecodeCursor(cursor)
			if err != nil {
				return steamseq.Resume{}, err
			}
			return steamseq.Resume{Found: true, Seq: c.Primary, Rescan: c.Rescan, Delivered: seqsAbove(t, cluster, ids, c.Rescan)}, nil
		}
		reg := prometheus.NewRegistry()
		w, err := New(objects, reg)
		if err != nil {
			t.Fatal(err)
		}
		w.SetFront(&passThrough{w: w})
		w.Use(pw)
		sc, err := steamseq.New(steamseq.Config{
			BaseURL: base, Keys: []string{steamfake.DefaultKey}, StartSeqNum: first,
			KeyInterval: -1, MinInterval: -1, HeadInterval: -1, IdleWait: 5 * time.Millisecond,
			RescanBehind: 800, RescanDelay: 5 * time.Second,
			BackoffMin: 2 * time.Millisecond, BackoffMax: 10 * time.Millisecond,
		}, slog.New(slog.DiscardHandler), reg)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sc.Run(runCtx, resume, w) }()
		if run < 3 {
			// A crash a few hundred matches on: the open transaction is
			// left to the broker, which aborts it when the next writer
			// starts.
			from := max(sc.Position(), first)
			for sc.Position() < from+300+int64(run)*137 && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			pw.Close(context.Background())
			err := <-done
			stop()
			tallyRun(w)
			t.Logf("run %d: stopped at position %d, rescan %d, %v committed (%v)", run, sc.Position(), sc.RescanPosition(),
				testutil.ToFloat64(w.m.transactions.WithLabelValues("committed")), err)
			continue
		}
		head := first + total
		for (sc.Position() < fake.Head() || sc.RescanPosition() < fake.Head() || fake.Head() < head) && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		pw.Close(context.Background())
		tallyRun(w)
		last = sc
	}
	if ctx.Err() != nil {
		t.Fatal("the scan did not reach the head in time")
	}

	want := map[int64]string{} // by match ID
	for _, m := range fake.Matches() {
		if body, ok := fake.Body(m.SeqNum); ok {
			want[m.ID] = body
		}
	}
	for _, topic := range []string{ids, objects} {
		tl := fake.Tally(cluster.ReadCommitted(t, topic, 30*time.Second), topic == objects)
		t.Logf("%s: %s", topic, tl)
		if !tl.ExactlyOnce() {
			t.Fatalf("%s: %s; want every listed match once, objects as served", topic, tl)
		}
	}
	// The metrics count what was committed, each object once.
	var bodies float64
	for _, b := range want {
		bodies += float64(len(b))
	}
	if objectBytes != bodies {
		t.Fatalf("ingestion_steam_matches_topic_bytes_total summed %v, want %v: the committed objects' bytes", objectBytes, bodies)
	}
	if latencies == 0 || float64(latencies) > pages {
		t.Fatalf("%d commit latencies observed for %v committed pages; want one per page that held a match", latencies, pages)
	}
	pw, cursor, err := kafkasink.NewPageWriter(ctx, pageCfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close(context.Background())
	c, err := DecodeCursor(cursor)
	if err != nil || c.Primary != last.Position() || c.Rescan != last.RescanPosition() {
		t.Fatalf("the last committed cursor is %+v (%v), want the scanner's positions %d and %d", c, err, last.Position(), last.RescanPosition())
	}
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
