package config

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/fleet"
	"github.com/dota-data/ingestion-service/internal/httpapi"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/odlogs"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/wsstream"
)

// TestEveryDocumentedDefaultIsInForce: a Config loaded from nothing holds,
// for every setting, the default docs/configuration.md documents (Vars),
// read back as the variable is written. A default that names another
// setting is that setting's value; a derived one is checked by name.
func TestEveryDocumentedDefaultIsInForce(t *testing.T) {
	c, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, "")}))
	if err != nil {
		t.Fatal(err)
	}
	derived := map[string]string{
		"STEAM_CURSOR_TOPIC": "match_ids_raw-steam-cursor", // KAFKA_PUBLISH_TOPIC followed by -steam-cursor
		"ENV_FILE":           "",                           // how the settings are read, not one of them
	}
	for _, v := range Vars {
		want := v.Default
		if other, ok := byName[v.Default]; ok {
			want = other.value(c)
		}
		if d, ok := derived[v.Name]; ok {
			want = d
		}
		if got := v.value(c); got != want {
			t.Errorf("%s: documented default %q, in force %q", v.Name, want, got)
		}
	}
}

// TestDefaultsAreTheComponentsOwn: where a component has a default of its
// own (what it does with a zero setting), the documented default is that
// one, so that the service and a component built without the service
// behave alike.
func TestDefaultsAreTheComponentsOwn(t *testing.T) {
	c, err := Load(env(map[string]string{"ENV_FILE": writeFile(t, "")}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"STREAM_CONNECT_TIMEOUT", c.Stream.ConnectTimeout, wsstream.DefaultConnectTimeout},
		{"STREAM_PING_INTERVAL", c.Stream.PingInterval, wsstream.DefaultPingInterval},
		{"STREAM_PONG_TIMEOUT", c.Stream.PongTimeout, wsstream.DefaultPongTimeout},
		{"STREAM_MAX_FRAME_BYTES", c.Stream.MaxFrameBytes, wsstream.DefaultMaxFrameBytes},
		{"STREAM_BACKOFF_MIN", c.Stream.BackoffMin, wsstream.DefaultBackoffMin},
		{"STREAM_BACKOFF_MAX", c.Stream.BackoffMax, wsstream.DefaultBackoffMax},
		{"STREAM_HEALTHY_AFTER", c.Stream.HealthyAfter, wsstream.DefaultHealthyAfter},
		{"OPENDOTA_LOGS_URL", c.Logs.URL, odlogs.DefaultURL},
		{"OPENDOTA_LOGS_IDLE_TIMEOUT", c.Logs.IdleTimeout, odlogs.DefaultIdleTimeout},
		{"OPENDOTA_LOGS_STALE_AFTER", c.Logs.StaleAfter, odlogs.DefaultStaleAfter},
		{"STEAM_API_URL", c.Steam.BaseURL, steamseq.DefaultBaseURL},
		{"STEAM_IDLE_WAIT", c.Steam.IdleWait, steamseq.DefaultIdleWait},
		{"STEAM_KEY_INTERVAL", c.Steam.KeyInterval, steamseq.DefaultKeyInterval},
		{"STEAM_MIN_INTERVAL", c.Steam.MinInterval, steamseq.DefaultMinInterval},
		{"STEAM_RESCAN_BEHIND", c.Steam.RescanBehind, int64(steamseq.DefaultRescanBehind)},
		{"STEAM_RESCAN_DELAY", c.Steam.RescanDelay, steamseq.DefaultRescanDelay},
		{"STEAM_SKIP_AFTER", c.Steam.SkipAfter, steamseq.DefaultSkipAfter},
		{"STEAM_HEAD_INTERVAL", c.Steam.HeadInterval, steamseq.DefaultHeadInterval},
		{"STEAM_KEY_DAILY_CALLS", c.Steam.DailyCalls, steamseq.DefaultDailyCalls},
		{"STEAM_BACKFILL_SHARDS", c.Backfill.Shards, backfill.DefaultShards},
		{"KAFKA_COMPRESSION", c.Kafka.Compression, kafkasink.DefaultCompression},
		{"KAFKA_LINGER", c.Kafka.Linger, kafkasink.DefaultLinger},
		{"KAFKA_BATCH_MAX_BYTES", c.Kafka.BatchMaxBytes, int32(kafkasink.DefaultBatchMaxBytes)},
		{"KAFKA_MAX_BUFFERED_RECORDS", c.Kafka.MaxBufferedRecords, kafkasink.DefaultMaxBufferedRecords},
		{"KAFKA_CLIENT_ID", c.Kafka.ClientID, kafkasink.DefaultClientID},
		{"FLEET_COMMIT_INTERVAL", c.Kafka.CommitInterval, kafkasink.DefaultCommitInterval},
		{"FLEET_TOPIC", c.Fleet.Topic, fleet.DefaultTopic},
		{"FLEET_SESSION_TIMEOUT", c.Fleet.SessionTimeout, fleet.DefaultSessionTimeout},
		{"STANDBY_WINDOW", c.Fleet.StandbyWindow, fleet.DefaultStandbyWindow},
		{"API_MAX_CONNECTIONS", c.API.MaxConns, httpapi.DefaultMaxConns},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %v in force, the component's default is %v", tt.name, tt.got, tt.want)
		}
	}
}

