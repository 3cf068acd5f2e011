package httpapi_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/dota-data/ingestion-service/internal/health"
	"github.com/dota-data/ingestion-service/internal/httpapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func ExampleNewHandler() {
	// The stream reader and the Kafka producer each own a health.State
	// and Set it as their connections come and go.
	stream := health.NewState("connecting")
	kafka := health.NewState("connecting")
	stream.Set(true, "connected")

	registry := prometheus.NewRegistry()
	published := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ingested_matches_total",
		Help: "Match IDs published to Kafka.",
	})
	registry.MustRegister(published)

	handler := httpapi.NewHandler(httpapi.Options{
		ServiceName: "ingestion-service",
		Version:     "1.0.0",
		Checks: []httpapi.Check{
			{Name: "stream", Status: stream.Status},
			{Name: "kafka", Status: kafka.Status},
		},
		Metrics: promhttp.HandlerFor(registry, promhttp.HandlerOpts{}),
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fmt.Println(err)
		}
	}()
	defer srv.Close()

	base := "http://" + ln.Addr().String()

	// status prints a probe's status code and the "status" of its body.
	status := func(path string) {
		resp, err := http.Get(base + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		var body struct {
			Status string `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(path, resp.StatusCode, body.Status)
	}

	status("/api/v1/health")
	status("/api/v1/ready") // kafka is still connecting
	kafka.Set(true, "producing")
	status("/api/v1/ready")

	published.Add(3)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "ingested_matches_total ") {
			fmt.Println("/metrics", resp.StatusCode, lines.Text())
		}
	}
	// Output:
	// /api/v1/health 200 healthy
	// /api/v1/ready 503 not_ready
	// /api/v1/ready 200 ready
	// /metrics 200 ingested_matches_total 3
}
