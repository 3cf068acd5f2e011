package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/logging"
	"github.com/dota-data/ingestion-service/internal/relay"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultsMatchTheOriginalService(t *testing.T) {
	c, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, "")}))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"brokers", strings.Join(c.Kafka.Brokers, ","), "localhost:9092"},
		{"topic", c.Kafka.Topic, "match_ids_raw"},
		{"url", c.Stream.URL, "wss://stream.opendota.com/matches"},
		{"addr", c.API.Addr(), "0.0.0.0:8000"},
		{"level", c.Log.Level.String(), "INFO"},
		{"format", c.Log.Format, "json"},
		{"service", c.ServiceName, "ingestion-service"},
		{"compression", c.Kafka.Compression, "gzip"},
		{"linger", c.Kafka.Linger.String(), "10ms"},
		{"client id", c.Kafka.ClientID, "ingestion-service"},
		{"shutdown", c.ShutdownTimeout.String(), "30s"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	if c.Kafka.BatchMaxBytes != 16384 || c.Kafka.MaxBufferedRecords != 10000 || c.Kafka.DeliveryTimeout != 0 {
		t.Errorf("kafka = %+v", c.Kafka)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvironmentWinsOverEnvFile(t *testing.T) {
	file := writeFile(t, "KAFKA_PUBLISH_TOPIC=from_file\nAPI_PORT=9001\n# comment\nSERVICE_NAME=\"quoted name\"\n")
	c, err := Load(env(map[string]string{"ENV_FILE": file, "API_PORT": "9002"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Topic != "from_file" || c.API.Port != 9002 || c.ServiceName != "quoted name" {
		t.Fatalf("topic=%q port=%d service=%q", c.Kafka.Topic, c.API.Port, c.ServiceName)
	}
}

func TestDotEnvInWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("LOG_FORMAT=text\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Format != "text" {
		t.Fatalf("format = %q, want text from ./.env", c.Log.Format)
	}
}

func TestMissingExplicitEnvFileIsAnError(t *testing.T) {
	_, err := Load(env(map[string]string{"ENV_FILE": filepath.Join(t.TempDir(), "nope.env")}))
	if err == nil || !strings.Contains(err.Error(), "ENV_FILE") {
		t.Fatalf("err = %v", err)
	}
}

func TestLogLevels(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "Warning": slog.LevelWarn, "warn": slog.LevelWarn,
		"ERROR": slog.LevelError, "critical": logging.LevelCritical,
	} {
		c, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, ""), "LOG_LEVEL": in}))
		if err != nil || c.Log.Level != want {
			t.Errorf("LOG_LEVEL=%s: level %v, err %v; want %v", in, c.Log.Level, err, want)
		}
	}
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	tests := []struct{ name, value string }{
		{"API_PORT", "abc"},
		{"API_PORT", "70000"},
		{"API_PROBE_PORT", "8000"}, // the API_PORT default
		{"API_PROBE_PORT", "-1"},
		{"LOG_FORMAT", "xml"},
		{"LOG_LEVEL", "verbose"},
		{"OPENDOTA_STREAM_URL", "http://stream.example.com"},
		{"OPENDOTA_STREAM_URL", "not a url"},
		{"KAFKA_BOOTSTRAP_SERVERS", "localhost"},
		{"KAFKA_BOOTSTRAP_SERVERS", ","},
		{"KAFKA_COMPRESSION", "brotli"},
		{"KAFKA_LINGER", "ten"},
		{"KAFKA_DELIVERY_TIMEOUT", "500ms"},
		{"KAFKA_BATCH_MAX_BYTES", "10"},
		{"STREAM_PING_INTERVAL", "-1s"},
		{"SHUTDOWN_TIMEOUT", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, ""), tt.name: tt.value}))
			var ce *Error
			if !errors.As(err, &ce) || ce.Var != tt.name {
				t.Fatalf("err = %v, want a *Error naming %s", err, tt.name)
			}
			if !strings.Contains(err.Error(), tt.name) {
				t.Fatalf("message %q does not name %s", err, tt.name)
			}
		})
	}
}

