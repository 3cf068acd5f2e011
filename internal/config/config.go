// Package config reads the service's settings from the environment and an
// optional .env file, validates them once and returns them as one Config,
// with a sub-struct per component.
//
// The variable names and defaults of the original service are kept
// (KAFKA_BOOTSTRAP_SERVERS, KAFKA_PUBLISH_TOPIC, OPENDOTA_STREAM_URL,
// API_HOST, API_PORT, LOG_LEVEL, LOG_FORMAT, SERVICE_NAME); the rest are
// documented on Load and in docs/configuration.md (Reference).
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/dedup"
	"github.com/dota-data/ingestion-service/internal/httpapi"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/logging"
	"github.com/dota-data/ingestion-service/internal/odlogs"
	"github.com/dota-data/ingestion-service/internal/redact"
	"github.com/dota-data/ingestion-service/internal/relay"
	"github.com/dota-data/ingestion-service/internal/spool"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/wsstream"
)

// The sources SOURCE selects.
const (
	// SourceWebSocket reads the WebSocket stream of OPENDOTA_STREAM_URL.
	SourceWebSocket = "websocket"
	// SourceOpenDotaLogs reads OpenDota's live log stream.
	SourceOpenDotaLogs = "opendota-logs"
	// SourceSteamSequence pages through Steam's match sequence.
	SourceSteamSequence = "steam-sequence"
)

// Sources lists the values of SOURCE.
var Sources = []string{SourceWebSocket, SourceOpenDotaLogs, SourceSteamSequence}

// Config is every setting of the service.
type Config struct {
	// ServiceName is reported by the health endpoint and on every log line.
	ServiceName string
	// Log configures logging.
	Log Log
	// API configures the HTTP server.
	API API
	// Source names the adapter that finds matches: SourceWebSocket,
	// SourceOpenDotaLogs or SourceSteamSequence.
	Source string
	// SourceReason says why Source was chosen, for the start-up log.
	SourceReason string
	// Stream configures the WebSocket source.
	Stream wsstream.Config
	// Logs configures the OpenDota log stream source.
	Logs odlogs.Config
	// Steam configures the Steam sequence scanner.
	Steam steamseq.Config
	// Backfill configures the backfill of a range of Steam's sequence.
	Backfill backfill.Config
	// Kafka configures the Kafka sink.
	Kafka kafkasink.Config
	// SteamTopics names the Steam scanner's other topics.
	SteamTopics SteamTopics
	// Relay configures buffering between the stream and Kafka.
	Relay relay.Config
	// Spool configures the disk spool (unused in memory mode).
	Spool spool.Options
	// Dedup bounds the window of recently accepted IDs.
	Dedup dedup.Limit
	// Fleet configures hot-standby replicas; its zero value (no group) is a
	// single replica.
	Fleet Fleet
	// ShutdownTimeout bounds the drain on SIGINT/SIGTERM.
	ShutdownTimeout time.Duration
	// TimerSlack is the process's timer slack on Linux; 0 leaves it.
	TimerSlack time.Duration
	// Ignored names the variables that were set but have no effect with
	// the chosen source, for a warning at start.
	Ignored []string

	set map[string]bool // the variables set, for IsSet
}

// Log configures logging.
type Log struct {
	// Level is the minimum level logged.
	Level slog.Level
	// Format is "json" or "text".
	Format string
	// SummaryInterval is how often a progress line is logged at info; zero
	// disables it.
	SummaryInterval time.Duration
}

// Fleet configures replicas that elect one writer among them.
type Fleet struct {
	// Group is the consumer group the replicas share; empty disables the
	// fleet mode.
	Group string
	// Topic is the coordination topic, a partition per unit of work.
	Topic string
	// SessionTimeout bounds how long a dead leader goes unnoticed.
	SessionTimeout time.Duration
	// StandbyWindow is how far back a standby keeps the matches it read.
	StandbyWindow time.Duration
}

// Enabled reports whether the service runs as one replica of a fleet.
func (f Fleet) Enabled() bool { return f.Group != "" }

// SteamTopics are the topics a steam-sequence scan writes besides
// KAFKA_PUBLISH_TOPIC, in the same transactions.
type SteamTopics struct {
	// Matches receives each match's whole object; empty writes none.
	Matches string
	// Cursor is the compacted topic of the scanner's committed positions.
	Cursor string
}

// API configures the HTTP server.
type API struct {
	// Host is the address to listen on.
	Host string
	// Port is the TCP port to listen on.
	Port int
	// Profiling serves Go's runtime profiles under /debug/pprof/.
	Profiling bool
	// CORSOrigins are the origins whose pages may read the API; empty
	// allows any ("*"). Credentials are never allowed.
	CORSOrigins []string
	// MaxConns caps the HTTP connections held at once (see
	// httpapi.Limits).
	MaxConns int
	// ProbePort, when not 0, is the port of a second listener on Host
	// that serves only health, readiness and metrics, for the kubelet and
	// the scraper: clients flooding Port cannot keep them out.
	ProbePort int
}

// ProbeAddr is the probe listener's host:port; meaningful when ProbePort
// is not 0.
func (a API) ProbeAddr() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.ProbePort)) }

// MemoryLimit is the soft memory limit the service gives the Go runtime
// when GOMEMLIMIT is not set: a base for the runtime, the Kafka client and
// the HTTP server, plus what the configured buffers may hold. It keeps
// peak memory near the live data instead of letting the heap double
// between collections, which is what bounds the service's RSS.
func (c Config) MemoryLimit() int64 {
	const (
		base         = 12 << 20
		perBuffered  = 16  // a match in the memory buffer
		perInFlight  = 512 // a record in the Kafka client, with its bookkeeping
		perDedupSeen = 48  // an ID in the de-duplication window
	)
	dedupIDs := int64(c.Dedup.Count)
	if c.Dedup.Age > 0 {
		dedupIDs = 100_000 // an age window grows with the stream's rate; assume a busy one
	}
	return base + perBuffered*int64(c.Relay.MaxRecords) + perInFlight*int64(c.Kafka.MaxBufferedRecords) + perDedupSeen*dedupIDs
}

// Addr returns host:port for net.Listen.
func (a API) Addr() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// Error reports an invalid setting. Its message names the variable.
type Error struct {
	// Var is the environment variable.
	Var string
	// Value is the value it had.
	Value string
	// Reason says what a valid value looks like.
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid %s=%q: %s", e.Var, e.Value, e.Reason)
}

// Errors is every invalid setting Load found, in the order it read them.
// errors.As finds each *Error in it.
type Errors []*Error

// Error lists them all on one line.
func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return fmt.Sprintf("%d invalid settings: %s", len(parts), strings.Join(parts, "; "))
}

// Unwrap returns each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Var describes one setting, for documentation and for printing.
type Var struct {
	Name, Default, Help string
	// Secret values are masked when printed.
	Secret bool
}

