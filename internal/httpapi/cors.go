package httpapi

import (
	"log/slog"
	"net/http"
)

// corsMaxAge is how long, in seconds, browsers may cache a preflight
// answer.
const corsMaxAge = "600"

// withCORS adds CORS headers to every response of next and answers CORS
// preflight requests itself. It reproduces the service's original FastAPI
// configuration (any origin, GET only, any request header, credentials
// allowed):
//
//   - A request with an Origin header gets that origin echoed in
//     Access-Control-Allow-Origin together with
//     Access-Control-Allow-Credentials: true, because browsers refuse the
//     "*" wildcard on credentialed requests. A request without Origin gets
//     "*". Vary: Origin is always added since the answer depends on it.
//   - A preflight (OPTIONS with Origin and Access-Control-Request-Method)
//     for GET is answered 200 with Access-Control-Allow-Methods: GET, the
//     requested headers echoed in Access-Control-Allow-Headers, and
//     Access-Control-Max-Age: 600, without reaching next. A preflight for
//     any other method is answered with a JSON 400 error.
//
// Other OPTIONS requests reach next, where the mux answers 405.
func withCORS(next http.Handler, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" {
			h.Set("Access-Control-Allow-Origin", "*")
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")

		reqMethod := r.Header.Get("Access-Control-Request-Method")
		if r.Method != http.MethodOptions || reqMethod == "" {
			next.ServeHTTP(w, r)
			return
		}
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		if reqMethod != http.MethodGet {
			writeError(w, r, logger, http.StatusBadRequest, "disallowed CORS method")
			return
		}
		h.Set("Access-Control-Allow-Methods", http.MethodGet)
		for _, v := range r.Header.Values("Access-Control-Request-Headers") {
			h.Add("Access-Control-Allow-Headers", v)
		}
		h.Set("Access-Control-Max-Age", corsMaxAge)
		w.WriteHeader(http.StatusOK)
	})
}