func TestDurationsAndNumbers(t *testing.T) {
	c, err := Load(env(map[string]string{
		"ENV_FILE": writeFile(t, ""), "KAFKA_LINGER": "25ms", "KAFKA_DELIVERY_TIMEOUT": "2m",
		"KAFKA_BOOTSTRAP_SERVERS": "a:1, b:2", "STREAM_MAX_FRAME_BYTES": "1024", "LOG_SUMMARY_INTERVAL": "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Linger != 25*time.Millisecond || c.Kafka.DeliveryTimeout != 2*time.Minute ||
		strings.Join(c.Kafka.Brokers, "|") != "a:1|b:2" || c.Stream.MaxFrameBytes != 1024 || c.Log.SummaryInterval != 0 {
		t.Fatalf("config = %+v", c)
	}
}

// TestDocumentationListsEverySetting: docs/configuration.md is the
// reference generated from Vars (go run ./cmd/configdoc), and
// .env.example names every setting.
func TestDocumentationListsEverySetting(t *testing.T) {
	ref, err := os.ReadFile("../../" + ReferencePath)
	if err != nil {
		t.Fatal(err)
	}
	if string(ref) != Reference() {
		t.Errorf("%s is stale: run go run ./cmd/configdoc", ReferencePath)
	}
	example, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		if !strings.Contains(string(ref), "| `"+v.Name+"` |") {
			t.Errorf("%s lacks %s", ReferencePath, v.Name)
		}
		if !strings.Contains(string(example), v.Name) {
			t.Errorf(".env.example lacks %s", v.Name)
		}
	}
}

func TestEnvExampleHoldsTheDefaults(t *testing.T) {
	fromExample, err := Load(env(map[string]string{"ENV_FILE": "../../.env.example"}))
	if err != nil {
		t.Fatalf(".env.example does not load: %v", err)
	}
	defaults, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, "")}))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := fromExample.LogValue().String(), defaults.LogValue().String(); a != b {
		t.Fatalf(".env.example differs from the defaults:\n%s\n%s", a, b)
	}
}