// Vars lists every setting Load reads, with its default.
var Vars = []Var{
	{Name: "KAFKA_BOOTSTRAP_SERVERS", Default: "localhost:9092", Help: "Kafka seed brokers, comma-separated `host:port`"},
	{Name: "KAFKA_PUBLISH_TOPIC", Default: "match_ids_raw", Help: "topic that receives one record per match"},
	{Name: "KAFKA_COMPRESSION", Default: "gzip", Help: "`gzip`, `snappy`, `lz4`, `zstd` or `none`"},
	{Name: "KAFKA_LINGER", Default: "10ms", Help: "how long a batch waits for more records; a record that comes after a pause longer than this is sent at once, since none would join it"},
	{Name: "KAFKA_BATCH_MAX_BYTES", Default: "16384", Help: "largest record batch, uncompressed"},
	{Name: "KAFKA_MAX_BUFFERED_RECORDS", Default: "10000", Help: "records handed to the Kafka client and not yet acknowledged; the rest wait in the relay (`BUFFER_MAX_RECORDS`, then the spool)"},
	{Name: "KAFKA_DELIVERY_TIMEOUT", Default: "0", Help: "give up on a record after this long (at least `1s`); `0` retries until shutdown"},
	{Name: "KAFKA_CLIENT_ID", Default: "SERVICE_NAME", Help: "client ID sent to the brokers"},
	{Name: "KAFKA_CREATE_TOPIC", Default: "false", Help: "create the topic at start if it does not exist"},
	{Name: "KAFKA_TOPIC_PARTITIONS", Default: "-1", Help: "partitions of a created topic; -1 takes the brokers' num.partitions"},
	{Name: "KAFKA_TOPIC_REPLICATION_FACTOR", Default: "-1", Help: "replication factor of a created topic; -1 takes the brokers' default.replication.factor"},
	{Name: "KAFKA_SECURITY_PROTOCOL", Default: "PLAINTEXT", Help: "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"},
	{Name: "KAFKA_SASL_MECHANISM", Default: "SCRAM-SHA-512", Help: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols)"},
	{Name: "KAFKA_SASL_USERNAME", Help: "SASL user name"},
	{Name: "KAFKA_SASL_PASSWORD", Help: "SASL password; never logged", Secret: true},
	{Name: "KAFKA_TLS_CA_FILE", Help: "PEM file of CAs to trust instead of the system's (SSL, SASL_SSL)"},
	{Name: "KAFKA_TLS_CERT_FILE", Help: "PEM client certificate, for mutual TLS"},
	{Name: "KAFKA_TLS_KEY_FILE", Help: "PEM key of the client certificate"},
	{Name: "KAFKA_TLS_SERVER_NAME", Help: "host name to verify in the brokers' certificates, if not the one dialled"},
	{Name: "SOURCE", Default: "opendota-logs", Help: "where matches come from: `opendota-logs` (`OPENDOTA_LOGS_URL`), `websocket` (`OPENDOTA_STREAM_URL`) or `steam-sequence` (the Steam Web API). Unset: `websocket` if `OPENDOTA_STREAM_URL` is set (a deployment of the original keeps its behaviour), else `opendota-logs`; the start-up log says which and why. See [Sources](sources.md)"},
	{Name: "OPENDOTA_STREAM_URL", Default: OriginalStreamURL, Help: "the match stream, `ws://` or `wss://` (`SOURCE=websocket`); set without `SOURCE`, it picks `websocket`. The default is the original's, and names no real stream"},
	{Name: "STREAM_CONNECT_TIMEOUT", Default: "10s", Help: "dial and opening-handshake timeout (`websocket`, and `opendota-logs`)"},
	{Name: "STREAM_PING_INTERVAL", Default: "30s", Help: "how often the stream is pinged"},
	{Name: "STREAM_PONG_TIMEOUT", Default: "15s", Help: "an unanswered ping after this long replaces the connection"},
	{Name: "STREAM_MAX_FRAME_BYTES", Default: "65536", Help: "larger frames are skipped and counted as `too_large`"},
	{Name: "STREAM_BACKOFF_MIN", Default: "500ms", Help: "first reconnect delay (`websocket`, and `opendota-logs`)"},
	{Name: "STREAM_BACKOFF_MAX", Default: "30s", Help: "largest reconnect delay (`websocket`, and `opendota-logs`)"},
	{Name: "STREAM_HEALTHY_AFTER", Default: "60s", Help: "a connection that lasted this long resets the backoff (`websocket`, and `opendota-logs`)"},
	{Name: "STREAM_TLS_CA_FILE", Help: "PEM file of extra CAs to trust for wss:// (the system's roots are always trusted)"},
	{Name: "OPENDOTA_LOGS_URL", Default: odlogs.DefaultURL, Help: "Server-Sent Events stream of OpenDota's log lines (`SOURCE=opendota-logs`)"},
	{Name: "OPENDOTA_LOGS_CHANNELS", Default: "api", Help: "lines that yield match IDs: `api` (new matches from the Steam API), `parsed` (parsed matches), or `api,parsed`"},
	{Name: "OPENDOTA_LOGS_IDLE_TIMEOUT", Default: "5m", Help: "a log stream silent this long is reconnected"},
	{Name: "OPENDOTA_LOGS_STALE_AFTER", Default: "2m", Help: "readiness reports the log stream down while it announces no match this long, though connected: OpenDota's inserter can stall while its other channels go on. At about 12 matches a second, announced a Steam page (about 100) every 8 s or so, 2 minutes is some 1,400 matches missing, never a lull; `0` never"},
	{Name: "STEAM_API_URL", Default: steamseq.DefaultBaseURL, Help: "Steam Web API base URL (`SOURCE=steam-sequence`)"},
	{Name: "STEAM_API_KEY", Help: "Steam Web API key, or several separated by commas (each is paced on its own), required with `SOURCE=steam-sequence`; never logged", Secret: true},
	{Name: "STEAM_MATCHES_TOPIC", Help: "topic that receives each match's whole object as Steam served it, in the same transactions as `KAFKA_PUBLISH_TOPIC` (`SOURCE=steam-sequence`); empty writes none"},
	{Name: "STEAM_CURSOR_TOPIC", Help: "compacted topic of the scanner's committed positions, written in each page's transaction (`SOURCE=steam-sequence`); empty means `KAFKA_PUBLISH_TOPIC` followed by `-steam-cursor`"},
	{Name: "STEAM_START_SEQ_NUM", Default: "0", Help: "`match_seq_num` to start at when the topic holds none; `0` starts at the newest match"},
	{Name: "STEAM_IDLE_WAIT", Default: "5s", Help: "wait after a page under 90% full (the scanner has caught up)"},
	{Name: "STEAM_KEY_INTERVAL", Default: "5s", Help: "time between two calls with one key that each key starts at; it then adapts to Steam's refusals"},
	{Name: "STEAM_MIN_INTERVAL", Default: "1s", Help: "floor of a key's adaptive interval: the least time between two calls with one key"},
	{Name: "STEAM_RESCAN_BEHIND", Default: "50000", Help: "seq numbers a second cursor trails the first by, to find matches Steam lists late; `0` turns the rescan off"},
	{Name: "STEAM_RESCAN_DELAY", Default: "1h", Help: "the rescan also reads a seq this long after the first cursor passed it, if that comes first; `0` leaves only `STEAM_RESCAN_BEHIND`"},
	{Name: "STEAM_SKIP_AFTER", Default: "2m", Help: "a match Steam keeps failing to serve (status 2) is stepped past after this long and 3 tries, counted, and read again by the rescan"},
	{Name: "STEAM_HEAD_INTERVAL", Default: "60s", Help: "how often the newest `match_seq_num` is fetched to report the lag; `0` disables"},
	{Name: "STEAM_KEY_DAILY_CALLS", Default: "100000", Help: "calls a key may make in a UTC day (the cap of Steam's Web API terms); a key that reaches it rests until 00:00 UTC. Counted by this process; `0` no cap"},
	{Name: "STEAM_BACKFILL_FROM", Help: "first `match_seq_num` of a range of the past to read (`SOURCE=steam-sequence`), or a date such as `2024-01-01` (UTC), turned into a seq by a search over the sequence's start times; with `STEAM_BACKFILL_TO`. See [Backfill](backfill.md)"},
	{Name: "STEAM_BACKFILL_TO", Help: "end of the backfill's range, excluded: a `match_seq_num` or a date (the range ends before its first match)"},
	{Name: "STEAM_BACKFILL_SHARDS", Default: "16", Help: "equal shards the backfill's range is split into; the replicas of a fleet share them (`FLEET_GROUP`), a replica alone scans them all. Each is written exactly once, through a transactional writer of its own"},
	{Name: "STEAM_FORWARD_SCAN", Default: "true", Help: "run the forward scan (from `STEAM_START_SEQ_NUM` or the last cursor, for ever) beside the backfill; it has the keys first. `false` runs the backfill alone, as a fleet of its own with its own keys"},
	{Name: "BUFFER_MAX_RECORDS", Default: "100000", Help: "matches held in memory before spilling to disk (overflow) or blocking/dropping (memory)"},
	{Name: "SPOOL_MODE", Default: "overflow", Help: "overflow (memory, then disk), disk (write every match ahead) or memory (no disk); ignored with `SOURCE=steam-sequence`, which writes Kafka transactions and needs no spool"},
	{Name: "SPOOL_DIR", Default: "spool", Help: "directory of the disk spool, relative to the working directory unless absolute"},
	{Name: "SPOOL_MAX_BYTES", Default: "1GiB", Help: "cap on the spool's files; bytes, or with KiB, MiB, GiB"},
	{Name: "SPOOL_FSYNC", Default: "1s", Help: "always (fsync every match), an interval such as 100ms, or never (leave it to the OS)"},
	{Name: "SPOOL_WHEN_FULL", Default: "block", Help: "block (stop reading the stream) or drop_newest (count and log each dropped match)"},
	{Name: "DEDUP_WINDOW", Default: "50000", Help: "skip an ID seen among the last N matches (a count) or within a duration such as 10m; 0 disables. Not used by `steam-sequence`, which reads each seq once per committed page"},
	{Name: "FLEET_GROUP", Help: "run as one replica of a fleet: replicas with the same group elect one writer through Kafka; empty runs alone; see [Fleet mode](fleet.md)"},
	{Name: "FLEET_TOPIC", Default: "ingestion-service-leader", Help: "coordination topic of the fleet, a partition per unit of work: the lead, then each backfill shard (created, or given more partitions, as needed)"},
	{Name: "FLEET_SESSION_TIMEOUT", Default: "10s", Help: "a leader silent this long is replaced (the longest failover); 6s to 30s on default brokers"},
	{Name: "FLEET_COMMIT_INTERVAL", Default: "100ms", Help: "how often the leader commits its Kafka transaction"},
	{Name: "STANDBY_WINDOW", Default: "30s", Help: "how far back a standby keeps the matches it read, to publish those the old leader had not when it takes over"},
	{Name: "API_HOST", Default: "0.0.0.0", Help: "HTTP listen address"},
	{Name: "API_PORT", Default: "8000", Help: "HTTP listen port"},
	{Name: "API_PPROF", Default: "false", Help: "serve Go's runtime profiles under /debug/pprof/ on the API port"},
	{Name: "API_PROBE_PORT", Default: "0", Help: "port of a second listener serving only /api/v1/health, /api/v1/ready and /metrics, which clients flooding API_PORT cannot keep probes out of; 0 serves them on API_PORT alone"},
	{Name: "API_MAX_CONNECTIONS", Default: "512", Help: "HTTP connections held at once; past it the idle longest, then the slowest to send headers, are closed, so probes still get in"},
	{Name: "CORS_ALLOW_ORIGINS", Help: "origins (comma-separated, such as https://dash.example) whose pages may read the API; empty allows any (*), never with credentials"},
	{Name: "LOG_LEVEL", Default: "INFO", Help: "`DEBUG`, `INFO`, `WARNING` (or `WARN`), `ERROR`, `CRITICAL`, any case"},
	{Name: "LOG_FORMAT", Default: "json", Help: "`json` or `text`"},
	{Name: "LOG_SUMMARY_INTERVAL", Default: "30s", Help: "a progress line at info this often; `0` disables"},
	{Name: "SERVICE_NAME", Default: "ingestion-service", Help: "in every log line and in `/api/v1/health`"},
	{Name: "SHUTDOWN_TIMEOUT", Default: "30s", Help: "on SIGINT/SIGTERM, time allowed to flush to Kafka"},
	{Name: "TIMER_SLACK", Default: "5ms", Help: "Linux: how late the kernel may end the process's sleeps, so that its threads' wake-ups coincide and fewer happen (`prctl(PR_SET_TIMERSLACK)`; the kernel's default is 50µs). The service sets it at start and re-executes itself so that every thread has it; it delays no data, only timers (the Kafka linger by at most this). `0` leaves the inherited value, as does the default when a supervisor set one (systemd's `TimerSlackNSec=`)"},
	{Name: "ENV_FILE", Default: ".env", Help: "file of `KEY=VALUE` lines; a missing default `.env` is ignored, a missing named file is an error"},
}

