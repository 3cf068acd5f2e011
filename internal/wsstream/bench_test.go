package wsstream

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// counter is a Handler that counts frames and signals when it has n.
type counter struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (c *counter) Frame(context.Context, []byte) {
	if c.n.Add(1) == c.want {
		close(c.done)
	}
}

func (c *counter) Oversized(context.Context, int64, []byte) {}

// BenchmarkReadFrames measures the source's cost per frame: reading from
// the socket and handing the frame on (the Handler does nothing).
func BenchmarkReadFrames(b *testing.B) {
	frame := []byte(`{"match_id":8012345678,"match_seq_num":6712345678,"start_time":1764201600}`)
	n := b.N
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background() // never cancelled: no timer per write
		for i := 0; i < n; i++ {
			if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
				return
			}
		}
		_, _, _ = c.Read(r.Context())
	}))
	defer srv.Close()
	src, err := New(Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http")}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	h := &counter{want: int64(n), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	go func() { done <- src.Run(ctx, h) }()
	<-h.done
	b.StopTimer()
	cancel()
	<-done
}