func TestSecuritySettings(t *testing.T) {
	ca := writeFile(t, "not a certificate")
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
	}{
		{"unknown protocol", map[string]string{"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"},
		{"sasl without user", map[string]string{"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SASL_USERNAME"},
		{"sasl without password", map[string]string{"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD"},
		{"unknown mechanism", map[string]string{"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SASL_MECHANISM"},
		{"missing CA file", map[string]string{"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_TLS_CA_FILE": "/nonexistent/ca.pem"}, "KAFKA_TLS_CA_FILE"},
		{"CA file not PEM", map[string]string{"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_TLS_CA_FILE": ca}, "KAFKA_TLS_CA_FILE"},
		{"cert without key", map[string]string{"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_TLS_CERT_FILE": ca}, "KAFKA_TLS_KEY_FILE"},
		{"TLS file on plaintext", map[string]string{"KAFKA_TLS_CA_FILE": ca}, "KAFKA_SECURITY_PROTOCOL"},
		{"create topic not a bool", map[string]string{"KAFKA_CREATE_TOPIC": "yes please"}, "KAFKA_CREATE_TOPIC"},
		{"zero partitions", map[string]string{"KAFKA_TOPIC_PARTITIONS": "0"}, "KAFKA_TOPIC_PARTITIONS"},
		{"stream CA missing", map[string]string{"STREAM_TLS_CA_FILE": "/nonexistent/ca.pem"}, "STREAM_TLS_CA_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env["ENV_FILE"] = writeFile(t, "")
			_, err := Load(env(tt.env))
			var ce *Error
			if !errors.As(err, &ce) || ce.Var != tt.wantVar {
				t.Fatalf("err = %v, want a *Error naming %s", err, tt.wantVar)
			}
		})
	}
}

func TestSASLSettingsLoadAndThePasswordIsMasked(t *testing.T) {
	c, err := Load(env(map[string]string{
		"ENV_FILE": writeFile(t, ""), "KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_MECHANISM": "scram-sha-256",
		"KAFKA_SASL_USERNAME": "ingest", "KAFKA_SASL_PASSWORD": "s3cret-value", "KAFKA_CREATE_TOPIC": "true",
		"KAFKA_TOPIC_PARTITIONS": "6", "KAFKA_TOPIC_REPLICATION_FACTOR": "3",
	}))
	if err != nil {
		t.Fatal(err)
	}
	sec := c.Kafka.Security
	if sec.Protocol != "SASL_SSL" || sec.Mechanism != "SCRAM-SHA-256" || sec.Username != "ingest" || sec.Password != "s3cret-value" {
		t.Fatalf("security = %+v", sec)
	}
	if !c.Kafka.CreateTopic || c.Kafka.TopicPartitions != 6 || c.Kafka.TopicReplicationFactor != 3 {
		t.Fatalf("topic settings = %+v", c.Kafka)
	}
	printed := c.LogValue().String()
	if strings.Contains(printed, "s3cret-value") || !strings.Contains(printed, "REDACTED") {
		t.Fatalf("printed config does not mask the password: %s", printed)
	}
}

func TestRelaySettings(t *testing.T) {
	c, err := Load(env(map[string]string{
		"ENV_FILE": writeFile(t, ""), "SPOOL_MODE": "Disk", "SPOOL_WHEN_FULL": "drop_newest", "BUFFER_MAX_RECORDS": "500",
		"SPOOL_DIR": "/var/tmp/x", "SPOOL_MAX_BYTES": "512MiB", "SPOOL_FSYNC": "always", "DEDUP_WINDOW": "10m",
		"KAFKA_MAX_BUFFERED_RECORDS": "2000",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Relay.Mode != "disk" || c.Relay.WhenFull != "drop_newest" || c.Relay.MaxRecords != 500 || c.Relay.MaxInFlight != 2000 {
		t.Fatalf("relay = %+v", c.Relay)
	}
	if c.Spool.Dir != "/var/tmp/x" || c.Spool.MaxBytes != 512<<20 || !c.Spool.Sync.Always {
		t.Fatalf("spool = %+v", c.Spool)
	}
	if c.Dedup.Age != 10*time.Minute {
		t.Fatalf("dedup = %+v", c.Dedup)
	}
	for in, want := range map[string]int64{"1048576": 1 << 20, "64KiB": 64 << 10, "2 GiB": 2 << 30, "3mb": 3 << 20} {
		c, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, ""), "SPOOL_MAX_BYTES": in}))
		if err != nil || c.Spool.MaxBytes != want {
			t.Errorf("SPOOL_MAX_BYTES=%s: %d, %v; want %d", in, c.Spool.MaxBytes, err, want)
		}
	}
	for in, want := range map[string]time.Duration{"1s": time.Second, "100ms": 100 * time.Millisecond, "never": 0} {
		c, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, ""), "SPOOL_FSYNC": in}))
		if err != nil || c.Spool.Sync.Interval != want || c.Spool.Sync.Always {
			t.Errorf("SPOOL_FSYNC=%s: %+v, %v", in, c.Spool.Sync, err)
		}
	}
	for _, bad := range []struct{ name, value string }{
		{"SPOOL_MODE", "tape"}, {"SPOOL_WHEN_FULL", "drop_oldest"}, {"SPOOL_MAX_BYTES", "lots"}, {"SPOOL_MAX_BYTES", "-1"},
		{"SPOOL_FSYNC", "sometimes"}, {"DEDUP_WINDOW", "-3"}, {"BUFFER_MAX_RECORDS", "0"},
	} {
		_, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, ""), bad.name: bad.value}))
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != bad.name {
			t.Errorf("%s=%s: err = %v, want a *Error naming it", bad.name, bad.value, err)
		}
	}
}

