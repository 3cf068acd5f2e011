// Package redact hides the secrets that a URL can carry (user info, and a
// query that may hold a token) wherever the URL is shown: in logs,
// readiness details, errors and metrics.
//
// URL gives the form to show. ForURL returns a Text that removes the URL's
// secrets from any text, such as an error from net/http or a WebSocket
// dial, which quote the URL as given (or with the password as "***").
package redact

import (
	"net/url"
	"strings"
)

// Mark replaces what is hidden.
const Mark = "REDACTED"

// URL returns u with its user info and its query replaced by Mark:
// wss://user:pw@host/matches?token=T shows as
// wss://REDACTED@host/matches?REDACTED. A fragment goes with the query.
func URL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i] + "?" + Mark
	}
	if scheme := strings.Index(u, "://"); scheme >= 0 {
		rest := u[scheme+3:]
		host := rest
		if j := strings.IndexAny(rest, "/?"); j >= 0 {
			host = rest[:j]
		}
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			u = u[:scheme+3] + Mark + "@" + rest[at+1:]
		}
	}
	return u
}

// Text removes one URL's secrets from text. The zero Text changes nothing.
type Text struct {
	r *strings.Replacer
}

// ForURL returns the Text for raw: it replaces raw itself with URL(raw),
// and its user info, its password as net/http shows it ("***") and its
// query wherever they appear alone.
func ForURL(raw string) Text {
	pairs := []string{raw, URL(raw)}
	if u, err := url.Parse(raw); err == nil {
		if u.User != nil {
			pairs = append(pairs, u.User.String()+"@", Mark+"@")
			if _, hasPw := u.User.Password(); hasPw {
				// net/http's errors show the URL with the password as ***.
				pairs = append(pairs, u.User.Username()+":***@", Mark+"@")
			}
		}
		if u.RawQuery != "" {
			pairs = append(pairs, "?"+u.RawQuery, "?"+Mark, u.RawQuery, Mark)
		}
		if u.Fragment != "" {
			pairs = append(pairs, "#"+u.EscapedFragment(), "?"+Mark)
		}
	}
	if URL(raw) == raw && len(pairs) == 2 {
		return Text{}
	}
	return Text{r: strings.NewReplacer(pairs...)}
}

// String returns s without the URL's secrets.
func (t Text) String(s string) string {
	if t.r == nil {
		return s
	}
	return t.r.Replace(s)
}

// Error returns err with the URL's secrets removed from its text. The
// result still wraps err, for errors.Is and errors.As; only its text
// changes. A nil err stays nil, and one whose text holds no secret is
// returned as is.
func (t Text) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if hidden := t.String(msg); hidden != msg {
		return &redacted{msg: hidden, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
