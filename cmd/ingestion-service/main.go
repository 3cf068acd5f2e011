// Command ingestion-service reads the live stream of finished Dota 2 match
// IDs, validates each one and publishes it to Kafka.
//
// Usage:
//
//	ingestion-service              run the service (settings from the environment and .env)
//	ingestion-service dev          run it against an in-process Kafka broker and a simulated stream
//	ingestion-service healthcheck  exit 0 if the local service answers /api/v1/health
//	ingestion-service version      print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/dota-data/ingestion-service/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is a bad command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitCode reports err and maps it to the process status: 0 on success, 2
// for a bad command line or setting, 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "ingestion-service:", err)
	var ce *config.Error
	var ue *usageError
	if errors.As(err, &ce) || errors.As(err, &ue) {
		return 2
	}
	return 1
}

// run is the whole program: it reads the command and settings, and runs
// until ctx ends (SIGINT or SIGTERM) or a fatal error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := config.Load(getenv)
		if err != nil {
			return err
		}
		limitMemory(cfg, getenv)
		return serve(ctx, cfg, stdout)
	case "dev":
		return dev(ctx, args, getenv, stdout)
	case "healthcheck":
		return healthcheck(ctx, args, getenv, stdout)
	case "version":
		_, err := fmt.Fprintln(stdout, version)
		return err
	case "help", "-h", "--help":
		_, err := fmt.Fprint(stdout, usage)
		return err
	}
	return &usageError{fmt.Sprintf("unknown command %q\n%s", cmd, usage)}
}

// limitMemory gives the Go runtime a soft memory limit sized from the
// configuration, unless GOMEMLIMIT sets one.
func limitMemory(cfg config.Config, getenv func(string) string) {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.MemoryLimit())
	}
}

const usage = `usage: ingestion-service [command]

commands:
  serve        run the service (default); settings come from the environment and .env
  dev          run the service against an in-process Kafka broker on 127.0.0.1:9092
               and a simulated match stream; no Kafka or internet needed
  healthcheck  exit 0 if the service on API_PORT answers /api/v1/health
  version      print the version
`