func TestSourceSettings(t *testing.T) {
	load := func(t *testing.T, vars map[string]string) (Config, error) {
		t.Helper()
		vars["ENV_FILE"] = writeFile(t, "")
		return Load(env(vars))
	}
	c, err := load(t, map[string]string{})
	if err != nil || c.Source != SourceOpenDotaLogs || c.Relay.Mode != relay.Overflow || len(c.Ignored) != 0 {
		t.Fatalf("defaults: source %q, mode %q, err %v", c.Source, c.Relay.Mode, err)
	}
	// The default source: all four combinations of SOURCE and
	// OPENDOTA_STREAM_URL, set or not, in the environment or the .env file.
	for _, tt := range []struct {
		vars      map[string]string
		env       string // the .env file
		want, why string
	}{
		{map[string]string{}, "", SourceOpenDotaLogs, "SOURCE and OPENDOTA_STREAM_URL are not set"},
		{map[string]string{"OPENDOTA_STREAM_URL": "ws://127.0.0.1:9/matches"}, "", SourceWebSocket, "SOURCE is not set and OPENDOTA_STREAM_URL is"},
		{map[string]string{}, "OPENDOTA_STREAM_URL=wss://stream.opendota.com/matches\n", SourceWebSocket, "SOURCE is not set and OPENDOTA_STREAM_URL is"},
		{map[string]string{"SOURCE": "opendota-logs", "OPENDOTA_STREAM_URL": "ws://127.0.0.1:9/matches"}, "", SourceOpenDotaLogs, "SOURCE is set"},
		{map[string]string{"SOURCE": "WebSocket"}, "", SourceWebSocket, "SOURCE is set"},
		{map[string]string{"SOURCE": " "}, "", SourceOpenDotaLogs, "SOURCE and OPENDOTA_STREAM_URL are not set"},
	} {
		tt.vars["ENV_FILE"] = writeFile(t, tt.env)
		c, err := Load(env(tt.vars))
		if err != nil || c.Source != tt.want || !strings.HasPrefix(c.SourceReason, tt.why) {
			t.Errorf("%v, .env %q: source %q (%s), err %v; want %s because %s", tt.vars, tt.env, c.Source, c.SourceReason, err, tt.want, tt.why)
		}
	}

	c, err = load(t, map[string]string{"SOURCE": "Steam-Sequence", "STEAM_API_KEY": "s3cr3t-key", "STEAM_START_SEQ_NUM": "6700000000", "STEAM_API_URL": "http://127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != SourceSteamSequence || !slices.Equal(c.Steam.Keys, []string{"s3cr3t-key"}) ||
		c.Steam.StartSeqNum != 6_700_000_000 || c.Steam.BaseURL != "http://127.0.0.1:9" {
		t.Fatalf("steam-sequence: %+v, mode %q", c.Steam, c.Relay.Mode)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c)
	if strings.Contains(logged.String(), "s3cr3t-key") || !strings.Contains(logged.String(), `"steam_api_key":"REDACTED"`) {
		t.Fatalf("the key is not masked: %s", logged.String())
	}
	// Several keys, each trimmed; the summary says how many, never which.
	c, err = load(t, map[string]string{"SOURCE": "steam-sequence", "STEAM_API_KEY": " first-s3cr3t , second-s3cr3t,,", "STEAM_RESCAN_BEHIND": "0", "STEAM_RESCAN_DELAY": "10m"})
	if err != nil || !slices.Equal(c.Steam.Keys, []string{"first-s3cr3t", "second-s3cr3t"}) || c.Steam.RescanBehind >= 0 || c.Steam.RescanDelay != 10*time.Minute {
		t.Fatalf("two keys, rescan off: %+v, err %v", c.Steam, err)
	}
	logged.Reset()
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c)
	if strings.Contains(logged.String(), "s3cr3t") || !strings.Contains(logged.String(), `"steam_api_key":"REDACTED (2 keys)"`) {
		t.Fatalf("the keys are not masked: %s", logged.String())
	}
	_, err = load(t, map[string]string{"SOURCE": "steam-sequence", "STEAM_API_KEY": "same-s3cr3t,same-s3cr3t"})
	if err == nil || !strings.Contains(err.Error(), "key 2 repeats key 1") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("a repeated key: err %v, want it named by position only", err)
	}
	// The scanner writes Kafka transactions (it uses no spool, see
	// TestSteamSourceUsesNoSpool): a spool setting from an earlier version
	// is named as ignored, not refused.
	c, err = load(t, map[string]string{"SOURCE": "steam-sequence", "STEAM_API_KEY": "k", "SPOOL_MODE": "disk", "SPOOL_WHEN_FULL": "drop_newest"})
	if err != nil || !slices.Equal(c.Ignored, []string{"SPOOL_MODE", "SPOOL_WHEN_FULL"}) {
		t.Fatalf("SPOOL_* with the scanner: ignored %v, err %v; want both named", c.Ignored, err)
	}
	c, err = load(t, map[string]string{"SOURCE": "steam-sequence", "STEAM_API_KEY": "k"})
	if err != nil || len(c.Ignored) != 0 {
		t.Fatalf("the scanner by default: ignored %v, err %v", c.Ignored, err)
	}

	c, err = load(t, map[string]string{"SOURCE": "opendota-logs", "OPENDOTA_LOGS_CHANNELS": " API, parsed ", "OPENDOTA_LOGS_URL": "http://127.0.0.1:9/logs"})
	if err != nil || !slices.Equal(c.Logs.Channels, []string{"api", "parsed"}) || c.Logs.URL != "http://127.0.0.1:9/logs" {
		t.Fatalf("opendota-logs: %+v, err %v", c.Logs, err)
	}

	for _, tt := range []struct {
		vars    map[string]string
		invalid string
	}{
		{map[string]string{"SOURCE": "kafka"}, "SOURCE"},
		{map[string]string{"SOURCE": "steam-sequence"}, "STEAM_API_KEY"},
		{map[string]string{"SOURCE": "steam-sequence", "STEAM_API_KEY": "k", "STEAM_API_URL": "ftp://x"}, "STEAM_API_URL"},
		{map[string]string{"SOURCE": "steam-sequence", "STEAM_API_KEY": "k", "STEAM_START_SEQ_NUM": "-5"}, "STEAM_START_SEQ_NUM"},
		{map[string]string{"SOURCE": "opendota-logs", "OPENDOTA_LOGS_CHANNELS": "gcdata"}, "OPENDOTA_LOGS_URL"},
		{map[string]string{"SOURCE": "opendota-logs", "OPENDOTA_LOGS_URL": "wss://x/logs"}, "OPENDOTA_LOGS_URL"},
	} {
		_, err := load(t, tt.vars)
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != tt.invalid {
			t.Errorf("%v: err = %v, want a *Error naming %s", tt.vars, err, tt.invalid)
		}
	}
}

