package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/dota-data/ingestion-service/internal/config"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/odlogs"
	"github.com/dota-data/ingestion-service/internal/redact"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/wsstream"
)

// errCheckFailed is returned when a probe of check failed: exit status 1.
var errCheckFailed = errors.New("check failed")

// check loads the configuration and reports every invalid setting, warns
// about variables that look like settings but are none, and, unless
// -offline, probes Kafka (the brokers, the topics, the right to write)
// and the source (it answers, and with what). It returns nil only if all
// is well: a config.Errors (exit status 2) for invalid settings,
// errCheckFailed (exit status 1) when a probe failed.
func check(ctx context.Context, args []string, lookup func(string) (string, bool), environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stdout)
	offline := fs.Bool("offline", false, "check the configuration only: do not connect to Kafka or the source")
	strict := fs.Bool("strict", false, "fail on warnings too (exit status 2): variables that look like settings but are none, settings the source does not read")
	timeout := fs.Duration("timeout", 10*time.Second, "give each probe this long")
	fs.Usage = func() {
		fmt.Fprint(stdout, "usage: ingestion-service check [-offline] [-strict] [-timeout 10s]\n\n"+
			"Loads the configuration as the service would, reports every invalid setting, every variable that\n"+
			"looks like a setting but is none and every setting the chosen source does not read, then probes\n"+
			"Kafka (every topic the service writes) and the source. Exit status 0 if all is well, 2 for invalid\n"+
			"settings (and, with -strict, for warnings), 1 if a probe failed.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("check takes no arguments, got %q", fs.Args())}
	}

	cfg, warnings, err := checkConfig(lookup, environ, stdout)
	if err != nil {
		return err
	}
	if *strict && warnings > 0 {
		fmt.Fprintf(stdout, "FAIL     %d warning(s), and -strict makes them fail\n", warnings)
		return shown{errStrictWarnings}
	}
	if *offline {
		return nil
	}
	r := &checkReport{out: stdout}
	kctx, cancel := context.WithTimeout(ctx, *timeout)
	r.probeKafka(kctx, cfg)
	cancel()
	sctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	where, text, err := probeSource(sctx, cfg)
	r.line("source "+cfg.Source+" at "+where, err, text)
	if r.failed {
		return errCheckFailed
	}
	return nil
}

// checkConfig loads the configuration as the service would and prints
// every invalid setting, or the warnings (variables that look like
// settings but are none, settings the source does not read) and what the
// configuration does. It returns how many warnings it printed.
func checkConfig(lookup func(string) (string, bool), environ []string, stdout io.Writer) (config.Config, int, error) {
	warnings := 0
	unknown, uerr := config.UnknownVars(environ)
	for _, u := range unknown {
		hint := "it is not a setting"
		if u.Suggestion != "" {
			hint = "did you mean " + u.Suggestion + "?"
		}
		fmt.Fprintf(stdout, "warning  %s (%s) is ignored: %s\n", u.Name, u.Where, hint)
		warnings++
	}
	cfg, err := config.LoadLookup(lookup)
	if err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintf(stdout, "FAIL     %s\n", e)
			}
		} else {
			fmt.Fprintf(stdout, "FAIL     %v\n", err)
		}
		return cfg, warnings, shown{err}
	}
	if uerr != nil {
		fmt.Fprintf(stdout, "FAIL     %v\n", uerr)
		return cfg, warnings, shown{uerr}
	}
	for _, name := range cfg.Ignored {
		fmt.Fprintf(stdout, "warning  %s is set, but SOURCE=%s does not read it\n", name, cfg.Source)
		warnings++
	}
	fmt.Fprintf(stdout, "ok       configuration: source %s (%s); writes %s at %s\n",
		cfg.Source, cfg.SourceReason, strings.Join(writtenTopics(cfg), ", "), strings.Join(cfg.Kafka.Brokers, ","))
	return cfg, warnings, nil
}

// checkReport prints check's probes, one line each.
type checkReport struct {
	out    io.Writer
	failed bool
}

func (r *checkReport) line(what string, err error, okText string) {
	if err != nil {
		r.failed = true
		fmt.Fprintf(r.out, "FAIL     %s: %v\n", what, err)
		return
	}
	fmt.Fprintf(r.out, "ok       %s: %s\n", what, okText)
}