// Load reads the settings. getenv looks up the process environment; a
// variable it returns empty is unset. Values missing from the environment
// are taken from the file named by ENV_FILE (default ".env", ignored when
// absent), then from the defaults. It returns a *Error for the first
// invalid value, or an error if the .env file exists but cannot be read.
func Load(getenv func(string) string) (Config, error) {
	return LoadLookup(func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	})
}

// LoadLookup is Load with an environment that tells a variable set to
// the empty string (os.LookupEnv) from one not set: for the few settings
// where that matters (an empty KAFKA_BOOTSTRAP_SERVERS is an error, not
// localhost:9092).
func LoadLookup(lookup func(string) (string, bool)) (Config, error) {
	getenv := func(k string) string { v, _ := lookup(k); return v }
	envFile := getenv("ENV_FILE")
	explicit := envFile != ""
	if !explicit {
		envFile = ".env"
	}
	file, err := godotenv.Read(envFile)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			file = nil
		} else {
			return Config{}, envFileError(envFile, err)
		}
	}
	set := map[string]bool{}
	r := &reader{has: func(k string) bool {
		if _, ok := lookup(k); ok {
			return true
		}
		_, ok := file[k]
		return ok
	}, get: func(k string) string {
		v := getenv(k)
		if v == "" {
			v = file[k]
		}
		if strings.TrimSpace(v) != "" {
			set[k] = true
		}
		return v
	}}
	c := r.load()
	if len(r.errs) > 0 {
		return Config{}, r.errs
	}
	c.set = set
	return c, nil
}

