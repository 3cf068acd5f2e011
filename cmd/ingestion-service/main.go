// Command ingestion-service reads the live stream of finished Dota 2 match
// IDs, validates each one and publishes it to Kafka.
//
// Usage:
//
//	ingestion-service              run the service (settings from the environment and .env)
//	ingestion-service dev          run it against an in-process Kafka broker and a simulated stream
//	ingestion-service check        check the settings, then probe Kafka and the source
//	ingestion-service backfill status  print where the backfill stands
//	ingestion-service healthcheck  exit 0 if the local service answers /api/v1/health
//	ingestion-service version      print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/dota-data/ingestion-service/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	reexecAllowed = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is a bad command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitCode reports err (unless the command has shown it already) and maps
// it to the process status: 0 on success, 2 for a bad command line or
// setting, 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelped) {
		return 0
	}
	if !errors.As(err, new(shown)) {
		fmt.Fprintln(stderr, "ingestion-service:", err)
	}
	var ce *config.Error
	var ue *usageError
	if errors.As(err, &ce) || errors.As(err, &ue) || errors.Is(err, errStrictWarnings) {
		return 2
	}
	return 1
}

// run is the whole program: it reads the command and settings, and runs
// until ctx ends (SIGINT or SIGTERM) or a fatal error.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	getenv := func(k string) string { v, _ := lookup(k); return v }
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(stdout)
		fs.Usage = func() {
			fmt.Fprint(stdout, "usage: ingestion-service [serve]\n\nRuns the service; settings come from the environment and .env (docs/configuration.md).\n")
		}
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return &usageError{fmt.Sprintf("serve takes no arguments, got %q\n%s", fs.Args(), usage)}
		}
		cfg, err := config.LoadLookup(lookup)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, tuneRuntime(cfg, getenv))
	case "dev":
		return dev(ctx, args, getenv, stdout)
	case "healthcheck":
		return healthcheck(ctx, args, getenv, stdout)
	case "check", "validate":
		return check(ctx, args, lookup, os.Environ(), stdout)
	case "backfill":
		return backfillCmd(ctx, args, lookup, stdout)
	case "version", "-v", "--version":
		_, err := fmt.Fprintln(stdout, buildVersion())
		return err
	case "help", "-h", "--help":
		_, err := fmt.Fprint(stdout, usage)
		return err
	}
	return &usageError{fmt.Sprintf("unknown command %q\n%s", cmd, usage)}
}

// errHelped is returned by parseFlags when -h or --help printed a
// command's usage: the command has nothing more to do.
var errHelped = errors.New("help printed")

// parseFlags parses args with fs. -h and --help print fs's usage to its
// output and return errHelped, which run turns into exit status 0; a bad
// flag is a usageError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return errHelped
	}
	if err != nil {
		return &usageError{err.Error()}
	}
	return nil
}

// buildVersion is the version set at build time with -ldflags, else the
// module version and VCS revision the Go toolchain recorded (go install
// ...@v1.2.3 gives v1.2.3; a build in a checkout gives its revision).
func buildVersion() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	return versionFrom(info)
}

// versionFrom is the module version in info, with the VCS revision
// (12 digits) and whether the tree was modified, when recorded.
func versionFrom(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = version
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" && !strings.Contains(v, rev[:min(len(rev), 12)]) {
		v += " (revision " + rev[:min(len(rev), 12)] + modified + ")"
	}
	return v
}

// reexecAllowed lets tuneRuntime execute the binary again to set the
// timer slack. Only main sets it: tests that call run in their own process
// must not replace it.
var reexecAllowed bool

// tuneRuntime sets the process up for the service: the timer slack
// (TIMER_SLACK, see setTimerSlack), which may execute the binary again
// before anything has started; a soft memory limit
// sized from the configuration, unless GOMEMLIMIT sets one; and one
// processor (GOMAXPROCS=1), unless GOMAXPROCS sets the count. The service
// is one pipeline whose goroutines hand every match on to each other: on
// one processor a hand-off is a switch on the same thread, where with more
// it wakes another thread, and those wake-ups are most of the CPU it uses
// at a live stream's rates. One processor carries several hundred
// thousand matches a second (docs/performance.md).
//
// It returns why the timer slack could not be set, if it could not, for
// serve to log.
func tuneRuntime(cfg config.Config, getenv func(string) string) (slackErr error) {
	if reexecAllowed {
		_, slackErr = setTimerSlack(cfg.TimerSlack, cfg.IsSet("TIMER_SLACK"))
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.MemoryLimit())
	}
	if getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	return slackErr
}

const usage = `usage: ingestion-service [command]

commands:
  serve        run the service (default); settings come from the environment and .env
  dev          run the service against an in-process Kafka broker on 127.0.0.1:9092
               and a simulated match stream; no Kafka or internet needed
  check        report every invalid setting and unknown variable, then probe Kafka and the
               source (-offline: the settings only); also "validate"
  backfill status
               print where the backfill of STEAM_BACKFILL_FROM to _TO stands, per shard and in
               total, from the cursor topic (-json for scripts)
  healthcheck  exit 0 if the local service answers /api/v1/health (on API_PROBE_PORT if set,
               else API_PORT)
  version      print the version (also -v, --version)
  help         print this (also -h, --help); every command takes -h too
`
