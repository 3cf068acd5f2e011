// Package logging builds the service's structured logger: log/slog, JSON
// or text, with the keys of the original service's documented log lines
// (event, level, timestamp, service) on every line.
package logging

import (
	"io"
	"log/slog"
	"strings"
	"time"
)

// LevelCritical is the CRITICAL level, above error.
const LevelCritical = slog.Level(12)

// New returns a logger writing to w in format "json" or "text" (anything
// else is treated as json), dropping lines below level, with service on
// every line. Message, level and time keys are event, level and timestamp;
// levels are lowercase words (debug, info, warning, error, critical) and
// timestamps are RFC 3339 in UTC.
func New(w io.Writer, format string, level slog.Leveler, service string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: replace}
	var h slog.Handler
	if strings.EqualFold(format, "text") {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With(slog.String("service", service))
}

func replace(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "event"
	case slog.TimeKey:
		a.Key = "timestamp"
		if t, ok := a.Value.Any().(time.Time); ok {
			a.Value = slog.StringValue(t.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		}
	case slog.LevelKey:
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(LevelName(l))
		}
	}
	return a
}

// LevelName returns the lowercase name the original service used for l.
func LevelName(l slog.Level) string {
	switch {
	case l >= LevelCritical:
		return "critical"
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warning"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}
