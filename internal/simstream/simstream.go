// Package simstream is a stand-in for the live match stream: a WebSocket
// server that sends realistic finished-match frames at a steady rate, with
// an occasional malformed frame, for the dev mode and for demonstrations.
package simstream

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Options configures a Server. Zero fields take the default in their comment.
type Options struct {
	// Rate is frames per second; default 20, about the rate at which
	// public Dota 2 matches finish.
	Rate float64
	// BadEvery makes one frame in BadEvery malformed; default 50, negative
	// for none.
	BadEvery int
	// FirstID is the first match ID; default 8,100,000,000.
	FirstID int64
	// Seed seeds the generator, so that runs can be repeated; default 1.
	Seed uint64
}

// Server is an http.Handler that streams matches to every WebSocket client.
// The match IDs and seqs go on from one connection to the next, as a live
// stream's do: a client that reconnects gets new matches, never the ones
// it was sent before.
type Server struct {
	opts   Options
	sent   atomic.Int64
	bad    atomic.Int64
	lastID atomic.Int64
	seq    atomic.Int64
}

// New returns a Server.
func New(opts Options) *Server {
	if opts.Rate <= 0 {
		opts.Rate = 20
	}
	if opts.BadEvery == 0 {
		opts.BadEvery = 50
	}
	if opts.FirstID == 0 {
		opts.FirstID = 8_100_000_000
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	s := &Server{opts: opts}
	s.lastID.Store(opts.FirstID + rand.New(rand.NewPCG(opts.Seed, 0)).Int64N(1000))
	s.seq.Store(s.lastID.Load() - 1_300_000_000)
	return s
}

// Sent returns how many frames were sent, and how many of them were malformed.
func (s *Server) Sent() (frames, malformed int64) { return s.sent.Load(), s.bad.Load() }

// ServeHTTP upgrades the request and streams until the client leaves.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context()) // answers pings and notices the close
	if err := s.stream(ctx, c); err == nil {
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
}

func (s *Server) stream(ctx context.Context, c *websocket.Conn) error {
	rng := rand.New(rand.NewPCG(s.opts.Seed, uint64(time.Now().UnixNano())))
	interval := time.Duration(float64(time.Second) / s.opts.Rate)
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		id := s.lastID.Add(1 + rng.Int64N(40))
		seq := s.seq.Add(1 + rng.Int64N(3))
		frame := fmt.Appendf(nil, `{"match_id":%d,"match_seq_num":%d,"radiant_win":%t,"start_time":%d,"duration":%d,"game_mode":22,"lobby_type":%d}`,
			id, seq, rng.IntN(2) == 0, time.Now().Add(-40*time.Minute).Unix(), 1200+rng.IntN(2400), rng.IntN(2)*7)
		if s.opts.BadEvery > 0 && n%s.opts.BadEvery == 0 {
			frame = malformed[rng.IntN(len(malformed))]
			s.bad.Add(1)
		}
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			return err
		}
		s.sent.Add(1)
	}
}

// malformed are frames a careless upstream might send.
var malformed = [][]byte{
	[]byte(`{"match_id":"8100000000"}`),
	[]byte(`{"match_id":null}`),
	[]byte(`{"match_id":-1}`),
	[]byte(`{"match_id":8.1e9}`),
	[]byte(`{"status":"heartbeat"}`),
	[]byte(`not json at all`),
	[]byte(`[8100000000]`),
}
