package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/dota-data/ingestion-service/internal/health"
)

// defaultVersion is the OpenAPI info.version used when Options.Version is
// empty.
const defaultVersion = "dev"

// Check is one named readiness dependency, such as "stream" or "kafka".
type Check struct {
	// Name keys the check in the readiness body. It must be non-empty and
	// unique within Options.Checks.
	Name string
	// Status reports the dependency's current state. It is called once per
	// readiness request, possibly concurrently, so it must be safe for
	// concurrent use and fast; (*health.State).Status is both. It must not
	// be nil.
	Status func() health.Status
}

// Options configures the handler returned by NewHandler. The zero value is
// usable: no service name, version "dev", always ready, no /metrics, and
// errors discarded.
type Options struct {
	// ServiceName is reported by /api/v1/health and /api/v1/ready. It has
	// no default.
	ServiceName string
	// Version is the OpenAPI document's info.version. Empty means "dev".
	Version string
	// Checks are the readiness dependencies. /api/v1/ready answers 200
	// only when every check is up; an empty list is always ready.
	Checks []Check
	// Metrics serves GET /metrics, typically promhttp.HandlerFor(...).
	// When nil, /metrics is a JSON 404 like any unknown path.
	Metrics http.Handler
	// Profiling serves Go's runtime profiles under /debug/pprof/ (see
	// net/http/pprof) when true. Off by default: a CPU profile costs
	// while it runs, and the profiles reveal the binary's internals.
	Profiling bool
	// Logger receives handler errors, such as failures to write a
	// response. Nil means errors are discarded.
	Logger *slog.Logger
	// CORSOrigins are the origins whose pages may read the API. Empty (the
	// default) allows any origin ("*"); credentials are never allowed.
	CORSOrigins []string
}

// NewHandler returns the service's HTTP handler serving the routes listed
// in the package documentation, wrapped with CORS handling and JSON 404/405
// responses. It is safe for concurrent use.
//
// NewHandler panics if a Check has an empty Name, a nil Status, or a Name
// used by an earlier Check, since these are programming errors in the
// caller's wiring.
func NewHandler(opts Options) http.Handler {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	version := opts.Version
	if version == "" {
		version = defaultVersion
	}
	validateChecks(opts.Checks)
	checks := append([]Check(nil), opts.Checks...)

	mux := http.NewServeMux()
	registerProbes(mux, opts, checks, logger)
	if opts.Profiling {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /openapi.json", openAPIHandler(version, logger))
	registerSwaggerUI(mux, logger)
	registerReDoc(mux, logger)

	return withCORS(withJSONMuxErrors(mux, logger), opts.CORSOrigins, logger)
}

// NewProbeHandler returns a handler serving only /api/v1/health,
// /api/v1/ready and, when opts.Metrics is set, /metrics, as NewHandler
// serves them: the routes of a listener for the kubelet and the scraper
// alone. Other paths get a JSON 404. It panics on the Checks NewHandler
// panics on.
func NewProbeHandler(opts Options) http.Handler {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	validateChecks(opts.Checks)
	mux := http.NewServeMux()
	registerProbes(mux, opts, append([]Check(nil), opts.Checks...), logger)
	return withJSONMuxErrors(mux, logger)
}

func registerProbes(mux *http.ServeMux, opts Options, checks []Check, logger *slog.Logger) {
	mux.Handle("GET /api/v1/health", healthHandler(opts.ServiceName, logger))
	mux.Handle("GET /api/v1/ready", readyHandler(opts.ServiceName, checks, logger))
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
}

// validateChecks panics on checks that cannot be reported unambiguously.
func validateChecks(checks []Check) {
	seen := make(map[string]bool, len(checks))
	for i, c := range checks {
		switch {
		case c.Name == "":
			panic(fmt.Sprintf("httpapi: check %d has an empty name", i))
		case c.Status == nil:
			panic(fmt.Sprintf("httpapi: check %q has a nil Status func", c.Name))
		case seen[c.Name]:
			panic(fmt.Sprintf("httpapi: duplicate check name %q", c.Name))
		}
		seen[c.Name] = true
	}
}
