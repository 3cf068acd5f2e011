package relay

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/spool"
)

// instant acknowledges every record at once, like a Kafka that keeps up.
type instant struct{}

func (instant) Produce(_ context.Context, _ match.Match, token uint64, done func(uint64, error)) error {
	done(token, nil)
	return nil
}

// BenchmarkRelay measures what each mode costs a match on its way from
// Publish to an acknowledgement, with a producer that acknowledges at once:
// the price of the memory buffer, of spilling, and of writing ahead.
func BenchmarkRelay(b *testing.B) {
	modes := []struct {
		name string
		cfg  Config
		sync spool.SyncPolicy
	}{
		{"memory", Config{Mode: Memory}, spool.SyncPolicy{}},
		{"overflow", Config{Mode: Overflow}, spool.SyncPolicy{Interval: time.Second}},
		{"disk", Config{Mode: Disk}, spool.SyncPolicy{Interval: time.Second}},
		{"disk-fsync-always", Config{Mode: Disk}, spool.SyncPolicy{Always: true}},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			var sp Spool
			if mode.cfg.Mode != Memory {
				s, err := spool.Open(spool.Options{Dir: b.TempDir(), Sync: mode.sync})
				if err != nil {
					b.Fatal(err)
				}
				sp = s
			}
			r, err := New(mode.cfg, instant{}, sp, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- r.Run(context.Background()) }()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := r.Publish(context.Background(), match.Match{ID: int64(i) + 1}); err != nil {
					b.Fatal(err)
				}
			}
			r.CloseInput()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if _, err := r.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
