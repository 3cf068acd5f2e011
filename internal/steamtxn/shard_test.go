package steamtxn

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/steamseq"
)

// TestShardRecordSamples: a shard's records keep a sample every
// SampleEvery or more over the last RateWindow, the newest moving with
// the shard between two, so that one record tells its recent rate; the
// record survives its encoding.
func TestShardRecordSamples(t *testing.T) {
	r := steamseq.Range{From: 1000, To: 101_000}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var rec ShardRecord
	c := steamseq.StartShard(r)
	for i := range 60 { // a page every 15 s for 15 minutes, 100 seqs and 99 matches each
		c.Position += 100
		c.Matches += 99
		rec = rec.next(c, "replica-a", start.Add(time.Duration(i)*15*time.Second))
	}
	if !rec.Started.Equal(start) || rec.Replica != "replica-a" || rec.Position != c.Position {
		t.Fatalf("record %+v", rec)
	}
	first, last := rec.Recent[0], rec.Recent[len(rec.Recent)-1]
	if span := last.At - first.At; span > int64(RateWindow/time.Second) || span < int64((RateWindow-SampleEvery)/time.Second) {
		t.Fatalf("samples span %d s, want about %s", span, RateWindow)
	}
	for i := 1; i < len(rec.Recent)-1; i++ {
		if d := rec.Recent[i].At - rec.Recent[i-1].At; d < int64(SampleEvery/time.Second) {
			t.Fatalf("samples %d s apart, want at least %s", d, SampleEvery)
		}
	}
	seqs, matches, ok := rec.Rate()
	if !ok || seqs < 6.6 || seqs > 6.7 || matches < 6.5 || matches > 6.7 {
		t.Fatalf("rate %v seqs/s, %v matches/s, %v; want 100/15 and 99/15", seqs, matches, ok)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeShard(b)
	if err != nil || back.Position != rec.Position || len(back.Recent) != len(rec.Recent) || !back.Started.Equal(rec.Started) {
		t.Fatalf("decoded %+v, %v; want %+v", back, err, rec)
	}
	for _, bad := range []string{`{"from":5,"to":5,"position":4}`, `{"from":5,"to":10,"position":12}`, `not json`} {
		if _, err := DecodeShard([]byte(bad)); err == nil {
			t.Errorf("DecodeShard(%s) took it", bad)
		}
	}
}
