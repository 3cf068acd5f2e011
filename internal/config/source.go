package config

import (
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/odlogs"
	"github.com/dota-data/ingestion-service/internal/redact"
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

// The original service's stream, OPENDOTA_STREAM_URL's default: no such
// stream exists (nothing public serves it).
const OriginalStreamURL = "wss://stream.opendota.com/matches"

// Which sources read a setting (Var.Sources).
var (
	onlyWebSocket = []string{SourceWebSocket}
	onlyLogs      = []string{SourceOpenDotaLogs}
	onlySteam     = []string{SourceSteamSequence}
	// The two live sources share the connection's settings.
	liveSources = []string{SourceWebSocket, SourceOpenDotaLogs}
)

var sourceVars = []Var{
	{Name: "SOURCE", Default: SourceOpenDotaLogs, Help: "where matches come from: `opendota-logs` (`OPENDOTA_LOGS_URL`), `websocket` (`OPENDOTA_STREAM_URL`) or `steam-sequence` (the Steam Web API). Unset: `websocket` if `OPENDOTA_STREAM_URL` is set (a deployment of the original keeps its behaviour), else `opendota-logs`; the start-up log says which and why. See [Sources](sources.md)",
		value: func(c Config) string { return c.Source }},
	{Name: "OPENDOTA_STREAM_URL", Default: OriginalStreamURL, Sources: onlyWebSocket, Help: "the match stream, `ws://` or `wss://` (`SOURCE=websocket`); set without `SOURCE`, it picks `websocket`. The default is the original's, and names no real stream",
		value: func(c Config) string { return redact.URL(c.Stream.URL) }},
	{Name: "STREAM_CONNECT_TIMEOUT", Default: durationText(wsstream.DefaultConnectTimeout), Sources: liveSources, Help: "dial and opening-handshake timeout (`websocket`, and `opendota-logs`)",
		value: func(c Config) string { return durationText(c.Stream.ConnectTimeout) }},
	{Name: "STREAM_PING_INTERVAL", Default: durationText(wsstream.DefaultPingInterval), Sources: onlyWebSocket, Help: "how often the stream is pinged",
		value: func(c Config) string { return durationText(c.Stream.PingInterval) }},
	{Name: "STREAM_PONG_TIMEOUT", Default: durationText(wsstream.DefaultPongTimeout), Sources: onlyWebSocket, Help: "an unanswered ping after this long replaces the connection",
		value: func(c Config) string { return durationText(c.Stream.PongTimeout) }},
	{Name: "STREAM_MAX_FRAME_BYTES", Default: itoa(wsstream.DefaultMaxFrameBytes), Sources: onlyWebSocket, Help: "larger frames are skipped and counted as `too_large`",
		value: func(c Config) string { return itoa(c.Stream.MaxFrameBytes) }},
	{Name: "STREAM_BACKOFF_MIN", Default: durationText(wsstream.DefaultBackoffMin), Sources: liveSources, Help: "first reconnect delay (`websocket`, and `opendota-logs`)",
		value: func(c Config) string { return durationText(c.Stream.BackoffMin) }},
	{Name: "STREAM_BACKOFF_MAX", Default: durationText(wsstream.DefaultBackoffMax), Sources: liveSources, Help: "largest reconnect delay (`websocket`, and `opendota-logs`)",
		value: func(c Config) string { return durationText(c.Stream.BackoffMax) }},
	{Name: "STREAM_HEALTHY_AFTER", Default: durationText(wsstream.DefaultHealthyAfter), Sources: liveSources, Help: "a connection that lasted this long resets the backoff (`websocket`, and `opendota-logs`)",
		value: func(c Config) string { return durationText(c.Stream.HealthyAfter) }},
	{Name: "STREAM_TLS_CA_FILE", Sources: onlyWebSocket, Help: "PEM file of extra CAs to trust for wss:// (the system's roots are always trusted)",
		value: func(c Config) string { return c.Stream.TLSCAFile }},
	{Name: "OPENDOTA_LOGS_URL", Default: odlogs.DefaultURL, Sources: onlyLogs, Help: "Server-Sent Events stream of OpenDota's log lines (`SOURCE=opendota-logs`)",
		value: func(c Config) string { return redact.URL(c.Logs.URL) }},
	{Name: "OPENDOTA_LOGS_CHANNELS", Default: odlogs.ChannelAPI, Sources: onlyLogs, Help: "lines that yield match IDs: `api` (new matches from the Steam API), `parsed` (parsed matches), or `api,parsed`",
		value: func(c Config) string { return strings.Join(c.Logs.Channels, ",") }},
	{Name: "OPENDOTA_LOGS_IDLE_TIMEOUT", Default: durationText(odlogs.DefaultIdleTimeout), Sources: onlyLogs, Help: "a log stream silent this long is reconnected",
		value: func(c Config) string { return durationText(c.Logs.IdleTimeout) }},
	{Name: "OPENDOTA_LOGS_STALE_AFTER", Default: durationText(odlogs.DefaultStaleAfter), Sources: onlyLogs, Help: "readiness reports the log stream down while it announces no match this long, though connected: OpenDota's inserter can stall while its other channels go on. At about 12 matches a second, announced a Steam page (about 100) every 8 s or so, 2 minutes is some 1,400 matches missing, never a lull; `0` never",
		value: func(c Config) string { return offText(c.Logs.StaleAfter) }},
	{Name: "STEAM_API_URL", Default: steamseq.DefaultBaseURL, Sources: onlySteam, Help: "Steam Web API base URL (`SOURCE=steam-sequence`)",
		value: func(c Config) string { return redact.URL(c.Steam.BaseURL) }},
	{Name: "STEAM_API_KEY", Sources: onlySteam, Help: "Steam Web API key, or several separated by commas (each is paced on its own), required with `SOURCE=steam-sequence`; never logged", Secret: true,
		value: func(c Config) string { return maskKeys(c.Steam.Keys) }},
	{Name: "STEAM_MATCHES_TOPIC", Sources: onlySteam, Help: "topic that receives each match's whole object as Steam served it, in the same transactions as `KAFKA_PUBLISH_TOPIC` (`SOURCE=steam-sequence`); empty writes none",
		value: func(c Config) string { return c.SteamTopics.Matches }},
	{Name: "STEAM_CURSOR_TOPIC", Sources: onlySteam, Help: "compacted topic of the scanner's committed positions, written in each page's transaction (`SOURCE=steam-sequence`); empty means `KAFKA_PUBLISH_TOPIC` followed by `-steam-cursor`",
		value: func(c Config) string { return c.SteamTopics.Cursor }},
	{Name: "STEAM_START_SEQ_NUM", Default: "0", Sources: onlySteam, Help: "`match_seq_num` to start at when the topic holds none; `0` starts at the newest match",
		value: func(c Config) string { return itoa(c.Steam.StartSeqNum) }},
	{Name: "STEAM_IDLE_WAIT", Default: durationText(steamseq.DefaultIdleWait), Sources: onlySteam, Help: "wait after a page under 90% full (the scanner has caught up)",
		value: func(c Config) string { return durationText(c.Steam.IdleWait) }},
	{Name: "STEAM_KEY_INTERVAL", Default: durationText(steamseq.DefaultKeyInterval), Sources: onlySteam, Help: "time between two calls with one key that each key starts at; it then adapts to Steam's refusals",
		value: func(c Config) string { return offText(c.Steam.KeyInterval) }},
	{Name: "STEAM_MIN_INTERVAL", Default: durationText(steamseq.DefaultMinInterval), Sources: onlySteam, Help: "floor of a key's adaptive interval: the least time between two calls with one key",
		value: func(c Config) string { return offText(c.Steam.MinInterval) }},
	{Name: "STEAM_RESCAN_BEHIND", Default: itoa(steamseq.DefaultRescanBehind), Sources: onlySteam, Help: "seq numbers a second cursor trails the first by, to find matches Steam lists late; `0` turns the rescan off",
		value: func(c Config) string { return offText(c.Steam.RescanBehind) }},
	{Name: "STEAM_RESCAN_DELAY", Default: durationText(steamseq.DefaultRescanDelay), Sources: onlySteam, Help: "the rescan also reads a seq this long after the first cursor passed it, if that comes first; `0` leaves only `STEAM_RESCAN_BEHIND`",
		value: func(c Config) string { return offText(c.Steam.RescanDelay) }},
	{Name: "STEAM_SKIP_AFTER", Default: durationText(steamseq.DefaultSkipAfter), Sources: onlySteam, Help: "a match Steam keeps failing to serve (status 2) is stepped past after this long and 3 tries, counted, and read again by the rescan",
		value: func(c Config) string { return offText(c.Steam.SkipAfter) }},
	{Name: "STEAM_HEAD_INTERVAL", Default: durationText(steamseq.DefaultHeadInterval), Sources: onlySteam, Help: "how often the newest `match_seq_num` is fetched to report the lag; `0` disables",
		value: func(c Config) string { return offText(c.Steam.HeadInterval) }},
	{Name: "STEAM_KEY_DAILY_CALLS", Default: itoa(steamseq.DefaultDailyCalls), Sources: onlySteam, Help: "calls a key may make in a UTC day (the cap of Steam's Web API terms); a key that reaches it rests until 00:00 UTC. Counted by this process; `0` no cap",
		value: func(c Config) string { return offText(c.Steam.DailyCalls) }},
	{Name: "STEAM_BACKFILL_FROM", Sources: onlySteam, Help: "first `match_seq_num` of a range of the past to read (`SOURCE=steam-sequence`), or a date such as `2024-01-01` (UTC), turned into a seq by a search over the sequence's start times; with `STEAM_BACKFILL_TO`. See [Backfill](backfill.md)",
		value: func(c Config) string { return c.Backfill.From.String() }},
	{Name: "STEAM_BACKFILL_TO", Sources: onlySteam, Help: "end of the backfill's range, excluded: a `match_seq_num` or a date (the range ends before its first match)",
		value: func(c Config) string { return c.Backfill.To.String() }},
	{Name: "STEAM_BACKFILL_SHARDS", Default: itoa(backfill.DefaultShards), Sources: onlySteam, Help: "equal shards the backfill's range is split into; the replicas of a fleet share them (`FLEET_GROUP`), a replica alone scans them all. Each is written exactly once, through a transactional writer of its own",
		value: func(c Config) string { return itoa(c.Backfill.Shards) }},
	{Name: "STEAM_FORWARD_SCAN", Default: "true", Sources: onlySteam, Help: "run the forward scan (from `STEAM_START_SEQ_NUM` or the last cursor, for ever) beside the backfill; it has the keys first. `false` runs the backfill alone, as a fleet of its own with its own keys",
		value: func(c Config) string { return strconv.FormatBool(c.Backfill.Forward) }},
}

// source picks SOURCE, and says why: as set, else the WebSocket stream if
// OPENDOTA_STREAM_URL is set (a deployment of the original keeps its
// behaviour), else OpenDota's live log feed, which exists (the original's
// default stream does not).
func (r *reader) source() (source, reason string) {
	switch {
	case r.set("SOURCE") != "":
		source, reason = r.oneOf("SOURCE", false, Sources...), "SOURCE is set"
	case r.set("OPENDOTA_STREAM_URL") != "":
		source, reason = SourceWebSocket, "SOURCE is not set and OPENDOTA_STREAM_URL is: the original service's WebSocket stream"
	default:
		source, reason = r.str("SOURCE"), "SOURCE and OPENDOTA_STREAM_URL are not set: OpenDota's live log feed (the original's default stream does not exist)"
	}
	return source, reason
}

// stream reads the WebSocket source's settings.
func (r *reader) stream() wsstream.Config {
	s := wsstream.Config{
		URL:            r.str("OPENDOTA_STREAM_URL"),
		ConnectTimeout: r.duration("STREAM_CONNECT_TIMEOUT", time.Millisecond),
		PingInterval:   r.duration("STREAM_PING_INTERVAL", time.Millisecond),
		PongTimeout:    r.duration("STREAM_PONG_TIMEOUT", time.Millisecond),
		MaxFrameBytes:  r.integer("STREAM_MAX_FRAME_BYTES", 64, 64<<20),
		BackoffMin:     r.duration("STREAM_BACKOFF_MIN", time.Millisecond),
		BackoffMax:     r.duration("STREAM_BACKOFF_MAX", time.Millisecond),
		HealthyAfter:   r.duration("STREAM_HEALTHY_AFTER", time.Millisecond),
		TLSCAFile:      r.file("STREAM_TLS_CA_FILE"),
	}
	s.UnreachableHint = "check OPENDOTA_STREAM_URL; SOURCE=opendota-logs reads OpenDota's live log feed"
	if s.URL == OriginalStreamURL {
		s.UnreachableHint = OriginalStreamURL + " is the original service's default and no such stream exists: " +
			"unset OPENDOTA_STREAM_URL and SOURCE, or set SOURCE=opendota-logs, to read OpenDota's live log feed"
	}
	if err := wsstream.CheckURL(s.URL); err != nil {
		r.fail("OPENDOTA_STREAM_URL", redact.URL(s.URL), "want a ws:// or wss:// URL with a host")
	}
	return s
}

// logs reads the OpenDota log feed's settings; the connection's come
// from the STREAM_* settings the WebSocket source reads too.
func (r *reader) logs(source string, stream wsstream.Config) odlogs.Config {
	l := odlogs.Config{
		URL:            r.str("OPENDOTA_LOGS_URL"),
		Channels:       r.list("OPENDOTA_LOGS_CHANNELS"),
		ConnectTimeout: stream.ConnectTimeout,
		IdleTimeout:    r.duration("OPENDOTA_LOGS_IDLE_TIMEOUT", time.Second),
		StaleAfter:     orOff(r.duration("OPENDOTA_LOGS_STALE_AFTER", time.Second)),
		BackoffMin:     stream.BackoffMin,
		BackoffMax:     stream.BackoffMax,
		HealthyAfter:   stream.HealthyAfter,
	}
	if err := l.Validate(); err != nil && source == SourceOpenDotaLogs {
		r.fail("OPENDOTA_LOGS_URL", redact.URL(l.URL), redact.ForURL(l.URL).String(err.Error()))
	}
	return l
}

// steam reads the Steam scanner's settings; the key and the URL are
// checked only when the scanner runs.
func (r *reader) steam(source string) steamseq.Config {
	s := steamseq.Config{
		BaseURL:      r.str("STEAM_API_URL"),
		Keys:         r.keys("STEAM_API_KEY"),
		StartSeqNum:  int64(r.integer("STEAM_START_SEQ_NUM", 0, math.MaxInt)),
		IdleWait:     r.duration("STEAM_IDLE_WAIT", time.Millisecond),
		KeyInterval:  orOff(r.duration("STEAM_KEY_INTERVAL", time.Millisecond)),
		MinInterval:  orOff(r.duration("STEAM_MIN_INTERVAL", time.Millisecond)),
		RescanBehind: orOff(int64(r.integer("STEAM_RESCAN_BEHIND", 0, math.MaxInt))),
		RescanDelay:  orOff(r.duration("STEAM_RESCAN_DELAY", time.Second)),
		SkipAfter:    orOff(r.duration("STEAM_SKIP_AFTER", time.Millisecond)),
		HeadInterval: orOff(r.duration("STEAM_HEAD_INTERVAL", time.Second)),
		DailyCalls:   orOff(r.integer("STEAM_KEY_DAILY_CALLS", 0, math.MaxInt32)),
	}
	if source != SourceSteamSequence {
		return s
	}
	if len(s.Keys) == 0 {
		r.fail("STEAM_API_KEY", "", "required with SOURCE=steam-sequence")
	}
	if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail("STEAM_API_URL", redact.URL(s.BaseURL), "want an http:// or https:// URL with a host")
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		r.fail("STEAM_API_URL", redact.URL(s.BaseURL), "want the API's base URL alone, without user info, query or fragment (the keys go in STEAM_API_KEY)")
	}
	return s
}

