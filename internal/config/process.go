package config

import (
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dota-data/ingestion-service/internal/httpapi"
	"github.com/dota-data/ingestion-service/internal/logging"
)

var processVars = []Var{
	{Name: "API_HOST", Default: "0.0.0.0", Help: "HTTP listen address",
		value: func(c Config) string { return c.API.Host }},
	{Name: "API_PORT", Default: "8000", Help: "HTTP listen port",
		value: func(c Config) string { return itoa(c.API.Port) }},
	{Name: "API_PPROF", Default: "false", Help: "serve Go's runtime profiles under /debug/pprof/ on the API port",
		value: func(c Config) string { return strconv.FormatBool(c.API.Profiling) }},
	{Name: "API_PROBE_PORT", Default: "0", Help: "port of a second listener serving only /api/v1/health, /api/v1/ready and /metrics, which clients flooding API_PORT cannot keep probes out of; 0 serves them on API_PORT alone",
		value: func(c Config) string { return itoa(c.API.ProbePort) }},
	{Name: "API_MAX_CONNECTIONS", Default: itoa(httpapi.DefaultMaxConns), Help: "HTTP connections held at once; past it the idle longest, then the slowest to send headers, are closed, so probes still get in",
		value: func(c Config) string { return itoa(c.API.MaxConns) }},
	{Name: "CORS_ALLOW_ORIGINS", Help: "origins (comma-separated, such as https://dash.example) whose pages may read the API; empty allows any (*), never with credentials",
		value: func(c Config) string { return strings.Join(c.API.CORSOrigins, ",") }},
	{Name: "LOG_LEVEL", Default: "INFO", Help: "`DEBUG`, `INFO`, `WARNING` (or `WARN`), `ERROR`, `CRITICAL`, any case",
		value: func(c Config) string { return levelText(c.Log.Level) }},
	{Name: "LOG_FORMAT", Default: "json", Help: "`json` or `text`",
		value: func(c Config) string { return c.Log.Format }},
	{Name: "LOG_SUMMARY_INTERVAL", Default: "30s", Help: "a progress line at info this often; `0` disables",
		value: func(c Config) string { return durationText(c.Log.SummaryInterval) }},
	{Name: "SERVICE_NAME", Default: "ingestion-service", Help: "in every log line and in `/api/v1/health`",
		value: func(c Config) string { return c.ServiceName }},
	{Name: "SHUTDOWN_TIMEOUT", Default: "30s", Help: "on SIGINT/SIGTERM, time allowed to flush to Kafka",
		value: func(c Config) string { return durationText(c.ShutdownTimeout) }},
	{Name: "TIMER_SLACK", Default: "5ms", Help: "Linux: how late the kernel may end the process's sleeps, so that its threads' wake-ups coincide and fewer happen (`prctl(PR_SET_TIMERSLACK)`; the kernel's default is 50µs). The service sets it at start and re-executes itself so that every thread has it; it delays no data, only timers (the Kafka linger by at most this). `0` leaves the inherited value, as does the default when a supervisor set one (systemd's `TimerSlackNSec=`)",
		value: func(c Config) string { return durationText(c.TimerSlack) }},
	{Name: "ENV_FILE", Default: ".env", Help: "file of `KEY=VALUE` lines; a missing default `.env` is ignored, a missing named file is an error",
		value: func(Config) string { return "" }},
}

// api reads the HTTP server's settings.
func (r *reader) api() API {
	a := API{
		Host:        r.str("API_HOST"),
		Port:        r.integer("API_PORT", 0, 65535),
		Profiling:   r.boolean("API_PPROF"),
		MaxConns:    r.integer("API_MAX_CONNECTIONS", 8, 1_000_000),
		ProbePort:   r.integer("API_PROBE_PORT", 0, 65535),
		CORSOrigins: r.origins("CORS_ALLOW_ORIGINS"),
	}
	if a.ProbePort != 0 && a.ProbePort == a.Port {
		r.fail("API_PROBE_PORT", itoa(a.ProbePort), "want a port other than API_PORT, or 0")
	}
	return a
}

// origins reads a list of web origins: scheme and host, no path.
func (r *reader) origins(name string) []string {
	var out []string
	for _, o := range strings.Split(r.get(name), ",") {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || o == "*" {
			r.fail(name, o, "want origins such as https://dash.example (scheme and host, no path), comma-separated; empty allows any")
			continue
		}
		out = append(out, o)
	}
	return out
}

// log reads how the service logs.
func (r *reader) log() Log {
	return Log{
		Level:           r.level(),
		Format:          r.oneOf("LOG_FORMAT", false, "json", "text"),
		SummaryInterval: r.duration("LOG_SUMMARY_INTERVAL", 100*time.Millisecond),
	}
}

// The names LOG_LEVEL takes, the original's (Python's) among them.
var levels = map[string]slog.Level{
	"DEBUG": slog.LevelDebug, "INFO": slog.LevelInfo, "WARNING": slog.LevelWarn, "WARN": slog.LevelWarn,
	"ERROR": slog.LevelError, "CRITICAL": logging.LevelCritical,
}

func (r *reader) level() slog.Level {
	return parsed(r, "LOG_LEVEL", "want DEBUG, INFO, WARNING, WARN, ERROR or CRITICAL", func(s string) (slog.Level, bool) {
		l, ok := levels[strings.ToUpper(s)]
		return l, ok
	})
}

// levelText writes a level as LOG_LEVEL names it.
func levelText(l slog.Level) string {
	switch l {
	case slog.LevelWarn:
		return "WARNING"
	case logging.LevelCritical:
		return "CRITICAL"
	}
	return l.String()
}

// process reads the settings of the process as a whole.
func (r *reader) process(c *Config) {
	c.ServiceName = r.str("SERVICE_NAME")
	c.ShutdownTimeout = r.positiveDuration("SHUTDOWN_TIMEOUT", time.Millisecond)
	c.TimerSlack = r.duration("TIMER_SLACK", time.Microsecond)
	if c.TimerSlack > time.Second {
		r.fail("TIMER_SLACK", durationText(c.TimerSlack), "want at most 1s")
	}
}
