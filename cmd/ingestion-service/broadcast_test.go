package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// broadcast is a loopback match stream like the real one: it sends every ID
// to every client connected at that moment, at a fixed rate, whether
// anyone listens or not. It notes, for each ID, how many clients it was
// sent to.
type broadcast struct {
	url string

	mu      sync.Mutex
	subs    map[chan int64]string // subscriber -> the client's name (?client= in its URL)
	kick    map[string]func()     // closes a named client's connection
	blocked map[string]bool       // names refused
	sent    []int64
	readers []int // readers[i]: clients connected when sent[i] was sent
	from    int   // heard counts from sent[from] on
	paused  bool  // sends nothing while set (pause)
	stop    chan struct{}
	stopped chan struct{}
}

// newBroadcast starts sending IDs from first at rate per second until
// Stop.
func newBroadcast(t *testing.T, first int64, rate int) *broadcast {
	t.Helper()
	b := &broadcast{subs: map[chan int64]string{}, kick: map[string]func(){}, blocked: map[string]bool{},
		stop: make(chan struct{}), stopped: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(b.serve))
	b.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/matches"
	go b.run(first, rate)
	t.Cleanup(func() {
		b.Stop()
		srv.Close()
	})
	return b
}

func (b *broadcast) run(next int64, rate int) {
	defer close(b.stopped)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := max(1, rate/100)
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
		b.mu.Lock()
		if b.paused {
			b.mu.Unlock()
			continue
		}
		for range perTick {
			b.sent = append(b.sent, next)
			b.readers = append(b.readers, len(b.subs))
			for ch := range b.subs {
				select {
				case ch <- next:
				default: // a client this far behind is dropped by real servers too
				}
			}
			next++
		}
		b.mu.Unlock()
	}
}

func (b *broadcast) serve(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("client")
	b.mu.Lock()
	refused := b.blocked[name]
	b.mu.Unlock()
	if refused {
		http.Error(w, "blocked", http.StatusServiceUnavailable)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ch := make(chan int64, 1<<16)
	ctx, cancel := context.WithCancel(c.CloseRead(r.Context()))
	defer cancel()
	b.mu.Lock()
	b.subs[ch] = name
	if name != "" {
		b.kick[name] = cancel
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-ch:
			frame := strconv.AppendInt([]byte(`{"match_id":`), id, 10)
			if err := c.Write(ctx, websocket.MessageText, append(frame, '}')); err != nil {
				return
			}
		}
	}
}

// block drops the client named name and refuses it from now on, as if
// its own network to the stream had failed.
func (b *broadcast) block(name string) {
	b.mu.Lock()
	b.blocked[name] = true
	kick := b.kick[name]
	b.mu.Unlock()
	if kick != nil {
		kick()
	}
}

// pause makes the stream send nothing until resume, as a stream between
// two matches does: what it sent before reaches its clients meanwhile.
func (b *broadcast) pause() {
	b.mu.Lock()
	b.paused = true
	b.mu.Unlock()
}

// resume ends a pause.
func (b *broadcast) resume() {
	b.mu.Lock()
	b.paused = false
	b.mu.Unlock()
}

// Stop ends the stream.
func (b *broadcast) Stop() {
	b.mu.Lock()
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	b.mu.Unlock()
	<-b.stopped
}

// heard returns the IDs sent since the last mark (or the start) while at
// least one client was connected, and the number of IDs sent in all.
func (b *broadcast) heard() ([]int64, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int64
	for i, id := range b.sent[b.from:] {
		if b.readers[b.from+i] > 0 {
			out = append(out, id)
		}
	}
	return out, len(b.sent)
}

// mark makes heard count from the next ID on: a test marks the stream
// once its replicas are all connected and one leads, leaving out what only
// some early replica heard while the future leader was not yet connected.
func (b *broadcast) mark() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.from = len(b.sent)
}

// clients returns how many clients are connected.
func (b *broadcast) clients() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// all returns every ID sent.
func (b *broadcast) all() []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int64(nil), b.sent...)
}
