package httpapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
)

// openAPISpec is the OpenAPI 3.0 description of the routes. Its
// info.version is a placeholder replaced by Options.Version.
//
//go:embed openapi.json
var openAPISpec []byte

// openAPIDocument returns openAPISpec with info.version set to version.
// Object keys come out sorted; the content is otherwise unchanged.
func openAPIDocument(version string) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(openAPISpec, &doc); err != nil {
		return nil, fmt.Errorf("parse embedded openapi.json: %w", err)
	}
	var info map[string]json.RawMessage
	if err := json.Unmarshal(doc["info"], &info); err != nil {
		return nil, fmt.Errorf("parse info of embedded openapi.json: %w", err)
	}
	v, err := json.Marshal(version)
	if err != nil {
		return nil, fmt.Errorf("encode version: %w", err)
	}
	info["version"] = v
	if doc["info"], err = json.Marshal(info); err != nil {
		return nil, fmt.Errorf("encode info: %w", err)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode openapi document: %w", err)
	}
	return out, nil
}

// openAPIHandler serves the OpenAPI document for version, built once. If it
// cannot be built, which only a malformed embedded file can cause, every
// request is logged and answered with a JSON 500 error.
func openAPIHandler(version string, logger *slog.Logger) http.Handler {
	doc, err := openAPIDocument(version)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err != nil {
			logger.ErrorContext(r.Context(), "serve OpenAPI document", "error", err)
			writeError(w, r, logger, http.StatusInternalServerError, "internal server error")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if _, werr := w.Write(doc); werr != nil {
			logger.DebugContext(r.Context(), "write OpenAPI document", "error", werr)
		}
	})
}
