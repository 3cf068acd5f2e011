// Package redirect is the policy the sources apply to HTTP redirects of
// the URL they are configured with (the WebSocket handshake and the SSE
// request both go through net/http, which follows redirects by default).
//
// A redirect from TLS to plaintext (https to http, so wss to ws) is
// always refused: it would send the stream, and any credentials in the
// request, in the clear. A redirect to another host (or port) is refused
// too: the request carries what the operator configured for one host
// (user info, headers such as a token), and a stream that moved should be
// reconfigured on purpose rather than followed silently. A redirect on
// the same host, to another path, is followed; Final tells where a
// response really came from, for readiness and logs.
package redirect

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/dota-data/ingestion-service/internal/redact"
)

// The errors Check refuses a redirect with, wrapped with where it led.
var (
	// ErrDowngrade: a redirect from https to http.
	ErrDowngrade = errors.New("redirect from TLS to plaintext refused")
	// ErrOtherHost: a redirect to another host or port.
	ErrOtherHost = errors.New("redirect to another host refused")
	// ErrTooMany: more than MaxRedirects in a row.
	ErrTooMany = errors.New("too many redirects")
)

// MaxRedirects is how many redirects in a row Check follows, as net/http
// does by default.
const MaxRedirects = 10

// Check is an http.Client CheckRedirect function that applies the policy:
// req is the redirected request, via the requests made so far (via[0] is
// the configured URL). Its errors name the target with its secrets
// redacted.
func Check(req *http.Request, via []*http.Request) error {
	if len(via) == 0 {
		return nil
	}
	from, to := via[0].URL, req.URL
	switch {
	case len(via) >= MaxRedirects:
		return fmt.Errorf("%w: %d, the last to %s", ErrTooMany, len(via), redact.URL(to.String()))
	case from.Scheme == "https" && to.Scheme != "https":
		return fmt.Errorf("%w: %s to %s", ErrDowngrade, redact.URL(from.String()), redact.URL(to.String()))
	case to.Host != from.Host:
		return fmt.Errorf("%w: %s to %s", ErrOtherHost, redact.URL(from.String()), redact.URL(to.String()))
	}
	return nil
}

// Client returns c (or, if nil, a client with http.DefaultTransport's
// settings) applying Check: a copy when it has a CheckRedirect of its own,
// which Check then replaces.
func Client(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), CheckRedirect: Check}
	}
	cp := *c
	cp.CheckRedirect = Check
	return &cp
}

// Final returns the URL a response came from after the redirects
// followed, or configured if resp tells none; ws and wss schemes are kept
// when configured is a WebSocket URL.
func Final(resp *http.Response, configured string) string {
	if resp == nil || resp.Request == nil || resp.Request.URL == nil {
		return configured
	}
	u := *resp.Request.URL
	if c, err := url.Parse(configured); err == nil && (c.Scheme == "ws" || c.Scheme == "wss") {
		switch u.Scheme {
		case "http":
			u.Scheme = "ws"
		case "https":
			u.Scheme = "wss"
		}
	}
	return u.String()
}
