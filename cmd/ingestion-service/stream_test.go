package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/twmb/franz-go/pkg/kgo"
)

// liveStream is a loopback match stream that behaves like a real one: it
// sends a fixed sequence of IDs at a rate, to whoever is connected, and the
// sequence goes on whether anyone listens or not. Options make it unruly.
type liveStream struct {
	ids  []int64
	opts streamOpts
	url  string

	mu       sync.Mutex
	next     int // index of the next ID to send
	conns    int
	dropped  int  // clients dropped for not reading
	halted   bool // sends nothing more (halt, in the network-fault tests)
	finished chan struct{}
}

type streamOpts struct {
	// Rate is IDs per second; 0 sends at full speed.
	Rate float64
	// CloseEvery closes each connection after this many frames.
	CloseEvery int
	// Resend re-sends this many of the last IDs at the start of each
	// connection after the first.
	Resend int
	// StallOnConn makes connection number StallOnConn (from 1) stop sending
	// and stop reading (so pings go unanswered) after StallAfter frames.
	StallOnConn, StallAfter int
	// GarbageEvery sends a malformed frame after every N IDs.
	GarbageEvery int
	// WriteTimeout drops a client whose socket does not take a frame within
	// it, as stream servers do with clients that stop reading; 0 never does.
	WriteTimeout time.Duration
}

func newLiveStream(t *testing.T, ids []int64, opts streamOpts) *liveStream {
	t.Helper()
	s := &liveStream{ids: ids, opts: opts, finished: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/matches"
	return s
}

func (s *liveStream) serve(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	s.mu.Lock()
	s.conns++
	conn := s.conns
	if conn > 1 && s.opts.Resend > 0 {
		s.next = max(0, s.next-s.opts.Resend)
	}
	s.mu.Unlock()

	stall := s.opts.StallOnConn == conn
	ctx := r.Context()
	if !stall {
		ctx = c.CloseRead(ctx) // reads, and so answers pings
	}
	var tick *time.Ticker
	perTick := 1 << 30
	if s.opts.Rate > 0 {
		tick = time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		perTick = max(1, int(s.opts.Rate/100))
	}
	sent := 0
	for {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
		for i := 0; i < perTick; i++ {
			if stall && sent >= s.opts.StallAfter {
				<-ctx.Done() // silent: no frames, no pongs
				return
			}
			if s.opts.CloseEvery > 0 && sent > 0 && sent%s.opts.CloseEvery == 0 {
				_ = c.Close(websocket.StatusNormalClosure, "rotating")
				return
			}
			s.mu.Lock()
			if s.halted {
				s.mu.Unlock()
				break
			}
			if s.next >= len(s.ids) {
				s.mu.Unlock()
				s.finish()
				<-ctx.Done()
				return
			}
			id := s.ids[s.next]
			s.next++
			s.mu.Unlock()
			frame := strconv.AppendInt([]byte(`{"match_id":`), id, 10)
			frame = append(frame, '}')
			if err := s.write(ctx, c, frame); err != nil {
				s.lost(id, err)
				return
			}
			sent++
			if s.opts.GarbageEvery > 0 && sent%s.opts.GarbageEvery == 0 {
				if err := s.write(ctx, c, []byte(`{"match_id":"garbage"`)); err != nil {
					return
				}
			}
		}
	}
}

func (s *liveStream) write(ctx context.Context, c *websocket.Conn, frame []byte) error {
	if s.opts.WriteTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.WriteTimeout)
		defer cancel()
	}
	return c.Write(ctx, websocket.MessageText, frame)
}

// lost notes a client dropped mid-frame: that ID counts as sent (the
// stream moved on), as with a real server.
func (s *liveStream) lost(int64, error) {
	s.mu.Lock()
	s.dropped++
	s.mu.Unlock()
}

func (s *liveStream) finish() {
	select {
	case <-s.finished:
	default:
		close(s.finished)
	}
}

// sent returns the distinct IDs the stream has sent so far.
func (s *liveStream) sent() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.ids[:s.next]...)
}

func (s *liveStream) stats() (conns, dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.dropped
}

func (s *liveStream) waitFinished(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-s.finished:
	case <-time.After(timeout):
		t.Fatalf("the stream did not finish within %s (sent %d of %d)", timeout, len(s.sent()), len(s.ids))
	}
}

func idRange(from int64, n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = from + int64(i)
	}
	return ids
}

// tally compares what the stream sent with what the topic holds.
type tally struct {
	sent, published, missing, duplicates, unexpected int
}

func (t tally) String() string {
	return fmt.Sprintf("sent %d, published %d, missing %d, duplicates %d, unexpected %d",
		t.sent, t.published, t.missing, t.duplicates, t.unexpected)
}

func count(sent []int64, recs []*kgo.Record) (tally, []int64) {
	want := make(map[int64]bool, len(sent))
	for _, id := range sent {
		want[id] = true
	}
	seen := make(map[int64]int, len(recs))
	t := tally{sent: len(want), published: len(recs)}
	for _, r := range recs {
		id, err := strconv.ParseInt(string(r.Key), 10, 64)
		if err != nil || string(r.Value) != `{"match_id":`+string(r.Key)+`}` || !want[id] {
			t.unexpected++
			continue
		}
		seen[id]++
		if seen[id] > 1 {
			t.duplicates++
		}
	}
	var missing []int64
	for id := range want {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	t.missing = len(missing)
	return t, missing
}