// steamTopics reads the topics a Steam scan writes besides ids, each a
// topic of its own.
func (r *reader) steamTopics(ids string) SteamTopics {
	t := SteamTopics{Matches: r.topic("STEAM_MATCHES_TOPIC"), Cursor: r.topic("STEAM_CURSOR_TOPIC")}
	if t.Cursor == "" {
		t.Cursor = ids + "-steam-cursor"
	}
	if m := t.Matches; m == ids || m == t.Cursor && m != "" {
		r.fail("STEAM_MATCHES_TOPIC", m, "want a topic of its own, not KAFKA_PUBLISH_TOPIC or STEAM_CURSOR_TOPIC")
	}
	if t.Cursor == ids {
		r.fail("STEAM_CURSOR_TOPIC", t.Cursor, "want a topic of its own, not KAFKA_PUBLISH_TOPIC")
	}
	return t
}

// backfill reads the backfill's range, its shards and whether the forward
// scan runs beside it.
func (r *reader) backfill(source string) backfill.Config {
	c := backfill.Config{
		Shards:  r.integer("STEAM_BACKFILL_SHARDS", 1, backfill.MaxShards),
		Forward: r.boolean("STEAM_FORWARD_SCAN"),
	}
	bound := func(name string) backfill.Bound {
		raw := r.set(name)
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
			r.fail("STEAM_FORWARD_SCAN", "false", "false leaves nothing to do without a backfill (STEAM_BACKFILL_FROM and STEAM_BACKFILL_TO)")
		}
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
