package httpapi

import (
	"net/http"
	"testing"
)

func TestMetrics(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte("ingested_matches_total 42\n"))
	})
	tests := []struct {
		name    string
		metrics http.Handler
		status  int
		ct      string
		body    string
	}{
		{"served", metrics, http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", "ingested_matches_total 42\n"},
		{"nil is not found", nil, http.StatusNotFound, "application/json", `{"error":"not found","status":404}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, Options{Metrics: tt.metrics})
			resp, body := do(t, srv, http.MethodGet, "/metrics", nil)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != tt.ct || string(body) != tt.body {
				t.Errorf("got %d %q %q, want %d %q %q",
					resp.StatusCode, resp.Header.Get("Content-Type"), body, tt.status, tt.ct, tt.body)
			}
		})
	}
}

func TestJSONMuxErrors(t *testing.T) {
	const (
		notFound   = `{"error":"not found","status":404}`
		notAllowed = `{"error":"method not allowed","status":405}`
	)
	tests := []struct {
		name   string
		method string
		path   string
		status int
		allow  string
		body   string
	}{
		{"unknown path", http.MethodGet, "/nope", http.StatusNotFound, "", notFound},
		{"unknown path other method", http.MethodPost, "/nope", http.StatusNotFound, "", notFound},
		{"path below a route", http.MethodGet, "/api/v1/health/x", http.StatusNotFound, "", notFound},
		{"post health", http.MethodPost, "/api/v1/health", http.StatusMethodNotAllowed, "GET, HEAD", notAllowed},
		{"delete ready", http.MethodDelete, "/api/v1/ready", http.StatusMethodNotAllowed, "GET, HEAD", notAllowed},
		{"put openapi", http.MethodPut, "/openapi.json", http.StatusMethodNotAllowed, "GET, HEAD", notAllowed},
		{"post metrics", http.MethodPost, "/metrics", http.StatusMethodNotAllowed, "GET, HEAD", notAllowed},
		{"options without preflight", http.MethodOptions, "/api/v1/health", http.StatusMethodNotAllowed, "GET, HEAD", notAllowed},
		{"source map not served", http.MethodGet, "/docs/assets/swagger-ui-bundle.js.map", http.StatusNotFound, "", notFound},
		{"upstream index not served", http.MethodGet, "/docs/assets/index.html", http.StatusNotFound, "", notFound},
	}
	srv := newServer(t, Options{Metrics: http.NotFoundHandler()})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, srv, tt.method, tt.path, nil)
			wantJSON(t, resp, tt.status)
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if string(body) != tt.body {
				t.Errorf("body = %s, want %s", body, tt.body)
			}
		})
	}
}

func TestMuxRedirectPassesThrough(t *testing.T) {
	srv := newServer(t, Options{})
	resp, _ := do(t, srv, http.MethodGet, "/nope//x", nil)
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "/nope/x" {
		t.Errorf("got %d Location %q, want 307 to /nope/x", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestProfilingIsOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := newServer(t, Options{Profiling: on})
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1"} {
			resp, body := do(t, srv, http.MethodGet, path, nil)
			want := http.StatusNotFound
			if on {
				want = http.StatusOK
			}
			if resp.StatusCode != want || on && len(body) == 0 {
				t.Errorf("Profiling=%v: GET %s = %d with %d bytes, want %d", on, path, resp.StatusCode, len(body), want)
			}
		}
	}
}
