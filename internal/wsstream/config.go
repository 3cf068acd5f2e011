package wsstream

import (
	"net/http"
	"time"
)

// Config configures a Source. Zero fields take the default in their comment;
// URL is required.
type Config struct {
	// URL is the stream's ws:// or wss:// address.
	URL string
	// ConnectTimeout bounds dialling and the opening handshake; default 10s.
	ConnectTimeout time.Duration
	// PingInterval is how often the connection is pinged; default 30s.
	PingInterval time.Duration
	// PongTimeout is how long a ping may go unanswered, while the reader is
	// waiting on the socket, before the connection is declared dead and
	// replaced; default 15s.
	PongTimeout time.Duration
	// MaxFrameBytes is the largest frame handed on; larger frames are read
	// to their end, reported as oversized and skipped. Default 65536.
	MaxFrameBytes int
	// BackoffMin is the first reconnect delay; default 500ms. Each failed
	// attempt doubles it, up to BackoffMax, with jitter.
	BackoffMin time.Duration
	// BackoffMax caps the reconnect delay; default 30s.
	BackoffMax time.Duration
	// HealthyAfter is how long a connection must last for the next
	// reconnect to start again from BackoffMin; default 60s.
	HealthyAfter time.Duration
	// CloseTimeout bounds the close handshake at shutdown: a peer that
	// does not answer the close frame within it has the connection closed
	// under it; default 1s, so that the shutdown keeps within its timeout
	// (the library alone waits 5 s).
	CloseTimeout time.Duration
	// TLSCAFile is a PEM file of CAs trusted for wss:// in addition to the
	// system's roots. It is ignored when HTTPClient is set.
	TLSCAFile string
	// HTTPClient dials the connection; nil means a client with the system's
	// trust roots (and TLSCAFile's CAs).
	HTTPClient *http.Client
	// Header is sent with the opening handshake.
	Header http.Header
	// UnreachableEvery is how often a stream that cannot be reached at
	// all (its host does not resolve, or refuses every connection) is
	// logged at error level while it stays so; the attempts between are
	// logged at debug level. Default 5m.
	UnreachableEvery time.Duration
	// UnreachableHint is added to that line and to readiness, to say
	// what to do about it.
	UnreachableHint string
}

// Defaults of Config.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultPingInterval   = 30 * time.Second
	DefaultPongTimeout    = 15 * time.Second
	DefaultMaxFrameBytes  = 64 << 10
	DefaultBackoffMin     = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultHealthyAfter   = 60 * time.Second
	DefaultCloseTimeout   = time.Second
	DefaultUnreachable    = 5 * time.Minute
)

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ConnectTimeout, DefaultConnectTimeout)
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.PongTimeout, DefaultPongTimeout)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.HealthyAfter, DefaultHealthyAfter)
	def(&c.CloseTimeout, DefaultCloseTimeout)
	def(&c.UnreachableEvery, DefaultUnreachable)
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	return c
}
