package httpapi

import (
	_ "embed"
	"log/slog"
	"net/http"

	swaggerfiles "github.com/swaggo/files/v2"
)

// swaggerUIPage is the Swagger UI page served at /docs. It loads its assets
// from /docs/assets/ and renders /openapi.json.
//
//go:embed assets/swaggerui.html
var swaggerUIPage []byte

// registerSwaggerUI adds GET /docs and GET /docs/assets/<file> to mux. Only
// the files of swaggerfiles.FS that swaggerUIPage uses are served; the rest
// (source maps, the upstream index.html pointing at the petstore example)
// is not.
func registerSwaggerUI(mux *http.ServeMux, logger *slog.Logger) {
	mux.Handle("GET /docs", htmlHandler(swaggerUIPage, logger))
	assets := []string{
		"swagger-ui-bundle.js",
		"swagger-ui.css",
		"favicon-32x32.png",
		"favicon-16x16.png",
	}
	for _, name := range assets {
		mux.HandleFunc("GET /docs/assets/"+name, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFileFS(w, r, swaggerfiles.FS, name)
		})
	}
}

// htmlHandler serves page as an HTML document.
func htmlHandler(page []byte, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if _, err := w.Write(page); err != nil {
			logger.DebugContext(r.Context(), "write HTML page", "path", r.URL.Path, "error", err)
		}
	})
}