func TestFleetSettings(t *testing.T) {
	load := func(vars map[string]string) (Config, error) {
		vars["ENV_FILE"] = writeFile(t, "")
		return Load(env(vars))
	}
	// The fleet's transactional ID is the wiring's (TestSinkConfig).
	c, err := load(map[string]string{})
	if err != nil || c.Fleet.Enabled() {
		t.Fatalf("alone by default: %+v, %v", c.Fleet, err)
	}
	c, err = load(map[string]string{"FLEET_GROUP": "eu", "KAFKA_PUBLISH_TOPIC": "ids", "STANDBY_WINDOW": "1m", "FLEET_COMMIT_INTERVAL": "250ms"})
	if err != nil || !c.Fleet.Enabled() || c.Fleet.Group != "eu" || c.Fleet.Topic != "ingestion-service-leader" ||
		c.Fleet.StandbyWindow != time.Minute || c.Kafka.CommitInterval != 250*time.Millisecond || c.Fleet.SessionTimeout != 10*time.Second {
		t.Fatalf("fleet: %+v, commit interval %s, %v", c.Fleet, c.Kafka.CommitInterval, err)
	}
	_, err = load(map[string]string{"FLEET_GROUP": "eu", "STANDBY_WINDOW": "5s"})
	var ce *Error
	if !errors.As(err, &ce) || ce.Var != "STANDBY_WINDOW" {
		t.Fatalf("a standby window under the session timeout: %v", err)
	}
}

