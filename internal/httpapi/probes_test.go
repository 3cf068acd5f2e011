package httpapi

import (
	"net/http"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/health"
)

func TestHealth(t *testing.T) {
	tests := []struct {
		name    string
		service string
		want    string
	}{
		{"service name", "ingestion-service", `{"status":"healthy","service":"ingestion-service"}`},
		{"other name", "replay-ingest", `{"status":"healthy","service":"replay-ingest"}`},
		{"down checks do not matter", "svc", `{"status":"healthy","service":"svc"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			down := health.NewState("never connected")
			srv := newServer(t, Options{
				ServiceName: tt.service,
				Checks:      []Check{{Name: "stream", Status: down.Status}},
			})
			resp, body := do(t, srv, http.MethodGet, "/api/v1/health", nil)
			wantJSON(t, resp, http.StatusOK)
			if string(body) != tt.want {
				t.Errorf("body = %s, want %s", body, tt.want)
			}
		})
	}
}

// fixed returns a Check reporting st.
func fixed(name string, st health.Status) Check {
	return Check{Name: name, Status: func() health.Status { return st }}
}

func TestReadyWithFixedStatuses(t *testing.T) {
	plusOne := time.FixedZone("UTC+1", 60*60)
	since := time.Date(2026, 11, 27, 6, 0, 0, 123_456_789, plusOne)
	const sinceText = "2026-11-27T05:00:00.123Z"

	tests := []struct {
		name   string
		checks []Check
		status int
		want   map[string]any
	}{
		{
			name:   "no checks is ready",
			status: http.StatusOK,
			want:   map[string]any{"status": "ready", "service": "svc", "checks": map[string]any{}},
		},
		{
			name: "all up",
			checks: []Check{
				fixed("stream", health.Status{Up: true, Since: since, Detail: "connected"}),
				fixed("kafka", health.Status{Up: true, Since: since, Detail: "producing"}),
			},
			status: http.StatusOK,
			want: map[string]any{"status": "ready", "service": "svc", "checks": map[string]any{
				"stream": map[string]any{"status": "up", "since": sinceText, "detail": "connected"},
				"kafka":  map[string]any{"status": "up", "since": sinceText, "detail": "producing"},
			}},
		},
		{
			name: "one down",
			checks: []Check{
				fixed("stream", health.Status{Up: true, Since: since, Detail: "connected"}),
				fixed("kafka", health.Status{Up: false, Since: since, Detail: "broker unreachable"}),
			},
			status: http.StatusServiceUnavailable,
			want: map[string]any{"status": "not_ready", "service": "svc", "checks": map[string]any{
				"stream": map[string]any{"status": "up", "since": sinceText, "detail": "connected"},
				"kafka":  map[string]any{"status": "down", "since": sinceText, "detail": "broker unreachable"},
			}},
		},
		{
			name:   "zero since",
			checks: []Check{fixed("stream", health.Status{})},
			status: http.StatusServiceUnavailable,
			want: map[string]any{"status": "not_ready", "service": "svc", "checks": map[string]any{
				"stream": map[string]any{"status": "down", "since": "0001-01-01T00:00:00.000Z", "detail": ""},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, Options{ServiceName: "svc", Checks: tt.checks})
			resp, body := do(t, srv, http.MethodGet, "/api/v1/ready", nil)
			wantJSON(t, resp, tt.status)
			if got := decodeObject(t, body); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("body = %s\nwant %v", body, tt.want)
			}
		})
	}
}

func TestReadyWithHealthState(t *testing.T) {
	sinceFormat := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

	tests := []struct {
		name        string
		streamUp    bool
		kafkaUp     bool
		status      int
		ready       string
		kafkaStatus string
	}{
		{"both up", true, true, http.StatusOK, "ready", "up"},
		{"kafka down", true, false, http.StatusServiceUnavailable, "not_ready", "down"},
		{"stream down", false, true, http.StatusServiceUnavailable, "not_ready", "up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Millisecond)
			stream := health.NewState("connecting")
			kafka := health.NewState("connecting")
			stream.Set(tt.streamUp, "stream detail")
			kafka.Set(tt.kafkaUp, "kafka detail")
			after := time.Now()

			srv := newServer(t, Options{
				ServiceName: "ingestion-service",
				Checks: []Check{
					{Name: "stream", Status: stream.Status},
					{Name: "kafka", Status: kafka.Status},
				},
			})
			resp, body := do(t, srv, http.MethodGet, "/api/v1/ready", nil)
			wantJSON(t, resp, tt.status)

			got := decodeObject(t, body)
			if got["status"] != tt.ready || got["service"] != "ingestion-service" {
				t.Errorf("status, service = %v, %v; want %s, ingestion-service", got["status"], got["service"], tt.ready)
			}
			checks, _ := got["checks"].(map[string]any)
			kafkaCheck, _ := checks["kafka"].(map[string]any)
			if kafkaCheck["status"] != tt.kafkaStatus || kafkaCheck["detail"] != "kafka detail" {
				t.Errorf("kafka check = %v, want status %s with detail", kafkaCheck, tt.kafkaStatus)
			}
			sinceText, _ := kafkaCheck["since"].(string)
			if !sinceFormat.MatchString(sinceText) {
				t.Fatalf("kafka since = %q, want RFC 3339 UTC with milliseconds", sinceText)
			}
			since, err := time.Parse(time.RFC3339Nano, sinceText)
			if err != nil {
				t.Fatalf("parse since: %v", err)
			}
			if since.Before(before) || since.After(after) {
				t.Errorf("kafka since = %v, want within [%v, %v]", since, before, after)
			}
			if want := kafka.Status().Since.UTC().Truncate(time.Millisecond); !since.Equal(want) {
				t.Errorf("kafka since = %v, want %v", since, want)
			}
		})
	}
}

func TestNewHandlerRejectsBadChecks(t *testing.T) {
	ok := func() health.Status { return health.Status{Up: true} }
	tests := []struct {
		name   string
		checks []Check
	}{
		{"empty name", []Check{{Name: "", Status: ok}}},
		{"nil status", []Check{{Name: "kafka"}}},
		{"duplicate name", []Check{{Name: "kafka", Status: ok}, {Name: "kafka", Status: ok}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("NewHandler did not panic")
				}
			}()
			NewHandler(Options{Checks: tt.checks})
		})
	}
}