// IsSet reports whether the variable name was set to something other
// than blanks, in the environment or the .env file, when c was loaded.
func (c Config) IsSet(name string) bool { return c.set[name] }

// reader parses values and keeps every variable's first error.
type reader struct {
	get  func(string) string
	has  func(string) bool // set, if only to the empty string
	errs Errors
}

// required fails name when it is set to nothing but blanks: unset, it has
// a default; set empty, it is a mistake that the default would hide.
func (r *reader) required(name string) {
	if r.has(name) && strings.TrimSpace(r.get(name)) == "" {
		r.fail(name, r.get(name), "set but empty: unset it for the default, or give a value")
	}
}

func (r *reader) fail(name, value, reason string) {
	for _, e := range r.errs {
		if e.Var == name {
			return
		}
	}
	r.errs = append(r.errs, &Error{Var: name, Value: value, Reason: reason})
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.get(name)); v != "" {
		return v
	}
	return def
}

func (r *reader) duration(name string, def time.Duration, min time.Duration) time.Duration {
	raw := r.str(name, "")
	if raw == "" {
		return def
	}
	d, err := time.ParseDuration(raw)
	if raw == "0" {
		d, err = 0, nil
	}
	if err != nil || d < 0 {
		r.fail(name, raw, "want a duration such as 500ms, 10s or 2m")
		return def
	}
	if d != 0 && d < min {
		r.fail(name, raw, fmt.Sprintf("want 0 or at least %s", min))
	}
	return d
}

func (r *reader) integer(name string, def, min, max int) int {
	raw := r.str(name, "")
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < min || n > max {
		r.fail(name, raw, fmt.Sprintf("want an integer from %d to %d", min, max))
		return def
	}
	return n
}

