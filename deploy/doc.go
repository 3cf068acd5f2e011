// Package deploy holds no code, only tests for the deployment artifacts
// beside it: the docker-compose fleet, the Kubernetes manifests and the
// Grafana dashboard. The tests parse each file and check it against the
// service itself: the variables config.Load reads, the routes the HTTP
// handler serves and the metrics docs/operations.md documents.
package deploy
