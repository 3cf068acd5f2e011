package httpapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dota-data/ingestion-service/internal/health"
)

func TestOpenAPIDocumentInfo(t *testing.T) {
	tests := []struct {
		name    string
		version string
		want    string
	}{
		{"default version", "", "dev"},
		{"given version", "1.4.0", "1.4.0"},
		{"version needing escapes", `v1 "rc"`, `v1 "rc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, Options{Version: tt.version})
			resp, body := do(t, srv, http.MethodGet, "/openapi.json", nil)
			wantJSON(t, resp, http.StatusOK)
			doc := decodeObject(t, body)
			if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
				t.Errorf("openapi = %q, want 3.x", v)
			}
			info, _ := doc["info"].(map[string]any)
			want := map[string]any{
				"title":       "Ingestion Service",
				"description": "Dota 2 match data ingestion service",
				"version":     tt.want,
			}
			for k, v := range want {
				if info[k] != v {
					t.Errorf("info.%s = %v, want %v", k, info[k], v)
				}
			}
		})
	}
}

// TestOpenAPIMatchesHandler requests every documented operation, in setups
// that produce each documented status, plus a wrong method on every path,
// and checks each answer against the document: its status is documented
// for the path, its media type is documented for the status, and a JSON
// body satisfies the documented schema. Every documented status must be
// produced by some request, so neither side can drift alone.
func TestOpenAPIMatchesHandler(t *testing.T) {
	up := health.NewState("connecting")
	up.Set(true, "connected")
	down := health.NewState("broker unreachable")
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte("ingested_matches_total 1\n"))
	})
	setups := []struct {
		name string
		opts Options
	}{
		{"all up", Options{ServiceName: "svc", Metrics: metrics, Checks: []Check{
			{Name: "stream", Status: up.Status}, {Name: "kafka", Status: up.Status},
		}}},
		{"kafka down, no metrics", Options{ServiceName: "svc", Checks: []Check{
			{Name: "stream", Status: up.Status}, {Name: "kafka", Status: down.Status},
		}}},
	}

	srv := newServer(t, setups[0].opts)
	resp, body := do(t, srv, http.MethodGet, "/openapi.json", nil)
	wantJSON(t, resp, http.StatusOK)
	doc := decodeObject(t, body)
	checker := schemaChecker{doc: doc}

	paths, _ := doc["paths"].(map[string]any)
	wantPaths := []string{"/api/v1/health", "/api/v1/ready", "/metrics", "/openapi.json"}
	if got := slices.Sorted(maps.Keys(paths)); !slices.Equal(got, wantPaths) {
		t.Errorf("documented paths = %v, want %v", got, wantPaths)
	}

	// unseen holds every documented "METHOD path status" not yet produced.
	unseen := map[string]bool{}
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method, op := range ops {
			responses, _ := op.(map[string]any)["responses"].(map[string]any)
			for code := range responses {
				unseen[fmt.Sprintf("%s %s %s", strings.ToUpper(method), path, code)] = true
			}
		}
	}

	for _, setup := range setups {
		srv := newServer(t, setup.opts)
		for path, item := range paths {
			ops, _ := item.(map[string]any)
			for method, op := range ops {
				responses, _ := op.(map[string]any)["responses"].(map[string]any)
				method = strings.ToUpper(method)
				for _, send := range []string{method, http.MethodPost} {
					t.Run(fmt.Sprintf("%s/%s %s", setup.name, send, path), func(t *testing.T) {
						resp, body := do(t, srv, send, path, nil)
						code := strconv.Itoa(resp.StatusCode)
						delete(unseen, fmt.Sprintf("%s %s %s", method, path, code))
						documented, ok := responses[code].(map[string]any)
						if !ok {
							t.Fatalf("status %s is not documented for %s %s", code, method, path)
						}
						for _, e := range checkResponse(checker, documented, resp, body) {
							t.Error(e)
						}
					})
				}
			}
		}
	}
	if len(unseen) > 0 {
		t.Errorf("documented but never produced: %v", slices.Sorted(maps.Keys(unseen)))
	}
}

// checkResponse checks one response against its documented Response
// object.
func checkResponse(c schemaChecker, documented map[string]any, resp *http.Response, body []byte) []string {
	if ref, ok := documented["$ref"].(string); ok {
		target, err := c.resolve(ref)
		if err != nil {
			return []string{err.Error()}
		}
		documented = target
	}
	content, _ := documented["content"].(map[string]any)
	mediaType, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return []string{fmt.Sprintf("Content-Type %q: %v", resp.Header.Get("Content-Type"), err)}
	}
	media, ok := content[mediaType].(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("media type %s not documented, want one of %v", mediaType, slices.Sorted(maps.Keys(content)))}
	}
	schema, _ := media["schema"].(map[string]any)
	if mediaType != "application/json" {
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return []string{fmt.Sprintf("body %q is not JSON: %v", body, err)}
	}
	return c.check("$", schema, v)
}
