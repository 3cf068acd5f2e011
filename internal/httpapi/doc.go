// Package httpapi is the HTTP API of the ingestion service: liveness and
// readiness probes, Prometheus metrics, the OpenAPI document and two
// offline renderings of it (Swagger UI and ReDoc).
//
// Routes served by the handler from NewHandler:
//
//	GET /api/v1/health   liveness; always 200 while the process serves HTTP
//	GET /api/v1/ready    readiness; 200 when every Check is up, else 503
//	GET /metrics         Options.Metrics, or 404 when it is nil
//	GET /openapi.json    OpenAPI 3.0 description of the routes above
//	GET /docs            Swagger UI, assets under /docs/assets/
//	GET /redoc           ReDoc, script at /redoc/redoc.standalone.js
//
// Every asset is embedded in the binary, so the documentation pages render
// without internet access. Unknown paths get a JSON 404 and known paths
// asked with another method a JSON 405 with an Allow header. Every response
// carries CORS headers for GET: any origin by default, or the listed ones
// (Options.CORSOrigins), never with credentials.
package httpapi
