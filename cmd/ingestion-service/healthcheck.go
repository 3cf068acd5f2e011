package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/dota-data/ingestion-service/internal/config"
)

// healthcheck asks the running service for /api/v1/health and returns nil
// only for a 200 answer with status "healthy". It lets a container image
// without curl have a HEALTHCHECK.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stdout)
	url := fs.String("url", "", "health URL; default http://127.0.0.1:$API_PROBE_PORT/api/v1/health, or $API_PORT without a probe port")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *url == "" {
		cfg, err := config.Load(getenv)
		if err != nil {
			return err
		}
		host := cfg.API.Host
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		port := cfg.API.Port
		if cfg.API.ProbePort != 0 {
			port = cfg.API.ProbePort // the listener API clients cannot crowd
		}
		*url = "http://" + net.JoinHostPort(host, fmt.Sprint(port)) + "/api/v1/health"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	var body struct{ Status string }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body); err != nil {
		return fmt.Errorf("healthcheck: %s answered %s with an unreadable body: %w", *url, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.EqualFold(body.Status, "healthy") {
		return fmt.Errorf("healthcheck: %s answered %s, status %q", *url, resp.Status, body.Status)
	}
	_, err = fmt.Fprintln(stdout, "healthy")
	return err
}
