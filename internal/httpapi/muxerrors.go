package httpapi

import (
	"log/slog"
	"net/http"
)

// withJSONMuxErrors serves requests with mux, replacing the plain-text
// bodies that http.ServeMux writes for unknown paths (404) and for known
// paths asked with another method (405) with JSON error bodies. The Allow
// header that the mux sets on a 405 is kept. Responses of registered
// routes, and the mux's redirects, pass through untouched.
func withJSONMuxErrors(mux *http.ServeMux, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An empty pattern means no route matched: the mux will answer
		// with its own 404, 405 or path-cleaning redirect.
		if _, pattern := mux.Handler(r); pattern == "" {
			w = &muxErrorWriter{ResponseWriter: w, r: r, logger: logger}
		}
		mux.ServeHTTP(w, r)
	})
}

// muxErrorWriter rewrites a 404 or 405 response as a JSON error and drops
// the plain-text body written after it.
type muxErrorWriter struct {
	http.ResponseWriter
	r        *http.Request
	logger   *slog.Logger
	replaced bool
}

// WriteHeader writes the JSON error in place of a 404 or 405 status and
// passes any other status through.
func (w *muxErrorWriter) WriteHeader(status int) {
	switch status {
	case http.StatusNotFound:
		w.replaced = true
		writeError(w.ResponseWriter, w.r, w.logger, status, "not found")
	case http.StatusMethodNotAllowed:
		w.replaced = true
		writeError(w.ResponseWriter, w.r, w.logger, status, "method not allowed")
	default:
		w.ResponseWriter.WriteHeader(status)
	}
}

// Write discards the body once the response has been replaced.
func (w *muxErrorWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController access to the underlying writer.
func (w *muxErrorWriter) Unwrap() http.ResponseWriter {
	return w.ResponseWriter
}