// TestURLErrorsHideSecrets: an invalid URL setting is named, but its user
// info and query are not echoed.
func TestURLErrorsHideSecrets(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"OPENDOTA_STREAM_URL": {"OPENDOTA_STREAM_URL": "http://user:pw-S3CRET@host/matches?token=T0KEN-S3CRET"},
		"OPENDOTA_LOGS_URL":   {"SOURCE": "opendota-logs", "OPENDOTA_LOGS_URL": "ftp://user:pw-S3CRET@host/logs?token=T0KEN-S3CRET"},
		"STEAM_API_URL":       {"SOURCE": "steam-sequence", "STEAM_API_KEY": "k", "STEAM_API_URL": "ftp://user:pw-S3CRET@host/?key=T0KEN-S3CRET"},
	} {
		vars["ENV_FILE"] = writeFile(t, "")
		_, err := Load(env(vars))
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "S3CRET") || strings.Contains(err.Error(), "channels") {
			t.Errorf("%s: error %v, want it named without its secrets", name, err)
		}
	}
}

// TestEnvFileErrorHidesItsText: a .env file that does not parse is
// reported with its line, never with the text it failed on.
func TestEnvFileErrorHidesItsText(t *testing.T) {
	path := writeFile(t, "KAFKA_PUBLISH_TOPIC=dota\nKAFKA_SASL_PASSWORD=\"s3cret-pw-unterminated\nAPI_PORT=8080\n")
	_, err := Load(env(map[string]string{"ENV_FILE": path}))
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "ENV_FILE") {
		t.Fatalf("error %v, want ENV_FILE and line 2 named and the text not shown", err)
	}
}

// TestInvalidSettingsAreNamed: settings that used to pass the checks and
// fail later, unnamed, are refused here with the variable's name, and
// without the credentials they hold.
func TestInvalidSettingsAreNamed(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": {"KAFKA_BOOTSTRAP_SERVERS": "user:pw-S3CRET@broker:9092"},
		"STEAM_API_URL":           {"SOURCE": "steam-sequence", "STEAM_API_KEY": "k", "STEAM_API_URL": "https://api.steampowered.com/?key=S3CRET"},
	} {
		vars["ENV_FILE"] = writeFile(t, "")
		_, err := Load(env(vars))
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != name || strings.Contains(err.Error(), "S3CRET") {
			t.Errorf("%s: error %v, want a *config.Error naming it without the secret", name, err)
		}
	}
	for _, ok := range []string{"localhost:9092", "b1:9092,b2:9093", "[::1]:9092"} {
		if _, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, ""), "KAFKA_BOOTSTRAP_SERVERS": ok})); err != nil {
			t.Errorf("KAFKA_BOOTSTRAP_SERVERS=%s: %v", ok, err)
		}
	}
}

func TestCORSOrigins(t *testing.T) {
	c, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, ""), "CORS_ALLOW_ORIGINS": " https://dash.example/ , http://localhost:3000"}))
	if err != nil || !slices.Equal(c.API.CORSOrigins, []string{"https://dash.example", "http://localhost:3000"}) {
		t.Fatalf("CORSOrigins = %v, %v", c.API.CORSOrigins, err)
	}
	for _, bad := range []string{"*", "null", "dash.example", "https://dash.example/path"} {
		if _, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, ""), "CORS_ALLOW_ORIGINS": bad})); err == nil || !strings.Contains(err.Error(), "CORS_ALLOW_ORIGINS") {
			t.Errorf("CORS_ALLOW_ORIGINS=%s: %v, want it refused", bad, err)
		}
	}
}

