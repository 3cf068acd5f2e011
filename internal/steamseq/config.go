package steamseq

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Config configures a Scanner. Zero fields take the default in their
// comment; Key is required.
type Config struct {
	// BaseURL is the Steam Web API's address, scheme and host; default
	// DefaultBaseURL.
	BaseURL string
	// Key is the Steam Web API key. It is sent in the key query parameter
	// and never written to logs, errors or metrics.
	Key string
	// StartSeqNum is the match_seq_num to start at when the ResumeFunc
	// reports none; 0 means start at the newest match Steam reports.
	StartSeqNum int64
	// MatchesRequested is the page size asked for, 1 to 100; default 100,
	// Steam's maximum.
	MatchesRequested int
	// IdleWait is how long to wait after a page that was not mostly full
	// (under 90% of MatchesRequested), which means the scanner has caught
	// up with Steam; default 5s.
	IdleWait time.Duration
	// MinInterval is the least time between the starts of two calls to
	// Steam, to any endpoint; default 1s, which keeps within the roughly
	// one call a second that Steam allows a key. Negative means no
	// minimum.
	MinInterval time.Duration
	// BackoffMin is the wait after a failed call (rate limited, server
	// error, network error, bad answer, key refused); default 1s. Each
	// further failure in a row doubles it, up to BackoffMax, with jitter.
	// A Retry-After header makes the wait at least that long (at most
	// MaxRetryAfter).
	BackoffMin time.Duration
	// BackoffMax caps the wait after failures; default 60s.
	BackoffMax time.Duration
	// RequestTimeout bounds one call, reading the body included; default 30s.
	RequestTimeout time.Duration
	// HeadInterval is how often the newest match_seq_num (the head) is
	// fetched with GetMatchHistory to report the lag; default 60s.
	// Negative disables it; the head then comes only from the start
	// position and from pages that reach it.
	HeadInterval time.Duration
	// HTTPClient makes the calls; nil means a client with
	// http.DefaultTransport. Its Timeout, if any, also applies.
	HTTPClient *http.Client
}

// Defaults of Config.
const (
	DefaultBaseURL          = "https://api.steampowered.com"
	DefaultMatchesRequested = 100
	DefaultIdleWait         = 5 * time.Second
	DefaultMinInterval      = time.Second
	DefaultBackoffMin       = time.Second
	DefaultBackoffMax       = 60 * time.Second
	DefaultRequestTimeout   = 30 * time.Second
	DefaultHeadInterval     = 60 * time.Second
)

// MaxRetryAfter caps the wait a Retry-After header can impose, so that a
// bogus header cannot stop the scanner for hours.
const MaxRetryAfter = 15 * time.Minute

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.MatchesRequested == 0 {
		c.MatchesRequested = DefaultMatchesRequested
	}
	def(&c.IdleWait, DefaultIdleWait)
	def(&c.MinInterval, DefaultMinInterval)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.HeadInterval, DefaultHeadInterval)
	if c.MinInterval < 0 {
		c.MinInterval = 0
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	return c
}

// check reports the first setting that cannot work.
func (c Config) check() error {
	if c.Key == "" {
		return errors.New("no Steam API key")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return fmt.Errorf("base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base URL %q is not an http:// or https:// URL with a host", c.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("base URL %q has a query or fragment", c.BaseURL)
	}
	if c.MatchesRequested < 1 || c.MatchesRequested > 100 {
		return fmt.Errorf("matches requested %d is not in 1..100", c.MatchesRequested)
	}
	if c.StartSeqNum < 0 {
		return fmt.Errorf("start seq num %d is negative", c.StartSeqNum)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"idle wait", c.IdleWait}, {"backoff min", c.BackoffMin}, {"request timeout", c.RequestTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%s %v is negative", d.name, d.v)
		}
	}
	return nil
}