// probeKafka asks the brokers for every topic the service writes, and
// whether it may write there.
func (r *checkReport) probeKafka(ctx context.Context, cfg config.Config) {
	brokers, probes, err := kafkasink.Probe(ctx, cfg.Kafka, writtenTopics(cfg)...)
	r.line("kafka", err, fmt.Sprintf("%d broker(s) answer", brokers))
	for _, p := range probes {
		var perr error
		switch {
		case errors.Is(p.Err, kerr.UnknownTopicOrPartition) && p.Topic == cursorTopic(cfg):
			fmt.Fprintf(r.out, "ok       topic %s: %v; the service creates it, compacted, with one partition (the Steam scans' cursors)\n", p.Topic, p.Err)
			continue
		case errors.Is(p.Err, kerr.UnknownTopicOrPartition) && cfg.Kafka.CreateTopic:
			fmt.Fprintf(r.out, "ok       topic %s: %v; the service creates it (KAFKA_CREATE_TOPIC=true)\n", p.Topic, p.Err)
			continue
		case p.Err != nil:
			perr = fmt.Errorf("%w (create it, or set KAFKA_CREATE_TOPIC=true)", p.Err)
		case p.Leaderless > 0:
			perr = fmt.Errorf("%d of %d partitions have no leader", p.Leaderless, p.Partitions)
		case p.CanWrite == "no":
			perr = errors.New("this client may not write to it (no WRITE permission)")
		}
		r.line("topic "+p.Topic, perr, fmt.Sprintf("%d partitions, all led; may write: %s", p.Partitions, p.CanWrite))
	}
}

// errStrictWarnings is check -strict's failure on warnings alone: exit
// status 2, as for an invalid setting.
var errStrictWarnings = errors.New("warnings, and -strict")

// shown is an error the command has already shown the user in full:
// exitCode gives its status without printing it again.
type shown struct{ error }

func (s shown) Unwrap() error { return s.error }

// writtenTopics lists every topic the service writes with cfg: the IDs
// topic, and for the Steam scans the matches topic (if set) and the
// cursor topic.
func writtenTopics(cfg config.Config) []string {
	topics := []string{cfg.Kafka.Topic}
	if cfg.Source == config.SourceSteamSequence {
		if cfg.SteamTopics.Matches != "" {
			topics = append(topics, cfg.SteamTopics.Matches)
		}
		topics = append(topics, cfg.SteamTopics.Cursor)
	}
	return topics
}

// cursorTopic is the topic of the Steam scans' cursors, which they create
// themselves; "" for the other sources.
func cursorTopic(cfg config.Config) string {
	if cfg.Source != config.SourceSteamSequence {
		return ""
	}
	return cfg.SteamTopics.Cursor
}

// probeSource connects to cfg's source once and says what it found.
func probeSource(ctx context.Context, cfg config.Config) (where, found string, err error) {
	quiet := slog.New(slog.DiscardHandler)
	switch cfg.Source {
	case config.SourceOpenDotaLogs:
		src, err := odlogs.New(cfg.Logs, quiet, prometheus.NewRegistry())
		if err != nil {
			return redact.URL(cfg.Logs.URL), "", err
		}
		where, seen, err := src.Probe(ctx)
		if err != nil {
			return where, "", err
		}
		if !seen {
			return where, "connected; no line within the timeout (quiet, or stalled: readiness tells once the service runs)", nil
		}
		return where, "connected; log lines flowing", nil
	case config.SourceSteamSequence:
		sc, err := steamseq.New(cfg.Steam, quiet, prometheus.NewRegistry())
		if err != nil {
			return cfg.Steam.BaseURL, "", err
		}
		var errs []error
		var heads []string
		for _, p := range sc.ProbeKeys(ctx) {
			if p.Err != nil {
				errs = append(errs, fmt.Errorf("key %d: %w", p.Key, p.Err))
				continue
			}
			heads = append(heads, fmt.Sprintf("key %d sees match_seq_num %d", p.Key, p.Head))
		}
		return cfg.Steam.BaseURL, strings.Join(heads, "; "), errors.Join(errs...)
	default:
		src, err := wsstream.New(cfg.Stream, quiet, prometheus.NewRegistry())
		if err != nil {
			return redact.URL(cfg.Stream.URL), "", err
		}
		where, err := src.Probe(ctx)
		if err != nil {
			if cfg.Stream.UnreachableHint != "" {
				err = fmt.Errorf("%w; %s", err, cfg.Stream.UnreachableHint)
			}
			return where, "", err
		}
		return where, "the WebSocket handshake succeeded", nil
	}
}
