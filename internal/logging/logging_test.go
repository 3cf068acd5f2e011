package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestJSONLinesHaveTheOriginalKeys(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "json", slog.LevelDebug, "svc-a")
	log.Info("Successfully processed match", "match_id", 123456)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not JSON: %q", buf.String())
	}
	if line["event"] != "Successfully processed match" || line["level"] != "info" || line["service"] != "svc-a" || line["match_id"] != float64(123456) {
		t.Fatalf("line = %v", line)
	}
	ts, ok := line["timestamp"].(string)
	if !ok {
		t.Fatalf("no timestamp: %v", line)
	}
	if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") {
		t.Fatalf("timestamp %q is not RFC 3339 UTC", ts)
	}
}

func TestLevels(t *testing.T) {
	tests := []struct {
		min     slog.Level
		log     slog.Level
		want    string
		written bool
	}{
		{slog.LevelInfo, slog.LevelDebug, "", false},
		{slog.LevelDebug, slog.LevelDebug, "debug", true},
		{slog.LevelInfo, slog.LevelWarn, "warning", true},
		{slog.LevelWarn, slog.LevelError, "error", true},
		{LevelCritical, slog.LevelError, "", false},
		{LevelCritical, LevelCritical, "critical", true},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		New(&buf, "json", tt.min, "s").Log(context.Background(), tt.log, "x")
		if (buf.Len() > 0) != tt.written {
			t.Fatalf("min %v, log %v: written=%v", tt.min, tt.log, buf.Len() > 0)
		}
		if tt.written && !strings.Contains(buf.String(), `"level":"`+tt.want+`"`) {
			t.Fatalf("line %q lacks level %s", buf.String(), tt.want)
		}
	}
}

func TestTextFormat(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "text", slog.LevelInfo, "svc").Warn("hello", "k", "v")
	s := buf.String()
	for _, want := range []string{"event=hello", "level=warning", "service=svc", "k=v", "timestamp="} {
		if !strings.Contains(s, want) {
			t.Fatalf("text line %q lacks %q", s, want)
		}
	}
}
