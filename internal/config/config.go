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
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/dedup"
	"github.com/dota-data/ingestion-service/internal/fleet"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/odlogs"
	"github.com/dota-data/ingestion-service/internal/relay"
	"github.com/dota-data/ingestion-service/internal/spool"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/wsstream"
)

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
	// single replica. The wiring sets its Units.
	Fleet fleet.Config
	// ShutdownTimeout bounds the drain on SIGINT/SIGTERM.
	ShutdownTimeout time.Duration
	// TimerSlack is the process's timer slack on Linux; 0 leaves it.
	TimerSlack time.Duration
	// Ignored names the variables that were set but that the chosen source
	// does not read, for a warning at start and in check.
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

func (r *reader) load() Config {
	var c Config
	r.process(&c)
	c.Log = r.log()
	c.API = r.api()
	c.Source, c.SourceReason = r.source()
	c.Stream = r.stream()
	c.Logs = r.logs(c.Source, c.Stream)
	c.Steam = r.steam(c.Source)
	c.Backfill = r.backfill(c.Source)
	c.Kafka = r.kafka(c.ServiceName)
	c.SteamTopics = r.steamTopics(c.Kafka.Topic)
	c.Relay = r.relay(c.Kafka.MaxBufferedRecords)
	c.Spool = r.spool()
	c.Dedup = r.dedup()
	c.Fleet = r.fleet()
	c.Ignored = ignoredBy(c.Source, func(name string) bool { return r.set(name) != "" })
	return c
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
