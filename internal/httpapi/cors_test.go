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
		{"origin echoed", "/api/v1/health", "https://dash.example", http.StatusOK, "https://dash.example", "true"},
		{"no origin is wildcard", "/api/v1/health", "", http.StatusOK, "*", ""},
		{"error responses too", "/nope", "http://localhost:3000", http.StatusNotFound, "http://localhost:3000", "true"},
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
			if !slices.Contains(resp.Header.Values("Vary"), "Origin") {
				t.Errorf("Vary = %q, want it to contain Origin", resp.Header.Values("Vary"))
			}
		})
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
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://dash.example" {
				t.Errorf("Access-Control-Allow-Origin = %q, want the origin", got)
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
				"Access-Control-Allow-Credentials": "true",
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
