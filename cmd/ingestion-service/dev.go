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

// devFlags are dev's command line.
type devFlags struct {
	kafkaPort, badEvery, partitions, apiPort int
	rate                                     float64
	source                                   string
}

func parseDevFlags(args []string, stdout io.Writer) (devFlags, error) {
	var f devFlags
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.IntVar(&f.kafkaPort, "kafka-port", 9092, "port of the in-process Kafka broker on 127.0.0.1")
	fs.Float64Var(&f.rate, "rate", 20, "simulated matches per second")
	fs.IntVar(&f.badEvery, "bad-every", 50, "one simulated frame in this many is malformed (negative: none)")
	fs.IntVar(&f.partitions, "partitions", 3, "partitions of the topic")
	fs.IntVar(&f.apiPort, "api-port", 0, "port of the HTTP API on API_HOST (default API_PORT, 8000)")
	fs.StringVar(&f.source, "source", config.SourceWebSocket, "the simulated source: websocket (a match stream in the original's frame shape), opendota-logs (OpenDota's live log feed, its routes and line shapes) or steam-sequence (Steam's match sequence: the forward scan, and a backfill of the simulated past)")
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	switch f.source {
	case config.SourceWebSocket, config.SourceOpenDotaLogs, config.SourceSteamSequence:
		return f, nil
	}
	return f, &usageError{fmt.Sprintf("-source %q: want %s, %s or %s", f.source, config.SourceWebSocket, config.SourceOpenDotaLogs, config.SourceSteamSequence)}
}

// dev runs the real service against an in-process Kafka-protocol broker and
// a simulated source, both on loopback.
func dev(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	f, err := parseDevFlags(args, stdout)
	if err != nil {
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
			return net.Listen(network, net.JoinHostPort("127.0.0.1", strconv.Itoa(f.kafkaPort)))
		}),
		kfake.SeedTopics(int32(f.partitions), cfg.Kafka.Topic),
	)
	if err != nil {
		return fmt.Errorf("start the in-process Kafka broker on 127.0.0.1:%d (use -kafka-port to pick another): %w", f.kafkaPort, err)
	}
	defer broker.Close()
	sim := newSimulation(ctx, f)
	defer sim.stop()
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	simSrv := &http.Server{Handler: sim.handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = simSrv.Serve(simLn) }()
	defer simSrv.Close()

	cfg.Kafka.Brokers = broker.ListenAddrs()
	simURL, extra, err := sim.pointAt(&cfg, simLn.Addr().String(), broker, int32(f.partitions))
	if err != nil {
		return err
	}
	cleanup, err := devDefaults(&cfg, f.apiPort)
	if err != nil {
		return err
	}
	defer cleanup()
	feed := fmt.Sprintf("%g matches/s, one in %d malformed", f.rate, f.badEvery)
	if cfg.Source == config.SourceSteamSequence {
		feed = fmt.Sprintf("%g new matches/s", f.rate)
	}
	fmt.Fprintf(stdout, `ingestion-service dev mode
  Kafka (in-process broker): %[1]s  topic %[2]s (%[3]d partitions)
  %-26[7]s %[4]s  %[5]s
  HTTP API:                  http://%[6]s/api/v1/health  /api/v1/ready  /metrics  /docs
Read the topic with any Kafka client while this runs, for example:
  kcat -b %[1]s -t %[2]s -C -f '%%k %%s\n'
  kafka-console-consumer.sh --bootstrap-server %[1]s --topic %[2]s --from-beginning --property print.key=true
%[8]sPress Ctrl-C to stop.

`, cfg.Kafka.Brokers[0], cfg.Kafka.Topic, f.partitions, simURL, feed, cfg.API.Addr(), sim.what+":", extra)

	err = serve(ctx, cfg, stdout, slackErr)
	fmt.Fprintf(stdout, "dev mode: %s\n", sim.sent())
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// simulation is dev's simulated source.
type simulation struct {
	source  string
	handler http.Handler
	what    string        // what it is, for the banner
	sent    func() string // what it sent, for the last line
	steam   *devSteam     // with -source steam-sequence
}

func newSimulation(ctx context.Context, f devFlags) *simulation {
	opts := simstream.Options{Rate: f.rate, BadEvery: f.badEvery}
	sim := &simulation{source: f.source}
	switch f.source {
	case config.SourceOpenDotaLogs:
		logs := simstream.NewLogs(opts)
		sim.handler, sim.what = logs, "OpenDota log feed (simulated)"
		sim.sent = func() string {
			matches, _ := logs.Sent()
			again, older := logs.Repeated()
			return fmt.Sprintf("the simulated log feed announced %d new matches, %d again (retried inserts and backfills of matches it announced before: the service's duplicates) "+
				"and %d older ones it had not announced (backfills, as OpenDota's: new to the service, which publishes them)", matches, again, older)
		}
	case config.SourceSteamSequence:
		steam := newDevSteam(ctx, f.rate)
		sim.steam, sim.handler, sim.what = steam, steam.fake, "Steam Web API (simulated)"
		sim.sent = func() string {
			return fmt.Sprintf("the simulated Steam sequence held %d matches, and answered %d calls", steam.fake.Head()-steam.first+1, len(steam.fake.Calls()))
		}
	default:
		ws := simstream.New(opts)
		sim.handler, sim.what = ws, "match stream (simulated WebSocket)"
		sim.sent = func() string {
			all, bad := ws.Sent()
			return fmt.Sprintf("the simulated stream sent %d frames (%d malformed)", all, bad)
		}
	}
	return sim
}

func (s *simulation) stop() {
	if s.steam != nil {
		s.steam.stop()
	}
}

// pointAt points cfg's source at the simulation served at addr, and
// returns its URL and what more to print about it.
func (s *simulation) pointAt(cfg *config.Config, addr string, broker *kfake.Cluster, partitions int32) (url, extra string, err error) {
	cfg.Source = s.source
	cfg.SourceReason = "dev mode: a simulated " + s.source + " source on loopback (-source picks websocket, opendota-logs or steam-sequence)"
	cfg.Ignored = nil // the settings dev sets are its own
	url = "ws://" + addr + "/matches"
	cfg.Stream.URL = url
	switch s.source {
	case config.SourceOpenDotaLogs:
		url = "http://" + addr + "/logs"
		cfg.Logs.URL = url
	case config.SourceSteamSequence:
		url = "http://" + addr
		if extra, err = devSteamConfig(cfg, url, s.steam.first, s.steam.fake.Head(), broker, partitions); err != nil {
			return "", "", err
		}
	}
	return url, extra, nil
}

// devDefaults gives the settings left unset dev's defaults: progress
// every 5 s, the API on loopback (or on -api-port), and a spool that goes
// with the in-process broker. It checks that the API's port is free, and
// returns what removes the spool.
func devDefaults(cfg *config.Config, apiPort int) (cleanup func(), err error) {
	cleanup = func() {}
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
			return cleanup, err
		}
		cfg.Spool.Dir = dir
		cleanup = func() { os.RemoveAll(dir) }
	}
	if apiPort != 0 {
		cfg.API.Port = apiPort
	}
	ln, err := net.Listen("tcp", cfg.API.Addr())
	if err != nil {
		cleanup()
		return func() {}, fmt.Errorf("the HTTP API cannot listen on %s (use -api-port to pick another port): %w", cfg.API.Addr(), err)
	}
	ln.Close()
	return cleanup, nil
}