func (r *reader) load() Config {
	var c Config
	c.ServiceName = r.str("SERVICE_NAME", "ingestion-service")

	c.Log.Level = r.level()
	c.Log.Format = strings.ToLower(r.str("LOG_FORMAT", "json"))
	if c.Log.Format != "json" && c.Log.Format != "text" {
		r.fail("LOG_FORMAT", c.Log.Format, "want json or text")
	}
	c.Log.SummaryInterval = r.duration("LOG_SUMMARY_INTERVAL", 30*time.Second, 100*time.Millisecond)

	c.API.Host = r.str("API_HOST", "0.0.0.0")
	c.API.Port = r.integer("API_PORT", 8000, 0, 65535)
	c.API.Profiling = r.boolean("API_PPROF")
	c.API.MaxConns = r.integer("API_MAX_CONNECTIONS", httpapi.DefaultMaxConns, 8, 1_000_000)
	c.API.ProbePort = r.integer("API_PROBE_PORT", 0, 0, 65535)
	if c.API.ProbePort != 0 && c.API.ProbePort == c.API.Port {
		r.fail("API_PROBE_PORT", strconv.Itoa(c.API.ProbePort), "want a port other than API_PORT, or 0")
	}
	for _, o := range strings.Split(r.get("CORS_ALLOW_ORIGINS"), ",") {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || o == "*" {
			r.fail("CORS_ALLOW_ORIGINS", o, "want origins such as https://dash.example (scheme and host, no path), comma-separated; empty allows any")
			continue
		}
		c.API.CORSOrigins = append(c.API.CORSOrigins, o)
	}

	c.Stream = wsstream.Config{
		URL:            r.str("OPENDOTA_STREAM_URL", OriginalStreamURL),
		ConnectTimeout: r.duration("STREAM_CONNECT_TIMEOUT", wsstream.DefaultConnectTimeout, time.Millisecond),
		PingInterval:   r.duration("STREAM_PING_INTERVAL", wsstream.DefaultPingInterval, time.Millisecond),
		PongTimeout:    r.duration("STREAM_PONG_TIMEOUT", wsstream.DefaultPongTimeout, time.Millisecond),
		MaxFrameBytes:  r.integer("STREAM_MAX_FRAME_BYTES", wsstream.DefaultMaxFrameBytes, 64, 64<<20),
		BackoffMin:     r.duration("STREAM_BACKOFF_MIN", wsstream.DefaultBackoffMin, time.Millisecond),
		BackoffMax:     r.duration("STREAM_BACKOFF_MAX", wsstream.DefaultBackoffMax, time.Millisecond),
		HealthyAfter:   r.duration("STREAM_HEALTHY_AFTER", wsstream.DefaultHealthyAfter, time.Millisecond),
		TLSCAFile:      r.file("STREAM_TLS_CA_FILE"),
	}
	c.Stream.UnreachableHint = "check OPENDOTA_STREAM_URL; SOURCE=opendota-logs reads OpenDota's live log feed"
	if c.Stream.URL == OriginalStreamURL {
		c.Stream.UnreachableHint = OriginalStreamURL + " is the original service's default and no such stream exists: " +
			"unset OPENDOTA_STREAM_URL and SOURCE, or set SOURCE=opendota-logs, to read OpenDota's live log feed"
	}
	if err := wsstream.CheckURL(c.Stream.URL); err != nil {
		r.fail("OPENDOTA_STREAM_URL", redact.URL(c.Stream.URL), "want a ws:// or wss:// URL with a host")
	}

	c.Source, c.SourceReason = r.source()
	if !slices.Contains(Sources, c.Source) {
		r.fail("SOURCE", c.Source, "want "+strings.Join(Sources, ", "))
	}
	c.Logs = odlogs.Config{
		URL:            r.str("OPENDOTA_LOGS_URL", odlogs.DefaultURL),
		Channels:       r.list("OPENDOTA_LOGS_CHANNELS", odlogs.ChannelAPI),
		ConnectTimeout: c.Stream.ConnectTimeout,
		IdleTimeout:    r.duration("OPENDOTA_LOGS_IDLE_TIMEOUT", odlogs.DefaultIdleTimeout, time.Second),
		StaleAfter:     r.duration("OPENDOTA_LOGS_STALE_AFTER", odlogs.DefaultStaleAfter, time.Second),
		BackoffMin:     c.Stream.BackoffMin,
		BackoffMax:     c.Stream.BackoffMax,
		HealthyAfter:   c.Stream.HealthyAfter,
	}
	if c.Logs.StaleAfter == 0 {
		c.Logs.StaleAfter = -1 // 0: never stale
	}
	if err := c.Logs.Validate(); err != nil && c.Source == SourceOpenDotaLogs {
		r.fail("OPENDOTA_LOGS_URL", redact.URL(c.Logs.URL), redact.ForURL(c.Logs.URL).String(err.Error()))
	}
	c.Steam = steamseq.Config{
		BaseURL:      r.str("STEAM_API_URL", steamseq.DefaultBaseURL),
		StartSeqNum:  int64(r.integer("STEAM_START_SEQ_NUM", 0, 0, math.MaxInt)),
		IdleWait:     r.duration("STEAM_IDLE_WAIT", steamseq.DefaultIdleWait, time.Millisecond),
		KeyInterval:  r.duration("STEAM_KEY_INTERVAL", steamseq.DefaultKeyInterval, time.Millisecond),
		MinInterval:  r.duration("STEAM_MIN_INTERVAL", steamseq.DefaultMinInterval, time.Millisecond),
		RescanBehind: int64(r.integer("STEAM_RESCAN_BEHIND", steamseq.DefaultRescanBehind, 0, math.MaxInt)),
		RescanDelay:  r.duration("STEAM_RESCAN_DELAY", steamseq.DefaultRescanDelay, time.Second),
		SkipAfter:    r.duration("STEAM_SKIP_AFTER", steamseq.DefaultSkipAfter, time.Millisecond),
		HeadInterval: r.duration("STEAM_HEAD_INTERVAL", steamseq.DefaultHeadInterval, time.Second),
	}
	c.Steam.Keys = r.keys("STEAM_API_KEY")
	c.Steam.DailyCalls = r.integer("STEAM_KEY_DAILY_CALLS", steamseq.DefaultDailyCalls, 0, math.MaxInt32)
	if c.Steam.DailyCalls == 0 {
		c.Steam.DailyCalls = -1 // 0: no cap
	}
	c.Backfill = r.backfill(c.Source)
	if c.Steam.MinInterval == 0 {
		c.Steam.MinInterval = -1 // 0 asks for no minimum
	}
	if c.Steam.KeyInterval == 0 {
		c.Steam.KeyInterval = -1 // 0 starts at the floor
	}
	if c.Steam.RescanBehind == 0 {
		c.Steam.RescanBehind = -1 // 0 turns the rescan off
	}
	if c.Steam.RescanDelay == 0 {
		c.Steam.RescanDelay = -1 // 0 leaves only the distance
	}
	if c.Steam.SkipAfter == 0 {
		c.Steam.SkipAfter = -1 // 0 steps past after the tries alone
	}
	if c.Steam.HeadInterval == 0 {
		c.Steam.HeadInterval = -1 // 0 disables
	}
	if c.Source == SourceSteamSequence {
		if len(c.Steam.Keys) == 0 {
			r.fail("STEAM_API_KEY", "", "required with SOURCE=steam-sequence")
		}
		if u, err := url.Parse(c.Steam.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.fail("STEAM_API_URL", redact.URL(c.Steam.BaseURL), "want an http:// or https:// URL with a host")
		} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			r.fail("STEAM_API_URL", redact.URL(c.Steam.BaseURL), "want the API's base URL alone, without user info, query or fragment (the keys go in STEAM_API_KEY)")
		}
	}

	r.required("KAFKA_BOOTSTRAP_SERVERS")
	r.required("KAFKA_PUBLISH_TOPIC")
	brokersRaw := r.str("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
	var brokers []string
	for _, b := range strings.Split(brokersRaw, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if strings.ContainsAny(b, "@/") {
			r.fail("KAFKA_BOOTSTRAP_SERVERS", redactBrokers(brokersRaw), "want host:port pairs, without a scheme or user info (credentials go in KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD)")
		} else if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			r.fail("KAFKA_BOOTSTRAP_SERVERS", brokersRaw, "want comma-separated host:port pairs")
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			r.fail("KAFKA_BOOTSTRAP_SERVERS", brokersRaw, "want comma-separated host:port pairs, the port 1 to 65535")
		}
		brokers = append(brokers, b)
	}
	if len(brokers) == 0 {
		r.fail("KAFKA_BOOTSTRAP_SERVERS", brokersRaw, "want at least one host:port")
	}
	compression := strings.ToLower(r.str("KAFKA_COMPRESSION", kafkasink.DefaultCompression))
	if _, err := kafkasink.Codec(compression); err != nil {
		r.fail("KAFKA_COMPRESSION", compression, "want gzip, snappy, lz4, zstd or none")
	}
	ids := r.str("KAFKA_PUBLISH_TOPIC", "match_ids_raw")
	c.SteamTopics = SteamTopics{Matches: r.get("STEAM_MATCHES_TOPIC"), Cursor: r.get("STEAM_CURSOR_TOPIC")}
	if c.SteamTopics.Cursor == "" {
		c.SteamTopics.Cursor = ids + "-steam-cursor"
	}
	for _, t := range []struct{ name, value string }{
		{"KAFKA_PUBLISH_TOPIC", ids}, {"STEAM_MATCHES_TOPIC", c.SteamTopics.Matches}, {"STEAM_CURSOR_TOPIC", c.SteamTopics.Cursor},
	} {
		if t.value != "" && !validTopic(t.value) {
			r.fail(t.name, t.value, "want a Kafka topic name: up to 249 of a-z, A-Z, 0-9, '.', '_' and '-', not . or ..")
		}
	}
	if m := c.SteamTopics.Matches; m == ids || m == c.SteamTopics.Cursor && m != "" {
		r.fail("STEAM_MATCHES_TOPIC", m, "want a topic of its own, not KAFKA_PUBLISH_TOPIC or STEAM_CURSOR_TOPIC")
	}
	if c.SteamTopics.Cursor == ids {
		r.fail("STEAM_CURSOR_TOPIC", c.SteamTopics.Cursor, "want a topic of its own, not KAFKA_PUBLISH_TOPIC")
	}
	c.Kafka = kafkasink.Config{
		Brokers:                brokers,
		Topic:                  ids,
		ClientID:               r.str("KAFKA_CLIENT_ID", c.ServiceName),
		Compression:            compression,
		Linger:                 r.duration("KAFKA_LINGER", kafkasink.DefaultLinger, time.Microsecond),
		BatchMaxBytes:          int32(r.integer("KAFKA_BATCH_MAX_BYTES", kafkasink.DefaultBatchMaxBytes, 512, 1<<30)),
		MaxBufferedRecords:     r.integer("KAFKA_MAX_BUFFERED_RECORDS", kafkasink.DefaultMaxBufferedRecords, 1, 10_000_000),
		DeliveryTimeout:        r.duration("KAFKA_DELIVERY_TIMEOUT", 0, time.Second),
		CreateTopic:            r.boolean("KAFKA_CREATE_TOPIC"),
		TopicPartitions:        int32(r.integer("KAFKA_TOPIC_PARTITIONS", -1, -1, 1_000_000)),
		TopicReplicationFactor: int16(r.integer("KAFKA_TOPIC_REPLICATION_FACTOR", -1, -1, 32767)),
		Security:               r.security(),
	}
	if c.Kafka.TopicPartitions == 0 {
		r.fail("KAFKA_TOPIC_PARTITIONS", "0", "want -1 (the brokers' default) or a positive count")
	}
	if c.Kafka.TopicReplicationFactor == 0 {
		r.fail("KAFKA_TOPIC_REPLICATION_FACTOR", "0", "want -1 (the brokers' default) or a positive factor")
	}
	c.Relay = relay.Config{
		Mode:        relay.Mode(strings.ToLower(r.str("SPOOL_MODE", string(relay.Overflow)))),
		WhenFull:    relay.WhenFull(strings.ToLower(r.str("SPOOL_WHEN_FULL", string(relay.Block)))),
		MaxRecords:  r.integer("BUFFER_MAX_RECORDS", 100_000, 1, 100_000_000),
		MaxInFlight: c.Kafka.MaxBufferedRecords,
	}
	switch c.Relay.Mode {
	case relay.Overflow, relay.Disk, relay.Memory:
	default:
		r.fail("SPOOL_MODE", string(c.Relay.Mode), "want overflow, disk or memory")
	}
	switch c.Relay.WhenFull {
	case relay.Block, relay.DropNewest:
	default:
		r.fail("SPOOL_WHEN_FULL", string(c.Relay.WhenFull), "want block or drop_newest")
	}
	c.Spool = spool.Options{
		Dir:      r.str("SPOOL_DIR", "spool"),
		MaxBytes: r.bytes("SPOOL_MAX_BYTES", 1<<30),
		Sync:     r.syncPolicy("SPOOL_FSYNC"),
	}
	if c.Source == SourceSteamSequence {
		// The scanner writes its pages and its cursor in Kafka
		// transactions and replays from the last committed cursor: it
		// holds no more than a page, and nothing needs the disk.
		for _, name := range spoolVars {
			if r.str(name, "") != "" {
				c.Ignored = append(c.Ignored, name)
			}
		}
		c.Relay.Mode = relay.Memory
	}
	if c.Relay.Mode == relay.Overflow {
		// Spilled matches are as mortal as those in memory on kill -9 in
		// this mode, so the spool may gather them into 64 KiB writes;
		// disk mode writes each match before producing it.
		c.Spool.WriteBuffer = 64 << 10
	}
	if raw := r.str("DEDUP_WINDOW", "50000"); raw != "" {
		l, err := dedup.ParseLimit(raw)
		if err != nil {
			r.fail("DEDUP_WINDOW", raw, err.Error())
		}
		c.Dedup = l
	}
	c.Fleet = Fleet{
		Group:          r.str("FLEET_GROUP", ""),
		Topic:          r.str("FLEET_TOPIC", "ingestion-service-leader"),
		SessionTimeout: r.duration("FLEET_SESSION_TIMEOUT", 10*time.Second, time.Second),
		StandbyWindow:  r.duration("STANDBY_WINDOW", 30*time.Second, time.Second),
	}
	commit := r.duration("FLEET_COMMIT_INTERVAL", 100*time.Millisecond, time.Millisecond)
	if c.Fleet.Enabled() {
		if c.Fleet.StandbyWindow == 0 {
			r.fail("STANDBY_WINDOW", "0", "want a positive duration, longer than FLEET_SESSION_TIMEOUT")
		} else if c.Fleet.StandbyWindow <= c.Fleet.SessionTimeout {
			r.fail("STANDBY_WINDOW", c.Fleet.StandbyWindow.String(), "want longer than FLEET_SESSION_TIMEOUT ("+c.Fleet.SessionTimeout.String()+"): a standby must still hold what the old leader read before it died")
		}
		if commit == 0 {
			r.fail("FLEET_COMMIT_INTERVAL", "0", "want a positive duration")
		}
		// One transactional ID per fleet and topic: every replica's writer
		// fences the others'.
		c.Kafka.TransactionalID = kafkasink.TransactionalID(c.Fleet.Group, c.Kafka.Topic)
		c.Kafka.CommitInterval = commit
	}
	c.ShutdownTimeout = r.duration("SHUTDOWN_TIMEOUT", 30*time.Second, time.Millisecond)
	if c.ShutdownTimeout == 0 {
		r.fail("SHUTDOWN_TIMEOUT", "0", "want a positive duration")
	}
	c.TimerSlack = r.duration("TIMER_SLACK", 5*time.Millisecond, time.Microsecond)
	if c.TimerSlack > time.Second {
		r.fail("TIMER_SLACK", c.TimerSlack.String(), "want at most 1s")
	}
	return c
}

