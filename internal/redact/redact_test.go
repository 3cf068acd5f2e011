package redact

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"wss://stream.opendota.com/matches":     "wss://stream.opendota.com/matches",
		"wss://user:pw@host/path":               "wss://REDACTED@host/path",
		"wss://host/path?token=secret&a=b":      "wss://host/path?REDACTED",
		"ws://u:p@host:1/x?api_key=1":           "ws://REDACTED@host:1/x?REDACTED",
		"https://host/logs#frag":                "https://host/logs?REDACTED",
		"http://host/a@b/c":                     "http://host/a@b/c", // an @ in the path is no user info
		"ws://user@host":                        "ws://REDACTED@host",
		"not a url ?token=1":                    "not a url ?REDACTED",
		"":                                      "",
		"https://api.steampowered.com/IDOTA2/x": "https://api.steampowered.com/IDOTA2/x",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestText: the secrets leave every form in which libraries quote a URL,
// and an error keeps its chain.
func TestText(t *testing.T) {
	const raw = "wss://user:s3cret-pw@host:9/matches?token=T0KEN&x=1"
	tx := ForURL(raw)
	for _, in := range []string{
		raw,
		`failed to WebSocket dial: failed to send handshake request: Get "wss://user:***@host:9/matches?token=T0KEN&x=1": dial tcp: refused`,
		"redirected from " + raw + " to elsewhere",
		"query token=T0KEN&x=1 alone",
		"user info user:s3cret-pw@ alone",
	} {
		out := tx.String(in)
		for _, secret := range []string{"s3cret-pw", "T0KEN", "user:***"} {
			if strings.Contains(out, secret) {
				t.Errorf("String(%q) = %q: shows %q", in, out, secret)
			}
		}
	}
	if got := tx.String(raw); got != "wss://REDACTED@host:9/matches?REDACTED" {
		t.Errorf("String(raw) = %q", got)
	}
	err := fmt.Errorf("dial %s: %w", raw, io.ErrUnexpectedEOF)
	red := tx.Error(err)
	if strings.Contains(red.Error(), "T0KEN") || !errors.Is(red, io.ErrUnexpectedEOF) {
		t.Errorf("Error = %v (Is EOF %v), want the text hidden and the chain kept", red, errors.Is(red, io.ErrUnexpectedEOF))
	}
	if plain := errors.New("no url here"); tx.Error(plain) != plain || tx.Error(nil) != nil {
		t.Error("an error without secrets, or nil, must come back as is")
	}
	if clean := ForURL("wss://host/matches"); clean.String("wss://host/matches x") != "wss://host/matches x" {
		t.Error("a URL without secrets must change nothing")
	}
}
