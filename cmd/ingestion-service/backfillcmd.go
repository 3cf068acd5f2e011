package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/config"
)

const backfillUsage = `usage: ingestion-service backfill status [-json] [-timeout 30s]

Reads the cursor topic (STEAM_CURSOR_TOPIC) and prints where the backfill of
STEAM_BACKFILL_FROM to STEAM_BACKFILL_TO stands: per shard and in total, the
seqs done of the range, the matches written, the rate over the last minutes,
the time to finish at that rate, the replica that committed the shard's last
page, and the seqs skipped. A progress bar on a terminal, plain lines
otherwise, JSON with -json. Settings come from the environment and .env, as
for serve. Exit status 0, 2 for invalid settings, 1 if Kafka cannot be read.
`

// backfillCmd runs `backfill status`.
func backfillCmd(ctx context.Context, args []string, lookup func(string) (string, bool), stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		_, err := fmt.Fprint(stdout, backfillUsage)
		if len(args) == 0 {
			return &usageError{"backfill needs a command: status"}
		}
		return errors.Join(err, errHelped)
	}
	if args[0] != "status" {
		return &usageError{fmt.Sprintf("unknown backfill command %q\n%s", args[0], backfillUsage)}
	}
	fs := flag.NewFlagSet("backfill status", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { fmt.Fprint(stdout, backfillUsage) }
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	timeout := fs.Duration("timeout", 30*time.Second, "give up reading Kafka after this long")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := config.LoadLookup(lookup)
	if err != nil {
		return err
	}
	if !cfg.Backfill.Enabled() || cfg.Source != config.SourceSteamSequence {
		return &config.Error{Var: "STEAM_BACKFILL_FROM", Reason: "no backfill is configured: set SOURCE=steam-sequence, STEAM_BACKFILL_FROM and STEAM_BACKFILL_TO as the service has them"}
	}
	rctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	topics := steamTopics(cfg)
	rng, ok, err := backfill.ReadRange(rctx, cfg.Backfill, cfg.Kafka, topics)
	if err != nil {
		return fmt.Errorf("read the backfill's range: %w", err)
	}
	if !ok {
		msg := fmt.Sprintf("The range %s to %s has not been turned into seqs yet: no replica has started this backfill.\n", cfg.Backfill.From, cfg.Backfill.To)
		if *asJSON {
			msg = `{"started":false}` + "\n"
		}
		_, err := io.WriteString(stdout, msg)
		return err
	}
	shards := backfill.Split(rng, cfg.Backfill.Shards)
	p, err := backfill.Read(rctx, cfg.Kafka, topics, shards)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	fmt.Fprintf(stdout, "Backfill of %s to %s: seqs %s in %d shards, to %s (cursors in %s)\n",
		cfg.Backfill.From, cfg.Backfill.To, rng, len(shards), cfg.Kafka.Topic, topics.Cursor)
	return backfill.WriteText(stdout, p, isTerminal(stdout), time.Now())
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