func TestSteamTopics(t *testing.T) {
	c, err := Load(env(map[string]string{"KAFKA_PUBLISH_TOPIC": "ids"}))
	if err != nil || c.SteamTopics != (SteamTopics{Cursor: "ids-steam-cursor"}) {
		t.Fatalf("defaults: %+v, %v; want no matches topic and the cursor topic derived from the IDs topic", c.SteamTopics, err)
	}
	c, err = Load(env(map[string]string{"STEAM_MATCHES_TOPIC": "matches", "STEAM_CURSOR_TOPIC": "cursor"}))
	if err != nil || c.SteamTopics != (SteamTopics{Matches: "matches", Cursor: "cursor"}) {
		t.Fatalf("set: %+v, %v", c.SteamTopics, err)
	}
	for _, tt := range []struct{ name, value string }{
		{"STEAM_MATCHES_TOPIC", "match_ids_raw"}, // the IDs topic
		{"STEAM_MATCHES_TOPIC", "match_ids_raw-steam-cursor"},
		{"STEAM_MATCHES_TOPIC", "no spaces"},
		{"STEAM_CURSOR_TOPIC", "match_ids_raw"},
		{"STEAM_CURSOR_TOPIC", ".."},
		{"KAFKA_PUBLISH_TOPIC", "a/b"},
	} {
		_, err := Load(env(map[string]string{tt.name: tt.value}))
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != tt.name {
			t.Errorf("%s=%q: %v, want an error naming %s", tt.name, tt.value, err, tt.name)
		}
	}
}

// TestIsSetSeesTheEnvironmentAndTheEnvFile: a variable counts as set from
// either place, and not when blank.
func TestIsSetSeesTheEnvironmentAndTheEnvFile(t *testing.T) {
	c, err := Load(env(map[string]string{
		"ENV_FILE":             writeFile(t, "API_HOST=127.0.0.1\nSPOOL_DIR=\n"),
		"LOG_SUMMARY_INTERVAL": "0",
		"SERVICE_NAME":         "  ",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"API_HOST": true, "LOG_SUMMARY_INTERVAL": true, "SPOOL_DIR": false, "SERVICE_NAME": false, "SOURCE": false} {
		if got := c.IsSet(name); got != want {
			t.Errorf("IsSet(%s) = %v, want %v", name, got, want)
		}
	}
}

// TestEveryInvalidSettingAtOnce: Load names every invalid variable, each
// once, not only the first; errors.As still finds them.
func TestEveryInvalidSettingAtOnce(t *testing.T) {
	_, err := Load(env(map[string]string{
		"ENV_FILE":         writeFile(t, "LOG_FORMAT=xml\n"),
		"API_PORT":         "abc",
		"KAFKA_LINGER":     "soon",
		"SPOOL_MODE":       "tape",
		"STEAM_API_KEY":    "",
		"SHUTDOWN_TIMEOUT": "0",
	}))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err %v (%T), want Errors", err, err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Var)
	}
	want := []string{"LOG_FORMAT", "API_PORT", "KAFKA_LINGER", "SPOOL_MODE", "SHUTDOWN_TIMEOUT"}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("invalid %v, want %v", names, want)
	}
	var ce *Error
	if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "5 invalid settings: ") || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("err %q: want one line listing five, each found by errors.As", err)
	}
}

// TestEmptyIsNotUnset: KAFKA_BOOTSTRAP_SERVERS or KAFKA_PUBLISH_TOPIC set
// to nothing, in the environment or .env, is an error naming it, not the
// default; unset, the default holds.
func TestEmptyIsNotUnset(t *testing.T) {
	lookup := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	for _, tt := range []struct {
		vars    map[string]string
		envFile string
		invalid string
	}{
		{map[string]string{"KAFKA_BOOTSTRAP_SERVERS": ""}, "", "KAFKA_BOOTSTRAP_SERVERS"},
		{map[string]string{"KAFKA_PUBLISH_TOPIC": " "}, "", "KAFKA_PUBLISH_TOPIC"},
		{map[string]string{}, "KAFKA_BOOTSTRAP_SERVERS=\n", "KAFKA_BOOTSTRAP_SERVERS"},
		{map[string]string{}, "", ""},
	} {
		tt.vars["ENV_FILE"] = writeFile(t, tt.envFile)
		c, err := LoadLookup(lookup(tt.vars))
		var ce *Error
		switch {
		case tt.invalid == "" && (err != nil || c.Kafka.Brokers[0] != "localhost:9092"):
			t.Errorf("%v: %v, brokers %v; want the default", tt.vars, err, c.Kafka.Brokers)
		case tt.invalid != "" && (!errors.As(err, &ce) || ce.Var != tt.invalid || !strings.Contains(err.Error(), "set but empty")):
			t.Errorf("%v, .env %q: %v; want %s named as set but empty", tt.vars, tt.envFile, err, tt.invalid)
		}
	}
}

