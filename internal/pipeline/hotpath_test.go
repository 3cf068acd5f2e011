package pipeline_test

import (
	"context"
	"log/slog"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/dedup"
	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/pipeline"
	"github.com/dota-data/ingestion-service/internal/relay"
)

// acker acknowledges every record at once.
type acker struct{}

func (acker) Produce(_ context.Context, _ match.Match, token uint64, done func(uint64, error)) error {
	done(token, nil)
	return nil
}

// BenchmarkFrameToProducer measures the hot path up to the Kafka client:
// a frame is parsed, checked against the de-duplication window, handed to
// the relay (memory mode) and forwarded to a producer that acknowledges at
// once. Allocations here are the service's own, per match.
func BenchmarkFrameToProducer(b *testing.B) {
	for _, window := range []int{0, 50_000} {
		b.Run("dedup="+strconv.Itoa(window), func(b *testing.B) {
			rl, err := relay.New(relay.Config{Mode: relay.Memory}, acker{}, nil, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				b.Fatal(err)
			}
			p, err := pipeline.New(rl, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), pipeline.Options{Dedup: dedup.New(dedup.Limit{Count: window})})
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- rl.Run(context.Background()) }()
			frames := make([][]byte, 1024)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f := frames[i%len(frames)]
				f = strconv.AppendInt(append(f[:0], `{"match_id":`...), int64(i)+1, 10)
				f = append(f, '}')
				frames[i%len(frames)] = f
				p.Frame(ctx, f)
			}
			rl.CloseInput()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if got := p.Counts().Accepted; got != int64(b.N) {
				b.Fatalf("accepted %d of %d", got, b.N)
			}
		})
	}
}
