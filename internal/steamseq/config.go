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
	// Keys are the Steam Web API keys, at least one. Each is paced on its
	// own (see KeyInterval) and calls go to whichever key is free first.
	// A key is sent in the key query parameter and never written to logs,
	// errors or metrics; metrics tell keys apart by their position in
	// Keys, from 1.
	Keys []string
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
	// KeyInterval is the time between two calls with one key that each
	// key starts at; default 5s, the rate Steam is known to allow a key
	// (odota/core svc/scanner.ts). The interval then adapts: a refused
	// call (HTTP 429) makes it 1.15 times longer, a run of successful calls
	// made at that key's pace makes it shorter, never below MinInterval
	// nor above max(KeyInterval, BackoffMax). Negative starts at
	// MinInterval.
	KeyInterval time.Duration
	// MinInterval is the floor of a key's interval: the least time
	// between the starts of two calls with one key, to any endpoint;
	// default 1s. Negative means no floor.
	MinInterval time.Duration
	// RescanBehind is how far, in sequence numbers, a second cursor
	// trails the first to find the matches Steam lists late (at their
	// original match_seq_num, after the first cursor has passed them);
	// default 50,000, the offset OpenDota's second scanner uses
	// (odota/core ecosystem.config.js, SCANNER_OFFSET). The rescan reads
	// a seq once the first cursor is RescanBehind past it or passed it
	// RescanDelay ago, whichever comes first. Negative turns the rescan
	// off.
	RescanBehind int64
	// RescanDelay is how long after the first cursor passed a seq the
	// rescan reads it, even if the first cursor is not yet RescanBehind
	// past it (so that a head that stops moving is still rescanned);
	// default 1h. Negative leaves only RescanBehind.
	RescanDelay time.Duration
	// SkipAfter is how long a page of one match must keep failing with a
	// broken answer (status 2, or an answer that is not a valid page)
	// before the cursor steps past that match, after at least SkipTries
	// tries; default 2m. The skipped seqs are counted, logged at error
	// level, and read once more by the rescan.
	SkipAfter time.Duration
	// BackoffMin is the wait after a failed call (rate limited, server
	// error, network error, bad answer, key refused); default 1s. Each
	// further failure in a row doubles it, up to BackoffMax, with jitter.
	// A Retry-After header makes the wait at least that long (at most
	// MaxRetryAfter).
	BackoffMin time.Duration
	// BackoffMax caps the wait after failures; default 60s. The wait
	// after a network or server error is capped at MaxFailureWait too.
	BackoffMax time.Duration
	// RequestTimeout bounds one call, reading the body included; default 30s.
	RequestTimeout time.Duration
	// HeadInterval is how often the newest match_seq_num (the head) is
	// fetched with GetMatchHistory to report the lag; default 60s.
	// Negative disables it; the head then comes only from the start
	// position and from pages that reach it.
	HeadInterval time.Duration
	// DailyCalls is how many calls a key may make in a UTC day; default
	// DefaultDailyCalls, the cap of Steam's Web API terms. A key that
	// reaches it rests until 00:00 UTC. The count is this process's:
	// one that restarts during the day counts from 0 again. Negative
	// means no cap.
	DailyCalls int
	// HTTPClient makes the calls; nil means a client with
	// http.DefaultTransport. Its Timeout, if any, also applies.
	HTTPClient *http.Client
}

// Defaults of Config.
const (
	DefaultBaseURL          = "https://api.steampowered.com"
	DefaultMatchesRequested = 100
	DefaultIdleWait         = 5 * time.Second
	DefaultKeyInterval      = 5 * time.Second
	DefaultMinInterval      = time.Second
	DefaultRescanBehind     = 50_000
	DefaultRescanDelay      = time.Hour
	DefaultSkipAfter        = 2 * time.Minute
	DefaultBackoffMin       = time.Second
	DefaultBackoffMax       = 60 * time.Second
	DefaultRequestTimeout   = 30 * time.Second
	DefaultHeadInterval     = 60 * time.Second
	DefaultDailyCalls       = 100_000
)

// MaxFailureWait caps the wait after calls that failed in the network or
// with a server error, below BackoffMax: such a call cost Steam little,
// since every call also waits for its key's pace, and the scan should go
// on within seconds of the link or Steam coming back, not after a minute
// of doubling (after a minute of resets on every link, with BackoffMax
// alone, the scan resumed 43 s after the heal).
const MaxFailureWait = 5 * time.Second

// SkipTries is the least number of failed tries of a one-match page
// before the cursor steps past that match (see Config.SkipAfter).
const SkipTries = 3

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
	def(&c.KeyInterval, DefaultKeyInterval)
	def(&c.RescanDelay, DefaultRescanDelay)
	def(&c.SkipAfter, DefaultSkipAfter)
	if c.RescanBehind == 0 {
		c.RescanBehind = DefaultRescanBehind
	}
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.HeadInterval, DefaultHeadInterval)
	if c.DailyCalls == 0 {
		c.DailyCalls = DefaultDailyCalls
	}
	if c.MinInterval < 0 {
		c.MinInterval = 0
	}
	if c.KeyInterval < c.MinInterval {
		c.KeyInterval = c.MinInterval
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
	if len(c.Keys) == 0 {
		return errors.New("no Steam API key")
	}
	seen := map[string]bool{}
	for i, k := range c.Keys {
		switch {
		case k == "":
			return fmt.Errorf("key %d of %d for the Steam API is empty", i+1, len(c.Keys))
		case seen[k]:
			return fmt.Errorf("key %d of %d for the Steam API repeats an earlier one", i+1, len(c.Keys))
		}
		seen[k] = true
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
	}{{"idle wait", c.IdleWait}, {"backoff min", c.BackoffMin}, {"request timeout", c.RequestTimeout}, {"skip after", c.SkipAfter}} {
		if d.v < 0 {
			return fmt.Errorf("%s %v is negative", d.name, d.v)
		}
	}
	return nil
}
