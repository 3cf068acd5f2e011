package kafkasink

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// batchSizes counts what the client wrote, from its produce-batch hook:
// the bytes a record batch holds once compressed are the bytes it takes
// in the broker's log (plus about 61 bytes of batch header).
type batchSizes struct {
	records, raw, compressed, batches atomic.Int64
}

func (h *batchSizes) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	h.records.Add(int64(m.NumRecords))
	h.raw.Add(int64(m.UncompressedBytes))
	h.compressed.Add(int64(m.CompressedBytes))
	h.batches.Add(1)
}

// BenchmarkMatchRecords writes whole match objects as the Steam sequence
// serves them (the fake's, real in shape and size: about 14 KB of compact
// JSON, ten players) to an in-process broker, keyed by match ID, with
// each codec and two batch bounds: the client's default 16 KiB, which
// holds one such record, and 1 MiB, which holds most of a page of 100. It
// reports what a match costs in the log (B/match, compressed, from the
// client's own batch figures), the uncompressed size, and the time to
// produce one (ns/op is per match). Run it with
//
//	go test -run '^$' -bench BenchmarkMatchRecords -benchtime 2000x ./internal/kafkasink
func BenchmarkMatchRecords(b *testing.B) {
	fake := steamfake.New(steamfake.Options{Count: 500})
	var objects, ids []*kgo.Record
	for _, m := range fake.Matches() {
		body, ok := fake.Body(m.SeqNum)
		if !ok {
			continue
		}
		m.RescanSeq = m.SeqNum - 50_000
		objects = append(objects, ObjectRecord("", m, []byte(body)))
		ids = append(ids, IDRecord(m))
	}
	for _, codec := range []string{"gzip", "zstd", "lz4", "snappy", "none"} {
		for _, batch := range []int32{16 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/batch=%dKiB", codec, batch>>10), func(b *testing.B) {
				produceSized(b, codec, batch, objects, 0)
			})
		}
		// As the scanner writes: a transaction a page of 99, so each
		// partition's batch holds its third of a page.
		b.Run(codec+"/page", func(b *testing.B) { produceSized(b, codec, 1<<20, objects, 99) })
		b.Run(codec+"/ids-page", func(b *testing.B) { produceSized(b, codec, 1<<20, ids, 99) })
	}
}

// produceSized produces b.N of recs, round robin, to a 3-partition topic
// with codec and batches up to batch bytes, flushing every flushEvery
// records unless it is 0, and reports the bytes a record takes.
func produceSized(b *testing.B, codec string, batch int32, recs []*kgo.Record, flushEvery int) {
	c, err := Codec(codec)
	if err != nil {
		b.Fatal(err)
	}
	cluster := kafkatest.StartFake(b)
	topic := cluster.Topic(b, 3)
	sizes := &batchSizes{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.Brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(c), kgo.ProducerBatchMaxBytes(batch), kgo.WithHooks(sizes))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		r := recs[i%len(recs)]
		cl.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers}, nil)
		if flushEvery > 0 && (i+1)%flushEvery == 0 {
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	n := float64(sizes.records.Load())
	b.ReportMetric(float64(sizes.compressed.Load())/n, "B/match")
	b.ReportMetric(float64(sizes.raw.Load())/n, "raw-B/match")
	b.ReportMetric(n/float64(sizes.batches.Load()), "matches/batch")
}
