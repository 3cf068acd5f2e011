package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/backfill"
	"github.com/dota-data/ingestion-service/internal/config"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// The simulated Steam of dev mode: its past, its keys and their limit.
const (
	devSteamPast   = 40_000                 // matches before the forward scan's start: the backfill's range
	devSteamBehind = 2_000                  // the forward scan starts this far behind the head
	devSteamLimit  = 250 * time.Millisecond // each key's limit, as Steam answers 429 past it
	devSteamShards = 4
)

// devSteamKeys are the keys the simulated Steam accepts.
var devSteamKeys = []string{"dev-key-1", "dev-key-2"}

// devSteam is dev mode's simulated Steam: the tests' fake, as strict as
// Steam (each key limited, matches hidden, some listed late), whose head
// moves at the dev rate.
type devSteam struct {
	fake  *steamfake.Server
	first int64
	stop  func()
}

func newDevSteam(ctx context.Context, rate float64) *devSteam {
	fake := steamfake.New(steamfake.Options{
		Count: devSteamPast + devSteamBehind, Keys: devSteamKeys, RateInterval: devSteamLimit,
		HiddenEvery: 100, LateFraction: 0.03, LateBy: 300, Compact: true,
	})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { // the head moves at the dev rate
		defer close(done)
		every := time.Duration(float64(time.Second) / max(rate, 0.1))
		tick := time.NewTicker(max(every, 10*time.Millisecond))
		defer tick.Stop()
		per := max(int64(rate*tickSeconds(every)), 1)
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				fake.Advance(per)
			}
		}
	}()
	return &devSteam{fake: fake, first: fake.Matches()[0].SeqNum, stop: func() { cancel(); <-done }}
}

// tickSeconds is the ticker's period in seconds: at least 10 ms.
func tickSeconds(every time.Duration) float64 { return max(every, 10*time.Millisecond).Seconds() }

// devSteamConfig points cfg at the simulated Steam at url: the forward
// scan from a little behind its head, a backfill of its past in
// devSteamShards shards, and the matches topic, created on broker. It
// returns what to print about them.
func devSteamConfig(cfg *config.Config, url string, first, head int64, broker *kfake.Cluster, partitions int32) (string, error) {
	cfg.Steam.BaseURL = url
	cfg.Steam.Keys = devSteamKeys
	cfg.Steam.KeyInterval = 2 * devSteamLimit
	cfg.Steam.MinInterval = devSteamLimit / 4
	cfg.Steam.IdleWait = time.Second
	start := head - devSteamBehind
	cfg.Steam.StartSeqNum = start
	if !cfg.IsSet("STEAM_BACKFILL_FROM") && !cfg.IsSet("STEAM_BACKFILL_TO") {
		cfg.Backfill = backfill.Config{From: backfill.Bound{Seq: first}, To: backfill.Bound{Seq: start}, Shards: devSteamShards, Forward: true}
	}
	if cfg.SteamTopics.Matches == "" {
		cfg.SteamTopics.Matches = cfg.Kafka.Topic + "_objects"
	}
	if err := createDevTopic(broker, cfg.SteamTopics.Matches, partitions); err != nil {
		return "", err
	}
	b := cfg.Kafka.Brokers[0]
	var text strings.Builder
	fmt.Fprintf(&text, `  Steam keys (simulated):    %[1]s, each allowed a call per %[2]s (429 past it, as Steam does)
  Forward scan:              from seq %[3]d, %[4]d behind the head, for ever
  Backfill:                  seqs %[5]d to %[3]d in %[6]d shards, written once each
The matches as Steam served them are in %[7]s; read both topics as committed data:
  kcat -b %[8]s -t %[9]s -C -X isolation.level=read_committed -f '%%k %%s\n'
  kcat -b %[8]s -t %[7]s -C -X isolation.level=read_committed -f '%%k %%S bytes\n'
Watch the backfill fill up (another terminal):
  KAFKA_BOOTSTRAP_SERVERS=%[8]s KAFKA_PUBLISH_TOPIC=%[9]s SOURCE=steam-sequence STEAM_API_KEY=dev \
  STEAM_BACKFILL_FROM=%[10]s STEAM_BACKFILL_TO=%[11]s STEAM_BACKFILL_SHARDS=%[12]d ingestion-service backfill status
`, strings.Join(devSteamKeys, ", "), devSteamLimit, start, devSteamBehind, first, devSteamShards, cfg.SteamTopics.Matches,
		b, cfg.Kafka.Topic, cfg.Backfill.From, cfg.Backfill.To, cfg.Backfill.Shards)
	return text.String(), nil
}

// createDevTopic creates topic on the in-process broker.
func createDevTopic(broker *kfake.Cluster, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create the dev topic %s: %w", topic, err)
	}
	return nil
}
