package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// hostileEnv, when set in the environment of the test binary, makes it a
// hostile HTTP client instead of running tests (see TestMain): the value
// is idle or slow, and hostileAddr, hostileConns and hostileSeconds say
// whom to attack, with how many connections, for how long. A process of
// its own holds the connections, so that the test's own file descriptors
// suffice for the rest.
const (
	hostileEnv     = "INGESTION_TEST_HOSTILE"
	hostileAddr    = "INGESTION_TEST_HOSTILE_ADDR"
	hostileConns   = "INGESTION_TEST_HOSTILE_CONNS"
	hostileSeconds = "INGESTION_TEST_HOSTILE_SECONDS"
)

// hostileStats is what a hostile client process reports on stdout.
type hostileStats struct {
	Opened, Refused, ClosedByServer int64
}

// runHostile holds conns connections to addr for d, each either idle
// (a keep-alive connection after one request) or slow (a request whose
// headers never end, one byte a second), opening a new one 50 ms after
// the server closes one. It prints its stats as JSON and returns the
// process's exit status.
func runHostile(role, addr string, conns int, d time.Duration) int {
	var st hostileStats
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					atomic.AddInt64(&st.Refused, 1)
					time.Sleep(50 * time.Millisecond)
					continue
				}
				atomic.AddInt64(&st.Opened, 1)
				_ = c.SetDeadline(deadline)
				if hostileSession(role, c) {
					atomic.AddInt64(&st.ClosedByServer, 1)
				}
				c.Close()
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if err := json.NewEncoder(os.Stdout).Encode(st); err != nil {
		return 1
	}
	return 0
}

// hostileSession runs one connection until it ends, and reports whether
// the server ended it.
func hostileSession(role string, c net.Conn) bool {
	if role == "idle" {
		if _, err := io.WriteString(c, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return true
		}
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return true
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_, err = r.ReadByte() // blocks until the server closes, or the deadline
		return !isTimeout(err)
	}
	if _, err := io.WriteString(c, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		return true
	}
	for {
		time.Sleep(time.Second)
		if _, err := c.Write([]byte("a")); err != nil {
			return !isTimeout(err)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// hostileFromEnv runs the hostile client if the environment asks for one;
// ok is false otherwise.
func hostileFromEnv() (code int, ok bool) {
	role := os.Getenv(hostileEnv)
	if role == "" {
		return 0, false
	}
	n, _ := strconv.Atoi(os.Getenv(hostileConns))
	secs, _ := strconv.Atoi(os.Getenv(hostileSeconds))
	return runHostile(role, os.Getenv(hostileAddr), n, time.Duration(secs)*time.Second), true
}