// backfill reads the backfill's range, its shards and whether the forward
// scan runs beside it.
func (r *reader) backfill(source string) backfill.Config {
	c := backfill.Config{Shards: r.integer("STEAM_BACKFILL_SHARDS", backfill.DefaultShards, 1, backfill.MaxShards)}
	forward := r.str("STEAM_FORWARD_SCAN", "true")
	if v, err := strconv.ParseBool(forward); err != nil {
		r.fail("STEAM_FORWARD_SCAN", forward, "want true or false")
	} else {
		c.Forward = v
	}
	bound := func(name string) backfill.Bound {
		raw := r.str(name, "")
		if raw == "" {
			return backfill.Bound{}
		}
		b, err := backfill.ParseBound(raw)
		if err != nil {
			r.fail(name, raw, err.Error())
		}
		return b
	}
	c.From, c.To = bound("STEAM_BACKFILL_FROM"), bound("STEAM_BACKFILL_TO")
	switch {
	case !c.Enabled():
		if !c.Forward {
			r.fail("STEAM_FORWARD_SCAN", forward, "false leaves nothing to do without a backfill (STEAM_BACKFILL_FROM and STEAM_BACKFILL_TO)")
		}
		return c
	case source != SourceSteamSequence:
		r.fail("STEAM_BACKFILL_FROM", c.From.String(), "a backfill reads Steam's sequence: set SOURCE=steam-sequence (and STEAM_FORWARD_SCAN=false to run it alone)")
	case c.From.IsZero():
		r.fail("STEAM_BACKFILL_FROM", "", "required with STEAM_BACKFILL_TO")
	case c.To.IsZero():
		r.fail("STEAM_BACKFILL_TO", "", "required with STEAM_BACKFILL_FROM")
	case c.From.Seq > 0 && c.To.Seq > 0 && c.To.Seq <= c.From.Seq:
		r.fail("STEAM_BACKFILL_TO", c.To.String(), "want a seq above STEAM_BACKFILL_FROM ("+c.From.String()+"): the range ends before it")
	case !c.From.Date.IsZero() && !c.To.Date.IsZero() && !c.To.Date.After(c.From.Date):
		r.fail("STEAM_BACKFILL_TO", c.To.String(), "want a date after STEAM_BACKFILL_FROM ("+c.From.String()+")")
	}
	return c
}

