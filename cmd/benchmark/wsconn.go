package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// wsConn is the server side of a WebSocket connection, just enough of RFC
// 6455 for a load generator: unmasked text frames out, and control frames
// from the client (ping, close) answered.
type wsConn struct {
	conn net.Conn
	br   *bufio.Reader
	mu   sync.Mutex // serialises writes
	once sync.Once
}

// acceptWebSocket performs the opening handshake and hijacks the connection.
func acceptWebSocket(w http.ResponseWriter, r *http.Request) (*wsConn, error) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "not a WebSocket request", http.StatusBadRequest)
		return nil, errors.New("not a WebSocket request")
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" {
		http.Error(w, "no Sec-WebSocket-Key", http.StatusBadRequest)
		return nil, errors.New("no Sec-WebSocket-Key")
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, errors.New("the server cannot hijack connections")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
	if _, err := conn.Write([]byte(resp)); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &wsConn{conn: conn, br: brw.Reader}, nil
}

// write sends bytes that hold whole frames.
func (c *wsConn) write(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.conn.Write(p)
	return err
}

// close closes the connection; it is safe to call more than once.
func (c *wsConn) close() {
	c.once.Do(func() { _ = c.conn.Close() })
}

// readControl reads the client's frames until the connection ends:
// pings get pongs, a close gets a close, data is discarded.
func (c *wsConn) readControl() {
	defer c.close()
	var hdr [14]byte
	payload := make([]byte, 0, 125)
	for {
		if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
			return
		}
		opcode := hdr[0] & 0x0f
		masked := hdr[1]&0x80 != 0
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(c.br, hdr[2:4]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			if _, err := io.ReadFull(c.br, hdr[2:10]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(hdr[2:10])
		}
		var mask [4]byte
		if masked {
			if _, err := io.ReadFull(c.br, mask[:]); err != nil {
				return
			}
		}
		if opcode < 0x8 { // data: not expected from the service; skip it
			if _, err := io.CopyN(io.Discard, c.br, int64(n)); err != nil {
				return
			}
			continue
		}
		if n > 125 {
			return // a control frame cannot be this long
		}
		payload = payload[:n]
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return
		}
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
		switch opcode {
		case 0x9: // ping: answer with a pong carrying the same data
			if c.write(append([]byte{0x8a, byte(n)}, payload...)) != nil {
				return
			}
		case 0x8: // close: echo the status, then end
			_ = c.write(append([]byte{0x88, byte(n)}, payload...))
			return
		}
	}
}
