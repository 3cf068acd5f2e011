package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/config"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
)

// loadConfig loads a configuration from vars alone (no .env file).
func loadConfig(t *testing.T, vars map[string]string) config.Config {
	t.Helper()
	vars["ENV_FILE"] = filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(vars["ENV_FILE"], nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSinkConfig: in a fleet, every replica's writer has the same
// transactional ID, one per fleet and topic; alone, the sink is the
// idempotent producer.
func TestSinkConfig(t *testing.T) {
	if id := sinkConfig(loadConfig(t, map[string]string{})).TransactionalID; id != "" {
		t.Errorf("alone: transactional ID %q, want none", id)
	}
	cfg := loadConfig(t, map[string]string{"FLEET_GROUP": "eu", "KAFKA_PUBLISH_TOPIC": "ids"})
	if id := sinkConfig(cfg).TransactionalID; id != "ingestion-service.eu.ids" {
		t.Errorf("in a fleet: transactional ID %q", id)
	}
	if cfg.Kafka.TransactionalID != "" {
		t.Errorf("sinkConfig changed the configuration it was given")
	}
}

// TestSteamSourceUsesNoSpool: the Steam scans write Kafka transactions,
// so their relay opens no spool whatever SPOOL_MODE says; a live source's
// does.
func TestSteamSourceUsesNoSpool(t *testing.T) {
	for _, tt := range []struct {
		vars  map[string]string
		spool bool
	}{
		{map[string]string{"SOURCE": "steam-sequence", "STEAM_API_KEY": "k", "SPOOL_MODE": "disk"}, false},
		{map[string]string{"SOURCE": "websocket", "OPENDOTA_STREAM_URL": "ws://127.0.0.1:9/m", "SPOOL_MODE": "disk"}, true},
	} {
		dir := filepath.Join(t.TempDir(), "spool")
		tt.vars["SPOOL_DIR"] = dir
		cfg := loadConfig(t, tt.vars)
		reg := prometheus.NewRegistry()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		sink, err := kafkasink.New(sinkConfig(cfg), log, reg)
		if err != nil {
			t.Fatal(err)
		}
		rl, err := newRelay(cfg, sink, log, reg)
		if err != nil {
			t.Fatal(err)
		}
		_, statErr := os.Stat(dir)
		if opened := statErr == nil; opened != tt.spool {
			t.Errorf("%s: spool opened %t, want %t", cfg.Source, opened, tt.spool)
		}
		if _, err := rl.Close(); err != nil {
			t.Error(err)
		}
		_ = sink.Close(t.Context())
	}
}
