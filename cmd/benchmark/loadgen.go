package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// loadGen is a WebSocket server on loopback that sends n frames
// {"match_id":ID}, with IDs firstID, firstID+1, ..., to the first client
// that connects, at full speed or at a fixed rate, and records when each
// frame was sent. Later clients are turned away, so a reconnecting service
// cannot be fed twice.
type loadGen struct {
	url     string
	firstID int64
	n       int
	rate    int       // frames per second; 0 sends at full speed
	base    time.Time // sent times are measured from here
	// sent[i] is when the frame of ID firstID+i was handed to the
	// connection, in nanoseconds since base.
	sent []int64

	ln        net.Listener
	srv       *http.Server
	claimed   atomic.Bool
	connected chan struct{} // closed when the first client is accepted
	done      chan struct{} // closed when sending ended; sendErr says how
	sendErr   error

	ctx    context.Context // ends when the generator is closed
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed and the handler count in wg
	closed bool
	wg     sync.WaitGroup
}

// newLoadGen starts a load generator on a free loopback port.
func newLoadGen(firstID int64, n, rate int, base time.Time) (*loadGen, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("load generator listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &loadGen{
		url:       "ws://" + ln.Addr().String() + "/matches",
		firstID:   firstID,
		n:         n,
		rate:      rate,
		base:      base,
		sent:      make([]int64, n),
		ln:        ln,
		connected: make(chan struct{}),
		done:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
	}
	g.srv = &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		_ = g.srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	return g, nil
}

// Close stops the server and every connection, and waits for their
// goroutines.
func (g *loadGen) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	_ = g.srv.Close()
	g.wg.Wait()
}

// ServeHTTP accepts the first client and streams the frames to it.
func (g *loadGen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		http.Error(w, "closed", http.StatusServiceUnavailable)
		return
	}
	g.wg.Add(1) // hijacked connections are not tracked by http.Server
	g.mu.Unlock()
	defer g.wg.Done()

	if !g.claimed.CompareAndSwap(false, true) {
		http.Error(w, "the load generator serves one client", http.StatusConflict)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		g.finish(fmt.Errorf("accept: %w", err))
		return
	}
	defer c.CloseNow()
	close(g.connected)
	// Read in the background: answers pings and notices the client's close.
	readCtx := c.CloseRead(g.ctx)
	g.finish(g.stream(readCtx, c))
	// Keep the connection open until the client closes it (the service
	// does so on SIGTERM) or the generator is closed.
	<-readCtx.Done()
}

// finish records how sending ended.
func (g *loadGen) finish(err error) {
	g.sendErr = err
	close(g.done)
}

// stream sends the n frames, reusing one buffer for all of them.
func (g *loadGen) stream(ctx context.Context, c *websocket.Conn) error {
	buf := make([]byte, 0, 40)
	send := func(i int) error {
		buf = append(buf[:0], `{"match_id":`...)
		buf = strconv.AppendInt(buf, g.firstID+int64(i), 10)
		buf = append(buf, '}')
		g.sent[i] = int64(time.Since(g.base))
		// A context that never ends makes the library skip its per-write
		// timer, so a frame costs no allocation; closing the generator
		// closes the connection, which ends a blocked write.
		if err := c.Write(context.Background(), websocket.MessageText, buf); err != nil {
			return fmt.Errorf("send frame %d of %d: %w", i+1, g.n, err)
		}
		return nil
	}
	if g.rate <= 0 {
		for i := range g.n {
			if err := send(i); err != nil {
				return err
			}
		}
		return nil
	}
	// Fixed rate: each tick sends the frames due by then.
	tick := 10 * time.Millisecond
	if g.rate >= 1000 {
		tick = time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	for i := 0; i < g.n; {
		select {
		case <-ctx.Done():
			return fmt.Errorf("sent %d of %d frames: %w", i, g.n, errors.Join(ctx.Err(), context.Cause(ctx)))
		case <-t.C:
		}
		due := min(int(int64(time.Since(start))*int64(g.rate)/int64(time.Second)), g.n)
		for ; i < due; i++ {
			if err := send(i); err != nil {
				return err
			}
		}
	}
	return nil
}
