package redirect

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func req(t *testing.T, raw string) *http.Request {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Request{URL: u}
}

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		from, to string
		want     error
	}{
		{"https://a.example/logs", "https://a.example/logs/api", nil},
		{"http://a.example/logs", "https://a.example/logs", nil}, // an upgrade is fine
		{"https://a.example/logs", "http://a.example/logs", ErrDowngrade},
		{"https://a.example/logs", "https://b.example/logs", ErrOtherHost},
		{"http://a.example:1/logs", "http://a.example:2/logs", ErrOtherHost},
	} {
		err := Check(req(t, tt.to), []*http.Request{req(t, tt.from)})
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s -> %s: %v, want %v", tt.from, tt.to, err, tt.want)
		}
	}
	via := make([]*http.Request, MaxRedirects)
	for i := range via {
		via[i] = req(t, "https://a.example/x")
	}
	if err := Check(req(t, "https://a.example/y"), via); !errors.Is(err, ErrTooMany) {
		t.Errorf("after %d redirects: %v, want ErrTooMany", MaxRedirects, err)
	}
	err := Check(req(t, "http://u:pw-S3CRET@b.example/?token=T0KEN"), []*http.Request{req(t, "https://a.example/")})
	if err == nil || strings.Contains(err.Error(), "S3CRET") || strings.Contains(err.Error(), "T0KEN") {
		t.Errorf("error %v shows a secret", err)
	}
}

func TestFinal(t *testing.T) {
	resp := &http.Response{Request: req(t, "https://a.example/new")}
	if got := Final(resp, "wss://a.example/old"); got != "wss://a.example/new" {
		t.Errorf("Final = %q, want the WebSocket scheme kept", got)
	}
	if got := Final(resp, "https://a.example/old"); got != "https://a.example/new" {
		t.Errorf("Final = %q", got)
	}
	if got := Final(nil, "wss://a.example/old"); got != "wss://a.example/old" {
		t.Errorf("Final(nil) = %q, want the configured URL", got)
	}
}
