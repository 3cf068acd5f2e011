package backfill

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/steamfake"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/steamtxn"
)

// TestResolveDates: a range given by dates is turned into seqs by a
// search over the sequence (the fake's match i starts 2i seconds after
// the first) and committed as the plan record; three replicas resolving
// at once agree on one range; a later start reads the record and calls
// Steam no more, even once Steam has changed; a range of seqs needs no
// call at all.
func TestResolveDates(t *testing.T) {
	cluster := kafkatest.Start(t)
	ids := cluster.Topic(t, 1)
	fake, base := steamfake.Start(t, steamfake.Options{Count: 200_000, Compact: true, StartTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Unix() - 3600})
	kcfg := kafkasink.Config{Brokers: cluster.Brokers, Topic: ids, ExtraOpts: cluster.Opts}
	topics := steamtxn.Topics{IDs: ids, Cursor: ids + "-steam-cursor"}
	cfg := Config{
		From: Bound{Date: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, To: Bound{Date: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)},
		Shards: 4, Forward: true,
	}
	var searches atomic.Int64
	newSearch := func() DateSearch {
		cl, err := steamseq.NewClient(steamseq.Config{BaseURL: base, Keys: []string{steamfake.DefaultKey}, KeyInterval: -1, MinInterval: -1}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return func(ctx context.Context, at time.Time, log *slog.Logger) (steamseq.SearchResult, error) {
			searches.Add(1)
			return cl.SeqAtDate(ctx, at, log)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ranges := make([]steamseq.Range, 3)
	var wg sync.WaitGroup
	for i := range ranges {
		wg.Go(func() {
			r, err := Resolve(ctx, cfg, kcfg, topics, newSearch(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Error(err)
			}
			ranges[i] = r
		})
	}
	wg.Wait()
	if ranges[0] != ranges[1] || ranges[1] != ranges[2] {
		t.Fatalf("replicas resolved %v: not one range", ranges)
	}
	// The fake's first match starts an hour before 2024-01-01, a match
	// every 2 s: the day starts near match 1,800 and ends near 45,000.
	first := fake.Matches()[0].SeqNum
	r := ranges[0]
	if d := r.From - (first + 1800); d < -200 || d > 200 {
		t.Errorf("2024-01-01 resolved to seq %d, want about %d", r.From, first+1800)
	}
	if d := r.To - (first + 45_000); d < -200 || d > 200 {
		t.Errorf("2024-01-02 resolved to seq %d, want about %d", r.To, first+45_000)
	}
	t.Logf("resolved %s with %d searches among three replicas", r, searches.Load())
	before := searches.Load()
	fake.Advance(100_000)
	again, err := Resolve(ctx, cfg, kcfg, topics, newSearch(), slog.New(slog.DiscardHandler))
	if err != nil || again != r || searches.Load() != before {
		t.Fatalf("a later start resolved %v (%v) with %d more searches; want %v from the plan record, none", again, err, searches.Load()-before, r)
	}
	got, ok, err := ReadRange(ctx, cfg, kcfg, topics)
	if err != nil || !ok || got != r {
		t.Fatalf("ReadRange = %v, %v, %v; want %v", got, ok, err, r)
	}
	seqs := Config{From: Bound{Seq: 10}, To: Bound{Seq: 20}, Shards: 1}
	if r, err := Resolve(ctx, seqs, kcfg, topics, nil, slog.New(slog.DiscardHandler)); err != nil || r != (steamseq.Range{From: 10, To: 20}) {
		t.Fatalf("a range of seqs resolved to %v, %v", r, err)
	}
}
