package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/twmb/franz-go/pkg/kgo"
)

// bareReader is the stream-side ceiling: an in-process WebSocket client
// reads n frames from the load generator at full speed, each into one
// reused buffer as the service does, and discards them.
// It returns frames per second, from the first frame sent to the last
// frame read.
func bareReader(ctx context.Context, firstID int64, n int) (float64, error) {
	base := time.Now()
	g, err := newLoadGen(firstID, n, 0, base)
	if err != nil {
		return 0, err
	}
	defer g.Close()
	g.Begin() // a bare reader is ready as soon as it is connected
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, g.url, nil)
	if err != nil {
		return 0, fmt.Errorf("bare reader dial: %w", err)
	}
	defer c.CloseNow()
	// Reads get a context that never ends, so that the library sets no
	// timer per frame; ctx ending closes the connection instead.
	stop := context.AfterFunc(ctx, func() { _ = c.CloseNow() })
	defer stop()
	c.SetReadLimit(-1)
	// Read as the service's stream source does: each frame into one
	// reused buffer.
	buf := make([]byte, 64<<10)
	for i := range n {
		_, r, err := c.Reader(context.Background())
		if err == nil {
			_, err = io.ReadFull(r, buf)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = nil
			} else if err == nil {
				err = errors.New("frame over 64 KiB")
			}
		}
		if err != nil {
			return 0, fmt.Errorf("bare reader frame %d of %d: %w", i+1, n, err)
		}
	}
	last := time.Since(base)
	<-g.done
	if g.sendErr != nil {
		return 0, g.sendErr
	}
	return float64(n) / (last - time.Duration(g.sent[0])).Seconds(), nil
}

// bareProducer is the Kafka-side ceiling: a franz-go producer with the
// service's settings (acks=all, idempotent, gzip, 10 ms linger, 16 KiB
// batches, 10,000 buffered records) produces n records asynchronously with
// one shared promise, then flushes. It returns records per second.
func bareProducer(ctx context.Context, brokers []string, topic string, firstID int64, n int) (float64, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.GzipCompression()),
		kgo.ProducerLinger(10*time.Millisecond),
		kgo.ProducerBatchMaxBytes(16384),
		kgo.MaxBufferedRecords(10000),
	)
	if err != nil {
		return 0, fmt.Errorf("bare producer: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var (
		failed   atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			errOnce.Do(func() { firstErr = err })
		}
	}
	start := time.Now()
	for i := range n {
		key := strconv.AppendInt(nil, firstID+int64(i), 10)
		value := make([]byte, 0, len(key)+13)
		value = append(append(append(value, `{"match_id":`...), key...), '}')
		cl.Produce(ctx, &kgo.Record{Key: key, Value: value}, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("bare producer flush: %w", err)
	}
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("bare producer: %d of %d records failed: %w", f, n, errors.Join(firstErr))
	}
	return float64(n) / elapsed.Seconds(), nil
}
