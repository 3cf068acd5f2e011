package httpapi

import (
	"embed"
	"log/slog"
	"net/http"
)

// reDocPage is the ReDoc page served at /redoc. It loads the vendored
// bundle from /redoc/redoc.standalone.js and renders /openapi.json.
//
//go:embed assets/redoc.html
var reDocPage []byte

// reDocFS holds ReDoc's standalone bundle from the npm package "redoc", at
// the version in assets/redoc/VERSION; the repository's scripts/update-redoc.sh reproduces
// it.
//
//go:embed assets/redoc/redoc.standalone.js
var reDocFS embed.FS

// registerReDoc adds GET /redoc and GET /redoc/redoc.standalone.js to mux.
func registerReDoc(mux *http.ServeMux, logger *slog.Logger) {
	mux.Handle("GET /redoc", htmlHandler(reDocPage, logger))
	mux.HandleFunc("GET /redoc/redoc.standalone.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, reDocFS, "assets/redoc/redoc.standalone.js")
	})
}
