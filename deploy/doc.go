// Package deploy holds no code, only tests for the deployment artifacts
// beside it: the docker-compose fleet, the Kubernetes manifests and the
// Grafana dashboard. The tests parse each file and check it against the
// service itself: the variables config.Load reads, the routes the HTTP
// handler serves and the metrics docs/operations.md documents.
//
// The Helm chart in helm/ingestion-service renders the same objects as the
// Kubernetes manifests by default. Its tests run helm, so they are behind a
// build tag: go test -tags helm ./deploy (HELM names a helm binary; without
// it they run helm.sh/helm/v4/cmd/helm at a fixed version with go run).
package deploy
