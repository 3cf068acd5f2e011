package simstream

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dota-data/ingestion-service/internal/match"
)

func TestStreamsValidAndMalformedFrames(t *testing.T) {
	srv := New(Options{Rate: 2000, BadEvery: 10})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	var valid, bad int
	var last int64
	for i := 0; i < 100; i++ {
		_, frame, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := match.Parse(frame)
		if err != nil {
			bad++
			continue
		}
		if m.ID <= last {
			t.Fatalf("IDs not increasing: %d after %d", m.ID, last)
		}
		last = m.ID
		valid++
	}
	if bad != 10 || valid != 90 {
		t.Fatalf("valid=%d bad=%d, want 90 and 10", valid, bad)
	}
	if last < 8_100_000_000 {
		t.Fatalf("IDs are not realistic: %d", last)
	}
}
