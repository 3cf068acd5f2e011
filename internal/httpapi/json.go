package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
)

// errorBody is the JSON body of every error response; the OpenAPI document
// calls it Error.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// writeJSON writes v as a JSON response with the given status. A value that
// cannot be encoded is a programming error: it is logged and answered with
// a bare 500. A failed write, usually a client that went away, is logged at
// debug level.
func writeJSON(w http.ResponseWriter, r *http.Request, logger *slog.Logger, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		logger.ErrorContext(r.Context(), "encode JSON response", "path", r.URL.Path, "error", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(status)
	if _, err := w.Write(body); err != nil {
		logger.DebugContext(r.Context(), "write JSON response", "path", r.URL.Path, "error", err)
	}
}

// writeError writes the JSON error body {"error": msg, "status": status}.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, status int, msg string) {
	writeJSON(w, r, logger, status, errorBody{Error: msg, Status: status})
}
