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

// TestIDsGoOnAcrossConnections: a client that reconnects gets new matches,
// as from a live stream, not the first ones again.
func TestIDsGoOnAcrossConnections(t *testing.T) {
	hs := httptest.NewServer(New(Options{Rate: 2000, BadEvery: -1}))
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last int64
	for conn := range 3 {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			_, frame, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m, err := match.Parse(frame)
			if err != nil {
				t.Fatal(err)
			}
			if m.ID <= last {
				t.Fatalf("connection %d: ID %d after %d", conn+1, m.ID, last)
			}
			last = m.ID
		}
		c.CloseNow()
	}
}