// The original service's stream, OPENDOTA_STREAM_URL's default: no such
// stream exists (nothing public serves it).
const OriginalStreamURL = "wss://stream.opendota.com/matches"

// source picks SOURCE, and says why: as set, else the WebSocket stream if
// OPENDOTA_STREAM_URL is set (a deployment of the original keeps its
// behaviour), else OpenDota's live log feed, which exists (the original's
// default stream does not).
func (r *reader) source() (source, reason string) {
	if v := r.str("SOURCE", ""); v != "" {
		return strings.ToLower(v), "SOURCE is set"
	}
	if r.str("OPENDOTA_STREAM_URL", "") != "" {
		return SourceWebSocket, "SOURCE is not set and OPENDOTA_STREAM_URL is: the original service's WebSocket stream"
	}
	return SourceOpenDotaLogs, "SOURCE and OPENDOTA_STREAM_URL are not set: OpenDota's live log feed (the original's default stream does not exist)"
}

// spoolVars configure the relay and its spool, which SOURCE=steam-sequence
// does not use. SPOOL_DIR is not among them: it only says where, and the
// container image sets it.
var spoolVars = []string{"SPOOL_MODE", "SPOOL_MAX_BYTES", "SPOOL_FSYNC", "SPOOL_WHEN_FULL"}

// keys reads a comma-separated list of secrets, trimmed, without empty
// items. An error names a key by its position, never by its value.
func (r *reader) keys(name string) []string {
	var out []string
	seen := map[string]int{}
	for _, v := range strings.Split(r.get(name), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if at, ok := seen[v]; ok {
			r.fail(name, "", fmt.Sprintf("key %d repeats key %d", len(out)+1, at))
		}
		out = append(out, v)
		seen[v] = len(out)
	}
	return out
}

// maskKeys describes keys without showing any: how many there are.
func maskKeys(keys []string) string {
	switch len(keys) {
	case 0:
		return ""
	case 1:
		return "REDACTED"
	}
	return fmt.Sprintf("REDACTED (%d keys)", len(keys))
}

