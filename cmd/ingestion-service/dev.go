package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/dota-data/ingestion-service/internal/config"
	"github.com/dota-data/ingestion-service/internal/simstream"
)

// dev runs the real service against an in-process Kafka-protocol broker and
// a simulated match stream, both on loopback.
func dev(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stdout)
	kafkaPort := fs.Int("kafka-port", 9092, "port of the in-process Kafka broker on 127.0.0.1")
	rate := fs.Float64("rate", 20, "simulated matches per second")
	badEvery := fs.Int("bad-every", 50, "one simulated frame in this many is malformed (negative: none)")
	partitions := fs.Int("partitions", 3, "partitions of the topic")
	apiPort := fs.Int("api-port", 0, "port of the HTTP API on API_HOST (default API_PORT, 8000)")
	simulated := fs.String("source", config.SourceWebSocket, "the simulated source: websocket (a match stream in the original's frame shape), opendota-logs (OpenDota's live log feed, its routes and line shapes) or steam-sequence (Steam's match sequence: the forward scan, and a backfill of the simulated past)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	// Before anything starts: it may execute the binary again.
	slackErr := tuneRuntime(cfg, getenv)

	broker, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort("127.0.0.1", strconv.Itoa(*kafkaPort)))
		}),
		kfake.SeedTopics(int32(*partitions), cfg.Kafka.Topic),
	)
	if err != nil {
		return fmt.Errorf("start the in-process Kafka broker on 127.0.0.1:%d (use -kafka-port to pick another): %w", *kafkaPort, err)
	}
	defer broker.Close()

	simOpts := simstream.Options{Rate: *rate, BadEvery: *badEvery}
	var (
		sim   http.Handler
		sent  func() string // what the simulated source sent, for the last line
		what  string
		steam *devSteam
	)
	switch *simulated {
	case config.SourceWebSocket:
		ws := simstream.New(simOpts)
		sim, what = ws, "match stream (simulated WebSocket)"
		sent = func() string {
			all, bad := ws.Sent()
			return fmt.Sprintf("the simulated stream sent %d frames (%d malformed)", all, bad)
		}
	case config.SourceOpenDotaLogs:
		logs := simstream.NewLogs(simOpts)
		sim, what = logs, "OpenDota log feed (simulated)"
		sent = func() string {
			matches, _ := logs.Sent()
			again, older := logs.Repeated()
			return fmt.Sprintf("the simulated log feed announced %d new matches, %d again (retried inserts and backfills of matches it announced before: the service's duplicates) "+
				"and %d older ones it had not announced (backfills, as OpenDota's: new to the service, which publishes them)", matches, again, older)
		}
	case config.SourceSteamSequence:
		steam = newDevSteam(ctx, *rate)
		sim, what = steam.fake, "Steam Web API (simulated)"
		sent = func() string {
			return fmt.Sprintf("the simulated Steam sequence held %d matches, and answered %d calls", steam.fake.Head()-steam.first+1, len(steam.fake.Calls()))
		}
		defer steam.stop()
	default:
		return &usageError{fmt.Sprintf("-source %q: want %s, %s or %s", *simulated, config.SourceWebSocket, config.SourceOpenDotaLogs, config.SourceSteamSequence)}
	}
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	simSrv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = simSrv.Serve(simLn) }()
	defer simSrv.Close()

	cfg.Kafka.Brokers = broker.ListenAddrs()
	cfg.Source = *simulated
	cfg.SourceReason = "dev mode: a simulated " + *simulated + " source on loopback (-source picks websocket, opendota-logs or steam-sequence)"
	simURL := "ws://" + simLn.Addr().String() + "/matches"
	cfg.Stream.URL = simURL
	var extra string
	switch cfg.Source {
	case config.SourceOpenDotaLogs:
		simURL = "http://" + simLn.Addr().String() + "/logs"
		cfg.Logs.URL = simURL
	case config.SourceSteamSequence:
		simURL = "http://" + simLn.Addr().String()
		if extra, err = devSteamConfig(&cfg, simURL, steam.first, steam.fake.Head(), broker, int32(*partitions)); err != nil {
			return err
		}
	}
	if !cfg.IsSet("LOG_SUMMARY_INTERVAL") {
		cfg.Log.SummaryInterval = 5 * time.Second
	}
	if !cfg.IsSet("API_HOST") {
		cfg.API.Host = "127.0.0.1"
	}
	if !cfg.IsSet("SPOOL_DIR") {
		// The in-process broker forgets everything at exit, so a spool kept
		// for the next run would only replay into a new, empty topic.
		dir, err := os.MkdirTemp("", "ingestion-dev-spool-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Spool.Dir = dir
	}
	if *apiPort != 0 {
		cfg.API.Port = *apiPort
	}
	ln, err := net.Listen("tcp", cfg.API.Addr())
	if err != nil {
		return fmt.Errorf("the HTTP API cannot listen on %s (use -api-port to pick another port): %w", cfg.API.Addr(), err)
	}
	ln.Close()
	feed := fmt.Sprintf("%g matches/s, one in %d malformed", *rate, *badEvery)
	if cfg.Source == config.SourceSteamSequence {
		feed = fmt.Sprintf("%g new matches/s", *rate)
	}
	fmt.Fprintf(stdout, `ingestion-service dev mode
  Kafka (in-process broker): %[1]s  topic %[2]s (%[3]d partitions)
  %-26[7]s %[4]s  %[5]s
  HTTP API:                  http://%[6]s/api/v1/health  /api/v1/ready  /metrics  /docs
Read the topic with any Kafka client while this runs, for example:
  kcat -b %[1]s -t %[2]s -C -f '%%k %%s\n'
  kafka-console-consumer.sh --bootstrap-server %[1]s --topic %[2]s --from-beginning --property print.key=true
%[8]sPress Ctrl-C to stop.

`, cfg.Kafka.Brokers[0], cfg.Kafka.Topic, *partitions, simURL, feed, cfg.API.Addr(), what+":", extra)

	err = serve(ctx, cfg, stdout, slackErr)
	fmt.Fprintf(stdout, "dev mode: %s\n", sent())
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