// TestBackfillSettings: a range of seqs or dates, its shards and the
// forward scan load; a range that is half set, inverted, without the
// Steam source, or a forward scan turned off with no backfill, is an
// invalid setting naming the variable.
func TestBackfillSettings(t *testing.T) {
	steam := func(vars map[string]string) map[string]string {
		out := map[string]string{"ENV_FILE": writeFile(t, ""), "SOURCE": "steam-sequence", "STEAM_API_KEY": "k"}
		for k, v := range vars {
			out[k] = v
		}
		return out
	}
	c, err := Load(env(steam(map[string]string{"STEAM_BACKFILL_FROM": "100", "STEAM_BACKFILL_TO": "2024-01-01", "STEAM_BACKFILL_SHARDS": "32", "STEAM_FORWARD_SCAN": "false", "STEAM_KEY_DAILY_CALLS": "5000"})))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Backfill
	if !b.Enabled() || b.From.Seq != 100 || b.To.Date != time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) || b.Shards != 32 || b.Forward || c.Steam.DailyCalls != 5000 {
		t.Fatalf("backfill %+v, daily calls %d", b, c.Steam.DailyCalls)
	}
	c, err = Load(env(steam(nil)))
	if err != nil || c.Backfill.Enabled() || !c.Backfill.Forward || c.Backfill.Shards != 16 || c.Steam.DailyCalls != 100_000 {
		t.Fatalf("defaults: %+v, daily calls %d, %v", c.Backfill, c.Steam.DailyCalls, err)
	}
	c, err = Load(env(steam(map[string]string{"STEAM_KEY_DAILY_CALLS": "0"})))
	if err != nil || c.Steam.DailyCalls >= 0 {
		t.Fatalf("STEAM_KEY_DAILY_CALLS=0: %d, %v; want no cap (negative)", c.Steam.DailyCalls, err)
	}
	for _, tt := range []struct {
		vars    map[string]string
		invalid string
	}{
		{steam(map[string]string{"STEAM_BACKFILL_FROM": "100"}), "STEAM_BACKFILL_TO"},
		{steam(map[string]string{"STEAM_BACKFILL_TO": "100"}), "STEAM_BACKFILL_FROM"},
		{steam(map[string]string{"STEAM_BACKFILL_FROM": "100", "STEAM_BACKFILL_TO": "100"}), "STEAM_BACKFILL_TO"},
		{steam(map[string]string{"STEAM_BACKFILL_FROM": "2024-02-01", "STEAM_BACKFILL_TO": "2024-01-01"}), "STEAM_BACKFILL_TO"},
		{steam(map[string]string{"STEAM_BACKFILL_FROM": "last week", "STEAM_BACKFILL_TO": "100"}), "STEAM_BACKFILL_FROM"},
		{steam(map[string]string{"STEAM_BACKFILL_FROM": "1", "STEAM_BACKFILL_TO": "100", "STEAM_BACKFILL_SHARDS": "0"}), "STEAM_BACKFILL_SHARDS"},
		{steam(map[string]string{"STEAM_FORWARD_SCAN": "false"}), "STEAM_FORWARD_SCAN"},
		{steam(map[string]string{"STEAM_FORWARD_SCAN": "maybe"}), "STEAM_FORWARD_SCAN"},
		{map[string]string{"ENV_FILE": writeFile(t, ""), "STEAM_BACKFILL_FROM": "1", "STEAM_BACKFILL_TO": "100"}, "STEAM_BACKFILL_FROM"},
	} {
		_, err := Load(env(tt.vars))
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != tt.invalid {
			t.Errorf("%v: err = %v, want a *Error naming %s", tt.vars, err, tt.invalid)
		}
	}
}