// TestZeroMeansOff: a setting whose 0 turns something off reaches its
// component as the -1 that says so (a component's 0 is its default), and
// is written back as 0.
func TestZeroMeansOff(t *testing.T) {
	c, err := Load(env(map[string]string{
		"ENV_FILE": writeFile(t, ""), "OPENDOTA_LOGS_STALE_AFTER": "0", "STEAM_KEY_INTERVAL": "0", "STEAM_MIN_INTERVAL": "0",
		"STEAM_RESCAN_BEHIND": "0", "STEAM_RESCAN_DELAY": "0", "STEAM_SKIP_AFTER": "0", "STEAM_HEAD_INTERVAL": "0", "STEAM_KEY_DAILY_CALLS": "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]int64{
		"OPENDOTA_LOGS_STALE_AFTER": int64(c.Logs.StaleAfter), "STEAM_KEY_INTERVAL": int64(c.Steam.KeyInterval),
		"STEAM_MIN_INTERVAL": int64(c.Steam.MinInterval), "STEAM_RESCAN_BEHIND": c.Steam.RescanBehind,
		"STEAM_RESCAN_DELAY": int64(c.Steam.RescanDelay), "STEAM_SKIP_AFTER": int64(c.Steam.SkipAfter),
		"STEAM_HEAD_INTERVAL": int64(c.Steam.HeadInterval), "STEAM_KEY_DAILY_CALLS": int64(c.Steam.DailyCalls),
	} {
		if got != -1 {
			t.Errorf("%s=0 reaches the component as %d, want -1 (off)", name, got)
		}
		if v := byName[name].value(c); v != "0" {
			t.Errorf("%s=0 is written back as %q", name, v)
		}
	}
}

// TestIgnoredSettings: a setting set for a source that does not read it
// is named, whatever the source.
func TestIgnoredSettings(t *testing.T) {
	for _, tt := range []struct {
		vars map[string]string
		want []string
	}{
		{map[string]string{"STEAM_API_KEY": "k", "STEAM_MATCHES_TOPIC": "matches"}, []string{"STEAM_API_KEY", "STEAM_MATCHES_TOPIC"}},
		{map[string]string{"SOURCE": "websocket", "OPENDOTA_STREAM_URL": "ws://127.0.0.1:9/m", "OPENDOTA_LOGS_CHANNELS": "parsed", "STREAM_BACKOFF_MIN": "1s"}, []string{"OPENDOTA_LOGS_CHANNELS"}},
		{map[string]string{"SOURCE": "opendota-logs", "OPENDOTA_STREAM_URL": "ws://127.0.0.1:9/m", "STREAM_PING_INTERVAL": "5s"}, []string{"OPENDOTA_STREAM_URL", "STREAM_PING_INTERVAL"}},
		{map[string]string{"SOURCE": "steam-sequence", "STEAM_API_KEY": "k", "DEDUP_WINDOW": "10", "BUFFER_MAX_RECORDS": "10", "SPOOL_DIR": "/tmp/x"}, []string{"BUFFER_MAX_RECORDS", "DEDUP_WINDOW"}},
		{map[string]string{"KAFKA_LINGER": "5ms", "FLEET_GROUP": "g", "SPOOL_FSYNC": "always"}, nil},
	} {
		tt.vars["ENV_FILE"] = writeFile(t, "")
		c, err := Load(env(tt.vars))
		if err != nil {
			t.Fatalf("%v: %v", tt.vars, err)
		}
		if !slices.Equal(c.Ignored, tt.want) {
			t.Errorf("%v: ignored %v, want %v", tt.vars, c.Ignored, tt.want)
		}
	}
}

// TestStartUpSummaryListsEverySetting: the start-up log line has every
// setting but ENV_FILE, by its variable's name, secrets masked.
func TestStartUpSummaryListsEverySetting(t *testing.T) {
	c, err := Load(env(map[string]string{
		"ENV_FILE": writeFile(t, ""), "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u",
		"KAFKA_SASL_PASSWORD": "pa55word", "STEAM_API_KEY": "k3y-one,k3y-two", "STEAM_IDLE_WAIT": "90s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	attrs := c.LogValue().Group()
	if len(attrs) != len(Vars)-1 {
		t.Errorf("the summary has %d settings, Vars %d (less ENV_FILE)", len(attrs), len(Vars))
	}
	got := map[string]string{}
	for _, a := range attrs {
		got[a.Key] = a.Value.String()
	}
	for _, v := range Vars {
		if _, ok := got[strings.ToLower(v.Name)]; !ok && v.Name != "ENV_FILE" {
			t.Errorf("the summary lacks %s", v.Name)
		}
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("start", "config", c)
	for _, secret := range []string{"pa55word", "k3y-one", "k3y-two"} {
		if strings.Contains(logged.String(), secret) {
			t.Errorf("the summary shows a secret: %s", logged.String())
		}
	}
	if got["steam_idle_wait"] != "1m30s" || got["kafka_sasl_password"] != "REDACTED" || got["steam_api_key"] != "REDACTED (2 keys)" {
		t.Errorf("summary: %v", got)
	}
}

func TestDurationText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 500 * time.Millisecond: "500ms", 10 * time.Second: "10s", 2 * time.Minute: "2m", 90 * time.Second: "1m30s",
		time.Hour: "1h", 90 * time.Minute: "1h30m", 50 * time.Microsecond: "50µs", time.Hour + time.Second: "1h0m1s",
	} {
		if got := durationText(d); got != want {
			t.Errorf("durationText(%v) = %q, want %q", d, got, want)
		}
		if d > 0 {
			if back, err := time.ParseDuration(durationText(d)); err != nil || back != d {
				t.Errorf("%q reads back as %v, %v", durationText(d), back, err)
			}
		}
	}
}