// list reads a comma-separated list, trimmed and lower-cased, without
// empty items.
func (r *reader) list(name, def string) []string {
	var out []string
	for _, v := range strings.Split(r.str(name, def), ",") {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// bytes reads a size: a plain number of bytes, or one with a KiB, MiB or
// GiB suffix (KB, MB, GB are read as the same powers of two).
func (r *reader) bytes(name string, def int64) int64 {
	raw := r.str(name, "")
	if raw == "" {
		return def
	}
	num, mult := strings.TrimSpace(raw), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(strings.ToUpper(num), u.suffix) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		r.fail(name, raw, "want a size such as 536870912, 512MiB or 1GiB")
		return def
	}
	return n * mult
}

func (r *reader) syncPolicy(name string) spool.SyncPolicy {
	raw := strings.ToLower(r.str(name, "1s"))
	switch raw {
	case "always":
		return spool.SyncPolicy{Always: true}
	case "never", "0":
		return spool.SyncPolicy{}
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 {
		r.fail(name, raw, "want always, never or an interval such as 100ms or 1s")
		return spool.SyncPolicy{Interval: time.Second}
	}
	return spool.SyncPolicy{Interval: d}
}

func (r *reader) boolean(name string) bool {
	raw := r.str(name, "false")
	b, err := strconv.ParseBool(raw)
	if err != nil {
		r.fail(name, raw, "want true or false")
	}
	return b
}

// file returns the named path, failing if it is set but cannot be read.
func (r *reader) file(name string) string {
	path := r.str(name, "")
	if path == "" {
		return ""
	}
	if _, err := os.Stat(path); err != nil {
		r.fail(name, path, "cannot read the file: "+err.Error())
	}
	return path
}

func (r *reader) security() kafkasink.Security {
	sec := kafkasink.Security{
		Protocol:   strings.ToUpper(r.str("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")),
		Mechanism:  strings.ToUpper(r.str("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")),
		Username:   r.get("KAFKA_SASL_USERNAME"),
		Password:   r.get("KAFKA_SASL_PASSWORD"),
		CAFile:     r.file("KAFKA_TLS_CA_FILE"),
		CertFile:   r.file("KAFKA_TLS_CERT_FILE"),
		KeyFile:    r.file("KAFKA_TLS_KEY_FILE"),
		ServerName: r.str("KAFKA_TLS_SERVER_NAME", ""),
	}
	if !slices.Contains(kafkasink.Protocols, sec.Protocol) {
		r.fail("KAFKA_SECURITY_PROTOCOL", sec.Protocol, "want "+strings.Join(kafkasink.Protocols, ", "))
		return sec
	}
	if sec.UsesSASL() {
		if !slices.Contains(kafkasink.Mechanisms, sec.Mechanism) {
			r.fail("KAFKA_SASL_MECHANISM", sec.Mechanism, "want "+strings.Join(kafkasink.Mechanisms, ", "))
		}
		if sec.Username == "" {
			r.fail("KAFKA_SASL_USERNAME", "", "required with KAFKA_SECURITY_PROTOCOL="+sec.Protocol)
		}
		if sec.Password == "" {
			r.fail("KAFKA_SASL_PASSWORD", "", "required with KAFKA_SECURITY_PROTOCOL="+sec.Protocol)
		}
	}
	if !sec.UsesTLS() {
		for _, name := range []string{"KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE"} {
			if r.get(name) != "" {
				r.fail("KAFKA_SECURITY_PROTOCOL", sec.Protocol, name+" is set, so want SSL or SASL_SSL")
			}
		}
		return sec
	}
	if sec.CAFile != "" {
		if _, err := kafkasink.LoadCAs(sec.CAFile); err != nil {
			r.fail("KAFKA_TLS_CA_FILE", sec.CAFile, err.Error())
		}
	}
	switch {
	case sec.CertFile != "" && sec.KeyFile == "":
		r.fail("KAFKA_TLS_KEY_FILE", "", "required with KAFKA_TLS_CERT_FILE")
	case sec.CertFile == "" && sec.KeyFile != "":
		r.fail("KAFKA_TLS_CERT_FILE", "", "required with KAFKA_TLS_KEY_FILE")
	case sec.CertFile != "":
		if _, err := tls.LoadX509KeyPair(sec.CertFile, sec.KeyFile); err != nil {
			r.fail("KAFKA_TLS_CERT_FILE", sec.CertFile, "cannot load the certificate and key: "+err.Error())
		}
	}
	return sec
}

func (r *reader) level() slog.Level {
	raw := r.str("LOG_LEVEL", "INFO")
	switch strings.ToUpper(raw) {
	case "DEBUG":
		return slog.LevelDebug
	case "INFO":
		return slog.LevelInfo
	case "WARNING", "WARN":
		return slog.LevelWarn
	case "ERROR":
		return slog.LevelError
	case "CRITICAL":
		return logging.LevelCritical
	}
	r.fail("LOG_LEVEL", raw, "want DEBUG, INFO, WARNING, WARN, ERROR or CRITICAL")
	return slog.LevelInfo
}

// LogValue prints the configuration once at start-up, with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("service_name", c.ServiceName),
		slog.String("log_level", c.Log.Level.String()),
		slog.String("log_format", c.Log.Format),
		slog.String("api_addr", c.API.Addr()),
		slog.Bool("api_pprof", c.API.Profiling),
		slog.Int("api_max_connections", c.API.MaxConns),
		slog.String("cors_allow_origins", strings.Join(c.API.CORSOrigins, ",")),
		slog.String("source", c.Source),
		slog.String("stream_url", redact.URL(c.Stream.URL)),
		slog.String("opendota_logs_url", redact.URL(c.Logs.URL)),
		slog.String("opendota_logs_channels", strings.Join(c.Logs.Channels, ",")),
		slog.String("opendota_logs_stale_after", never(c.Logs.StaleAfter)),
		slog.String("steam_api_url", redact.URL(c.Steam.BaseURL)),
		slog.String("steam_api_key", maskKeys(c.Steam.Keys)),
		slog.String("steam_key_interval", c.Steam.KeyInterval.String()),
		slog.Int64("steam_rescan_behind", c.Steam.RescanBehind),
		slog.String("steam_rescan_delay", c.Steam.RescanDelay.String()),
		slog.Int64("steam_start_seq_num", c.Steam.StartSeqNum),
		slog.Int("steam_key_daily_calls", c.Steam.DailyCalls),
		slog.String("steam_backfill_from", c.Backfill.From.String()),
		slog.String("steam_backfill_to", c.Backfill.To.String()),
		slog.Int("steam_backfill_shards", c.Backfill.Shards),
		slog.Bool("steam_forward_scan", c.Backfill.Forward),
		slog.String("kafka_brokers", strings.Join(c.Kafka.Brokers, ",")),
		slog.String("kafka_topic", c.Kafka.Topic),
		slog.String("kafka_compression", c.Kafka.Compression),
		slog.String("kafka_linger", c.Kafka.Linger.String()),
		slog.Int("kafka_batch_max_bytes", int(c.Kafka.BatchMaxBytes)),
		slog.Int("kafka_max_buffered_records", c.Kafka.MaxBufferedRecords),
		slog.String("kafka_delivery_timeout", c.Kafka.DeliveryTimeout.String()),
		slog.Bool("kafka_create_topic", c.Kafka.CreateTopic),
		slog.String("kafka_security_protocol", c.Kafka.Security.Protocol),
		slog.String("kafka_sasl_mechanism", c.Kafka.Security.Mechanism),
		slog.String("kafka_sasl_username", c.Kafka.Security.Username),
		slog.String("kafka_sasl_password", mask(c.Kafka.Security.Password)),
		slog.String("kafka_tls_ca_file", c.Kafka.Security.CAFile),
		slog.String("stream_tls_ca_file", c.Stream.TLSCAFile),
		slog.String("spool_mode", string(c.Relay.Mode)),
		slog.String("spool_when_full", string(c.Relay.WhenFull)),
		slog.Int("buffer_max_records", c.Relay.MaxRecords),
		slog.String("spool_dir", c.Spool.Dir),
		slog.Int64("spool_max_bytes", c.Spool.MaxBytes),
		slog.String("spool_fsync", c.Spool.Sync.String()),
		slog.String("dedup_window", c.Dedup.String()),
		slog.String("fleet_group", c.Fleet.Group),
		slog.String("fleet_topic", c.Fleet.Topic),
		slog.String("standby_window", c.Fleet.StandbyWindow.String()),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.String("timer_slack", c.TimerSlack.String()),
	)
}

// mask hides a secret, saying only whether it is set.
func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "REDACTED"
}

// envFileError describes why the .env file could not be read. A parse
// error is not quoted: the parser's message repeats the text it failed
// on, which may be a secret (an unterminated quoted password). It names
// the line instead.
func envFileError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return Errors{{Var: "ENV_FILE", Value: path, Reason: "cannot read it: " + pe.Err.Error()}}
	}
	where := ""
	if raw, rerr := os.ReadFile(path); rerr == nil {
		if n := badEnvLine(string(raw)); n > 0 {
			where = fmt.Sprintf(" at line %d", n)
		}
	}
	return Errors{{Var: "ENV_FILE", Value: path, Reason: "cannot parse it" + where + " (want NAME=value lines, with quotes closed; the text is not shown, as it may hold a secret)"}}
}

// badEnvLine returns the line (from 1) where the content stops parsing
// for good: every prefix of the file that ends on or after it fails, the
// one before it parses. 0 if none is found.
func badEnvLine(content string) int {
	lines := strings.SplitAfter(content, "\n")
	bad := 0
	for i := len(lines); i >= 1; i-- {
		if _, err := godotenv.Unmarshal(strings.Join(lines[:i], "")); err == nil {
			break
		}
		bad = i
	}
	return bad
}

// redactBrokers hides the user info of every item of a broker list.
func redactBrokers(raw string) string {
	items := strings.Split(raw, ",")
	for i, b := range items {
		if at := strings.LastIndexByte(b, '@'); at >= 0 {
			items[i] = redact.Mark + b[at:]
		}
	}
	return strings.Join(items, ",")
}

// validTopic reports whether name is a legal Kafka topic name.
func validTopic(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// never shows d, or "never" for a negative d (a check turned off).
func never(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.String()
}
