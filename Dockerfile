# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on a distroless, non-root base image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/ingestion-service ./cmd/ingestion-service \
 && mkdir -p /out/spool

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ingestion-service /usr/local/bin/ingestion-service
# The disk spool: matches waiting for Kafka survive a restart of the
# container only if this directory is a volume that outlives it.
COPY --from=build --chown=nonroot:nonroot /out/spool /var/lib/ingestion-service/spool
USER nonroot:nonroot
WORKDIR /home/nonroot
ENV API_HOST=0.0.0.0 \
    API_PORT=8000 \
    SPOOL_DIR=/var/lib/ingestion-service/spool
VOLUME /var/lib/ingestion-service/spool
# 8000: the API; 8001: probes and metrics, when API_PROBE_PORT=8001 (deploy/kubernetes).
EXPOSE 8000 8001
# The image has no shell and no curl: the binary checks its own health.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/ingestion-service", "healthcheck"]
# SIGTERM drains to Kafka within SHUTDOWN_TIMEOUT; give the container longer
# than that to stop (docker stop -t, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ingestion-service"]
