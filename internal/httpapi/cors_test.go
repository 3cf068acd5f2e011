package httpapi

import (
	"net/http"
	"slices"
	"testing"
)

func TestCORSSimpleRequests(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		origin      string
		status      int
		allowOrigin string
		credentials string
	}{
		{"any origin, no credentials", "/api/v1/health", "https://dash.example", http.StatusOK, "*", ""},
		{"null origin, no credentials", "/api/v1/health", "null", http.StatusOK, "*", ""},
		{"no origin is wildcard", "/api/v1/health", "", http.StatusOK, "*", ""},
		{"error responses too", "/nope", "http://localhost:3000", http.StatusNotFound, "*", ""},
	}
	srv := newServer(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			resp, _ := do(t, srv, http.MethodGet, tt.path, h)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.allowOrigin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.allowOrigin)
			}
			if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != tt.credentials {
				t.Errorf("Access-Control-Allow-Credentials = %q, want %q", got, tt.credentials)
			}
		})
	}
}

// TestCORSAllowedOrigins: with CORSOrigins set, only those origins are
// echoed (with Vary: Origin), never with credentials; others get no CORS
// header, and their preflights reach the mux.
func TestCORSAllowedOrigins(t *testing.T) {
	srv := newServer(t, Options{CORSOrigins: []string{"https://dash.example"}})
	for _, tt := range []struct{ origin, allow string }{
		{"https://dash.example", "https://dash.example"},
		{"https://evil.example", ""},
		{"null", ""},
		{"", ""},
	} {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		resp, _ := do(t, srv, http.MethodGet, "/api/v1/health", h)
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.allow || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("origin %q: Allow-Origin %q, credentials %q; want %q and none", tt.origin, got, resp.Header.Get("Access-Control-Allow-Credentials"), tt.allow)
		}
		if !slices.Contains(resp.Header.Values("Vary"), "Origin") {
			t.Errorf("origin %q: Vary = %q, want Origin", tt.origin, resp.Header.Values("Vary"))
		}
	}
	h := http.Header{"Origin": {"https://evil.example"}, "Access-Control-Request-Method": {"GET"}}
	if resp, _ := do(t, srv, http.MethodOptions, "/api/v1/ready", h); resp.StatusCode == http.StatusOK || resp.Header.Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("a preflight from another origin = %d %v, want it refused", resp.StatusCode, resp.Header)
	}
}

func TestCORSPreflight(t *testing.T) {
	tests := []struct {
		name         string
		path         string
		method       string
		reqHeaders   string
		status       int
		allowHeaders string
		body         string
	}{
		{"get", "/api/v1/ready", "GET", "", http.StatusOK, "", ""},
		{"get with headers", "/api/v1/ready", "GET", "Authorization, X-Request-Id", http.StatusOK, "Authorization, X-Request-Id", ""},
		{"any path", "/elsewhere", "GET", "", http.StatusOK, "", ""},
		{"post refused", "/api/v1/ready", "POST", "", http.StatusBadRequest, "", `{"error":"disallowed CORS method","status":400}`},
	}
	srv := newServer(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("Origin", "https://dash.example")
			h.Set("Access-Control-Request-Method", tt.method)
			if tt.reqHeaders != "" {
				h.Set("Access-Control-Request-Headers", tt.reqHeaders)
			}
			resp, body := do(t, srv, http.MethodOptions, tt.path, h)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if string(body) != tt.body {
				t.Errorf("body = %q, want %q", body, tt.body)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin = %q, want *", got)
			}
			if got := resp.Header.Get("Access-Control-Allow-Headers"); got != tt.allowHeaders {
				t.Errorf("Access-Control-Allow-Headers = %q, want %q", got, tt.allowHeaders)
			}
			if tt.status != http.StatusOK {
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", ct)
				}
				return
			}
			want := map[string]string{
				"Access-Control-Allow-Methods":     "GET",
				"Access-Control-Allow-Credentials": "",
				"Access-Control-Max-Age":           "600",
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
