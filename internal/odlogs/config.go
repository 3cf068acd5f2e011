package odlogs

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/dota-data/ingestion-service/internal/redact"
)

// The channels a Source can take match IDs from. They are named after the
// upstream Redis channels whose lines they read.
const (
	// ChannelAPI yields the ID of every "[insert: api]" line: a match
	// newly inserted from the Steam API.
	ChannelAPI = "api"
	// ChannelParsed yields the ID of every "[parser] [success: ...]" line: a
	// match whose replay was parsed.
	ChannelParsed = "parsed"
)

// Config configures a Source. Zero fields take the default in their
// comment; Validate says which values are refused.
type Config struct {
	// URL is the event stream's http:// or https:// address; default
	// DefaultURL, OpenDota's public stream.
	URL string
	// Channels lists the kinds of line that yield match IDs: ChannelAPI,
	// ChannelParsed or both; default [ChannelAPI]. Lines of a channel not
	// listed are counted as ignored. A match usually shows up on both,
	// first when inserted and again once parsed.
	Channels []string
	// ConnectTimeout bounds connecting and waiting for the response
	// headers, not the stream that follows; default 10s.
	ConnectTimeout time.Duration
	// IdleTimeout is how long the stream may send nothing at all before
	// the connection is taken for dead and replaced; default 5m. The
	// upstream sends no keep-alive comments, so this must outlast the
	// quietest stretch of the channels it carries; its "api" channel
	// usually has many lines a second.
	IdleTimeout time.Duration
	// StaleAfter is how long the stream may go without a match of the
	// listed channels, while connected, before the source reports itself
	// down; default 2m, negative never. OpenDota's stream stays connected
	// and busy with other channels when its inserter stalls, so silence
	// on "insert: api" is the failure to see, not silence on the
	// connection. At Dota's rate of about 12 matches a second, announced
	// in bursts of a Steam page (about 100) every 8 s or so, two minutes
	// without one is some 1,400 matches not announced: never a lull, and
	// long enough to ride out the announcer's own backoff after a Steam
	// refusal (up to a minute).
	StaleAfter time.Duration
	// MaxLineBytes is the longest line of the stream that is read whole,
	// its field name included; default 65536, at least 256. A longer line
	// is skipped: if its start has the shape of a line that yields match
	// IDs it is rejected with reason match.TooLarge, else it is counted as
	// oversized. The upstream's lines are about 150 bytes.
	MaxLineBytes int
	// MaxEventBytes caps the data one event may gather before it is
	// dispatched; default 1 MiB, or MaxLineBytes if larger. Data lines
	// beyond it are skipped and counted as oversized.
	MaxEventBytes int
	// BackoffMin is the first reconnect delay; default 1s. Each failed
	// attempt doubles it, up to BackoffMax, with jitter. A retry: field
	// from the server raises every delay to at least its value.
	BackoffMin time.Duration
	// BackoffMax caps the reconnect delay, including one a retry: field
	// asks for; default 60s, and never below BackoffMin.
	BackoffMax time.Duration
	// HealthyAfter is how long a connection must last for the next
	// reconnect to start again from BackoffMin; default 60s.
	HealthyAfter time.Duration
	// HTTPClient makes the requests; nil means a client of its own with
	// the system's proxy settings and trust roots. Its Timeout must be
	// zero, or it cuts the stream.
	HTTPClient *http.Client
	// Header is sent with every request. The source sets Accept,
	// Cache-Control and Last-Event-ID itself.
	Header http.Header
}

// Defaults of Config.
const (
	DefaultURL            = "https://api.opendota.com/logs"
	DefaultConnectTimeout = 10 * time.Second
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultStaleAfter     = 2 * time.Minute
	DefaultMaxLineBytes   = 64 << 10
	DefaultMaxEventBytes  = 1 << 20
	DefaultBackoffMin     = time.Second
	DefaultBackoffMax     = 60 * time.Second
	DefaultHealthyAfter   = 60 * time.Second
)

// minLineBytes is the smallest MaxLineBytes accepted: room for a whole
// line of the upstream's shapes.
const minLineBytes = 256

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if len(c.Channels) == 0 {
		c.Channels = []string{ChannelAPI}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ConnectTimeout, DefaultConnectTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.StaleAfter, DefaultStaleAfter)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.HealthyAfter, DefaultHealthyAfter)
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = DefaultMaxLineBytes
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = max(DefaultMaxEventBytes, c.MaxLineBytes)
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	return c
}

// Validate reports every value of c, after defaults, that a Source would
// refuse: a URL that is not http:// or https:// with a host, an unknown
// channel, a negative duration, MaxLineBytes below 256, MaxEventBytes
// below MaxLineBytes, or an HTTPClient with a Timeout. It returns nil for
// the zero Config.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := checkURL(c.URL); err != nil {
		errs = append(errs, err)
	}
	for _, ch := range c.Channels {
		if ch != ChannelAPI && ch != ChannelParsed {
			errs = append(errs, fmt.Errorf("unknown channel %q: want %q or %q", ch, ChannelAPI, ChannelParsed))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"connect timeout", c.ConnectTimeout},
		{"idle timeout", c.IdleTimeout},
		{"backoff min", c.BackoffMin},
		{"backoff max", c.BackoffMax},
		{"healthy after", c.HealthyAfter},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is negative: %v", d.name, d.v))
		}
	}
	if c.MaxLineBytes < minLineBytes {
		errs = append(errs, fmt.Errorf("max line bytes is %d, below %d", c.MaxLineBytes, minLineBytes))
	}
	if c.MaxEventBytes < c.MaxLineBytes {
		errs = append(errs, fmt.Errorf("max event bytes %d is below max line bytes %d", c.MaxEventBytes, c.MaxLineBytes))
	}
	if c.HTTPClient != nil && c.HTTPClient.Timeout != 0 {
		errs = append(errs, fmt.Errorf("http client has a timeout (%v), which would cut the stream", c.HTTPClient.Timeout))
	}
	return errors.Join(errs...)
}

// checkURL reports whether raw is an http:// or https:// URL with a host.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url: %w", redact.ForURL(raw).Error(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q is not http:// or https://", redact.URL(raw))
	}
	if u.Host == "" {
		return fmt.Errorf("url %q has no host", redact.URL(raw))
	}
	return nil
}
