package config

import (
	"slices"
	"testing"
)

// TestUnknownVarsSuggestTheSetting: variables that look like settings but
// are none are found in the environment and the .env file, with the
// setting they most likely meant; settings and unrelated variables are
// not.
func TestUnknownVarsSuggestTheSetting(t *testing.T) {
	envFile := writeFile(t, "STEAM_API_KYE=x\nKAFKA_PUBLISH_TOPIC=ids\n")
	got, err := UnknownVars([]string{
		"ENV_FILE=" + envFile,
		"KAFKA_BOOTSTRAP_SERVER=broker:9092", // the original's name, less an S
		"KAFKA_BOOTSTRAP_SERVERS=broker:9092",
		"SPOOL_FSNYC=always",
		"KAFKA_HEAP_OPTS=-Xmx1G", // a Kafka tool's, nothing near
		"PATH=/usr/bin", "HOME=/root", "SOURCE=websocket",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Unknown{
		{"KAFKA_BOOTSTRAP_SERVER", "environment", "KAFKA_BOOTSTRAP_SERVERS"},
		{"KAFKA_HEAP_OPTS", "environment", ""},
		{"SPOOL_FSNYC", "environment", "SPOOL_FSYNC"},
		{"STEAM_API_KYE", envFile, "STEAM_API_KEY"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("unknown %+v\nwant    %+v", got, want)
	}
	if _, err := UnknownVars([]string{"ENV_FILE=/nonexistent/.env"}); err == nil {
		t.Fatal("a missing ENV_FILE: want an error")
	}
}
