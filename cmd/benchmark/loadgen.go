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
	// closeWhenSent makes the generator send a close frame after the last
	// frame. A pipeline needs it: Debian's kcat 1.7.1 reads its input
	// 1 KiB at a time (fread; upstream's fix, kcat#343, came after
	// 1.7.1), so its last lines would wait for input that never comes;
	// the close ends websocat, and kcat's EOF produces them. The service
	// is measured without it.
	closeWhenSent bool

	ln        net.Listener
	srv       *http.Server
	claimed   atomic.Bool
	connected chan struct{} // closed when the first client is accepted
	begin     chan struct{} // closed by Begin: sending starts
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
		begin:     make(chan struct{}),
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
//
// The generator speaks the WebSocket protocol itself, on the hijacked
// connection, so that it can put many frames in one write: a library that
// flushes every message makes the generator, not the service, the limit of
// a full-speed run on a small machine.
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
	conn, err := acceptWebSocket(w, r)
	if err != nil {
		g.finish(fmt.Errorf("accept: %w", err))
		return
	}
	defer conn.close()
	close(g.connected)
	// Read in the background: answers pings and notices the client's close.
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		conn.readControl()
	}()
	stop := context.AfterFunc(g.ctx, conn.close)
	defer stop()
	err = g.stream(g.ctx, conn)
	if err == nil && g.closeWhenSent {
		err = conn.write([]byte{0x88, 2, 0x03, 0xe8}) // close, 1000: normal closure
	}
	g.finish(err)
	// Keep the connection open until the client closes it (the service
	// does so on SIGTERM) or the generator is closed.
	<-readDone
}

// Begin lets the generator send to its client, once connected. A
// scenario calls it when the service reports ready, so that what is
// measured is the service running, not starting.
func (g *loadGen) Begin() {
	select {
	case <-g.begin:
	default:
		close(g.begin)
	}
}

// finish records how sending ended.
func (g *loadGen) finish(err error) {
	g.sendErr = err
	close(g.done)
}

// flushAt is how much the generator batches before writing at full speed.
const flushAt = 32 << 10

// stream sends the n frames, batching them into few writes.
func (g *loadGen) stream(ctx context.Context, c *wsConn) error {
	select {
	case <-g.begin:
	case <-ctx.Done():
		return fmt.Errorf("never told to begin: %w", errors.Join(ctx.Err(), context.Cause(ctx)))
	}
	buf := make([]byte, 0, flushAt+64)
	add := func(i int) {
		mark := len(buf)
		buf = append(buf, 0x81, 0) // FIN, text; length patched below (always < 126)
		buf = append(buf, `{"match_id":`...)
		buf = strconv.AppendInt(buf, g.firstID+int64(i), 10)
		buf = append(buf, '}')
		buf[mark+1] = byte(len(buf) - mark - 2)
		g.sent[i] = int64(time.Since(g.base))
	}
	flush := func(i int) error {
		if len(buf) == 0 {
			return nil
		}
		if err := c.write(buf); err != nil {
			return fmt.Errorf("send frames up to %d of %d: %w", i, g.n, err)
		}
		buf = buf[:0]
		return nil
	}
	if g.rate <= 0 {
		for i := range g.n {
			add(i)
			if len(buf) >= flushAt {
				if err := flush(i + 1); err != nil {
					return err
				}
			}
		}
		return flush(g.n)
	}
	// Fixed rate: each tick sends the frames due by then, in one write.
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
			add(i)
			if len(buf) >= flushAt {
				if err := flush(i + 1); err != nil {
					return err
				}
			}
		}
		if err := flush(i); err != nil {
			return err
		}
	}
	return nil
}
