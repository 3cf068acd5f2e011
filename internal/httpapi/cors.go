package httpapi

import (
	"log/slog"
	"net/http"
)

// corsMaxAge is how long, in seconds, browsers may cache a preflight
// answer.
const corsMaxAge = "600"

// withCORS adds CORS headers to every response of next and answers CORS
// preflight requests itself. No endpoint uses credentials (cookies or
// HTTP authentication), so none is ever allowed:
//
//   - With origins empty (the default), any origin may read the API:
//     Access-Control-Allow-Origin is "*", without
//     Access-Control-Allow-Credentials. (The original service echoed any
//     Origin, null included, with credentials allowed: any page could then
//     read the API with the visitor's credentials.)
//   - With origins listed, a request whose Origin is one of them gets it
//     echoed, with Vary: Origin; any other gets no CORS header, so browsers
//     keep the answer from the page.
//   - A preflight (OPTIONS with Origin and Access-Control-Request-Method)
//     from an allowed origin for GET is answered 200 with
//     Access-Control-Allow-Methods: GET, the requested headers echoed in
//     Access-Control-Allow-Headers, and Access-Control-Max-Age: 600,
//     without reaching next. A preflight for any other method is answered
//     with a JSON 400 error.
//
// Other OPTIONS requests reach next, where the mux answers 405.
func withCORS(next http.Handler, origins []string, logger *slog.Logger) http.Handler {
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		origin := r.Header.Get("Origin")
		switch {
		case len(allowed) == 0:
			h.Set("Access-Control-Allow-Origin", "*")
		case origin != "" && allowed[origin]:
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Allow-Origin", origin)
		default:
			h.Add("Vary", "Origin")
			next.ServeHTTP(w, r)
			return
		}
		reqMethod := r.Header.Get("Access-Control-Request-Method")
		if origin == "" || r.Method != http.MethodOptions || reqMethod == "" {
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
