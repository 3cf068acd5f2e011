package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// sinceLayout formats a check's Since: RFC 3339 in UTC with milliseconds,
// such as 2026-11-27T05:00:00.123Z.
const sinceLayout = "2006-01-02T15:04:05.000Z07:00"

// healthResponse is the body of GET /api/v1/health (HealthResponse in the
// OpenAPI document).
type healthResponse struct {
	Status  string `json:"status"`
	Service string `json:"service"`
}

// readyResponse is the body of GET /api/v1/ready (ReadyResponse in the
// OpenAPI document).
type readyResponse struct {
	Status  string                 `json:"status"`
	Service string                 `json:"service"`
	Checks  map[string]checkStatus `json:"checks"`
}

// checkStatus is one dependency in readyResponse (CheckStatus in the
// OpenAPI document).
type checkStatus struct {
	Status string `json:"status"`
	Since  string `json:"since"`
	Detail string `json:"detail"`
}

// healthHandler answers liveness: it depends on nothing but the process
// serving HTTP, so it is always 200.
func healthHandler(service string, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, r, logger, http.StatusOK, healthResponse{Status: "healthy", Service: service})
	})
}

// readyHandler answers readiness: 200 "ready" when every check is up (or
// there are none), else 503 "not_ready", listing each check's state.
func readyHandler(service string, checks []Check, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp := readyResponse{
			Status:  "ready",
			Service: service,
			Checks:  make(map[string]checkStatus, len(checks)),
		}
		code := http.StatusOK
		for _, c := range checks {
			s := c.Status()
			cs := checkStatus{Status: "up", Since: formatSince(s.Since), Detail: s.Detail}
			if !s.Up {
				cs.Status = "down"
				resp.Status = "not_ready"
				code = http.StatusServiceUnavailable
			}
			resp.Checks[c.Name] = cs
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, r, logger, code, resp)
	})
}

// formatSince formats t with sinceLayout after converting it to UTC.
func formatSince(t time.Time) string {
	return t.UTC().Format(sinceLayout)
}
