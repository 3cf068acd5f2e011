package odlogs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/match"
)

// counter is a Handler that counts matches and signals when it has want.
type counter struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (c *counter) Match(context.Context, match.Match) error {
	if c.n.Add(1) == c.want {
		close(c.done)
	}
	return nil
}

func (c *counter) Reject(context.Context, match.Reason, []byte) {}

// BenchmarkReadLines measures the source's cost per line of the upstream's
// shape: reading the event stream, parsing the line and handing the match
// on (the Handler does nothing).
func BenchmarkReadLines(b *testing.B) {
	n := b.N
	const batch = 256 // events per write
	var text strings.Builder
	for i := 0; i < batch; i++ {
		fmt.Fprintf(&text, "data: [2026-08-21T18:25:36.123Z] [inserter] [insert: api] [ended: a few seconds ago] %d\n\n", 8012345678+i)
	}
	chunk := text.String()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for sent := 0; sent < n; sent += batch {
			if _, err := w.Write([]byte(chunk)); err != nil {
				return
			}
		}
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	src, err := New(Config{URL: srv.URL}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	h := &counter{want: int64(n), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk) / batch))
	b.ResetTimer()
	go func() { done <- src.Run(ctx, h) }()
	<-h.done
	b.StopTimer()
	cancel()
	<-done
}
