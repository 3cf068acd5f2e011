package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/faultproxy"
	"github.com/dota-data/ingestion-service/internal/scrape"
	"github.com/dota-data/ingestion-service/internal/simstream"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// rig is what a soak runs: the Kafka cluster, the sources, the proxies in
// front of each, and the two instances of the service.
type rig struct {
	dir     string
	cluster *kfake.Cluster
	brokers []string
	kafka   []*faultproxy.Proxy // one per broker
	admin   *kadm.Client
	kcl     *kgo.Client

	stream      *simstream.Server
	streamSrv   *httptest.Server
	streamProxy *faultproxy.Proxy
	steam       *steamfake.Server
	steamSrv    *httptest.Server
	steamProxy  *faultproxy.Proxy
	steamFirst  int64
	stopGrowth  chan struct{}
	grown       chan struct{}

	streamTopic, idsTopic, objectsTopic string
	live, scan                          *instance
}

// instance is one running service.
type instance struct {
	name   string
	cmd    *exec.Cmd
	addr   string
	log    string // its log file
	exited chan struct{}
	err    error
}

// startRig builds the service and starts everything.
func startRig(ctx context.Context, o options) (_ *rig, err error) {
	r := &rig{stopGrowth: make(chan struct{}), grown: make(chan struct{})}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.dir, err = os.MkdirTemp("", "soak-"); err != nil {
		return nil, err
	}
	bin := filepath.Join(r.dir, "ingestion-service")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ingestion-service").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/ingestion-service (run from the module's root): %w\n%s", err, out)
	}
	if err := r.startKafka(ctx); err != nil {
		return nil, err
	}
	r.stream = simstream.New(simstream.Options{Rate: float64(o.rate), BadEvery: -1})
	r.streamSrv = httptest.NewServer(r.stream)
	if r.streamProxy, err = faultproxy.New("127.0.0.1:0", r.streamSrv.Listener.Addr().String()); err != nil {
		return nil, err
	}
	r.steam = steamfake.New(steamfake.Options{Count: 1000, HiddenEvery: 100, LateFraction: 0.02, LateBy: 600, Compact: true})
	r.steamSrv = httptest.NewServer(r.steam)
	if r.steamProxy, err = faultproxy.New("127.0.0.1:0", r.steamSrv.Listener.Addr().String()); err != nil {
		return nil, err
	}
	r.steamFirst = r.steam.Matches()[0].SeqNum
	go r.grow(o.steamRate)

	common := []string{"KAFKA_BOOTSTRAP_SERVERS=" + strings.Join(r.brokers, ","), "LOG_SUMMARY_INTERVAL=10s"}
	if r.live, err = r.startInstance("stream", bin, append(common,
		"KAFKA_PUBLISH_TOPIC="+r.streamTopic, "OPENDOTA_STREAM_URL=ws://"+r.streamProxy.Addr()+"/matches")); err != nil {
		return nil, err
	}
	if r.scan, err = r.startInstance("steam", bin, append(common,
		"SOURCE=steam-sequence", "STEAM_API_URL=http://"+r.steamProxy.Addr(), "STEAM_API_KEY="+steamfake.DefaultKey,
		"STEAM_START_SEQ_NUM="+strconv.FormatInt(r.steamFirst, 10), "STEAM_RESCAN_BEHIND=800", "STEAM_RESCAN_DELAY=30s",
		"KAFKA_PUBLISH_TOPIC="+r.idsTopic, "STEAM_MATCHES_TOPIC="+r.objectsTopic)); err != nil {
		return nil, err
	}
	for _, in := range []*instance{r.live, r.scan} {
		if err := in.waitReady(ctx, time.Minute); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// startKafka starts three kfake brokers, each behind a fault proxy it
// advertises, and the topics.
func (r *rig) startKafka(ctx context.Context) error {
	var mu sync.Mutex
	listen := faultproxy.FrontedListen(func(p *faultproxy.Proxy) {
		mu.Lock()
		r.kafka = append(r.kafka, p)
		mu.Unlock()
	})
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.ListenFn(listen))
	if err != nil {
		return fmt.Errorf("start kfake: %w", err)
	}
	r.cluster, r.brokers = c, c.ListenAddrs()
	// The soak's own client goes through the proxies too: it reads only
	// while no fault holds.
	if r.kcl, err = kgo.NewClient(kgo.SeedBrokers(r.brokers...)); err != nil {
		return err
	}
	r.admin = kadm.NewClient(r.kcl)
	r.streamTopic, r.idsTopic, r.objectsTopic = "soak-stream", "soak-steam-ids", "soak-steam-matches"
	resp, err := r.admin.CreateTopics(ctx, 3, -1, nil, r.streamTopic, r.idsTopic, r.objectsTopic)
	if err == nil {
		err = resp.Error()
	}
	return err
}

// grow moves the Steam sequence's head rate matches a second until
// stopGrowth closes.
func (r *rig) grow(rate int) {
	defer close(r.grown)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var owed float64
	for {
		select {
		case <-r.stopGrowth:
			return
		case <-tick.C:
		}
		owed += float64(rate) / 10
		if n := int64(owed); n > 0 {
			r.steam.Advance(n)
			owed -= float64(n)
		}
	}
}

// startInstance runs the service with env (plus the settings every
// instance has), logging to a file.
func (r *rig) startInstance(name, bin string, env []string) (*instance, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	envFile := filepath.Join(r.dir, name+".env")
	if err := os.WriteFile(envFile, nil, 0o600); err != nil {
		return nil, err
	}
	in := &instance{name: name, addr: addr, log: filepath.Join(r.dir, name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(in.log)
	if err != nil {
		return nil, err
	}
	in.cmd = exec.Command(bin)
	in.cmd.Dir = r.dir
	in.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "ENV_FILE=" + envFile, "API_HOST=127.0.0.1", "API_PORT=" + port,
		"SPOOL_DIR=" + filepath.Join(r.dir, name+"-spool")}, env...)
	in.cmd.Stdout, in.cmd.Stderr = logFile, logFile
	if err := in.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() {
		in.err = in.cmd.Wait()
		logFile.Close()
		close(in.exited)
	}()
	return in, nil
}

// waitReady waits for the instance's readiness to say so.
func (in *instance) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if in.ready() {
			return nil
		}
		if !backoff.Wait(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("the %s instance was not ready within %s; its log: %s", in.name, limit, in.log)
}

func (in *instance) ready() bool {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + in.addr + "/api/v1/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// metrics returns the instance's metric families, each the sum of its
// samples.
func (in *instance) metrics() (map[string]float64, error) {
	m, err := scrape.Get(&http.Client{Timeout: 5 * time.Second}, "http://"+in.addr+"/metrics")
	if err != nil {
		return nil, fmt.Errorf("the %s instance's metrics: %w", in.name, err)
	}
	return m, nil
}

// alive reports an instance that has exited.
func (r *rig) alive() error {
	for _, in := range []*instance{r.live, r.scan} {
		select {
		case <-in.exited:
			return fmt.Errorf("the %s instance exited (%v); its log: %s", in.name, in.err, in.log)
		default:
		}
	}
	return nil
}

// stop ends the instance with SIGTERM and waits for it.
func (in *instance) stop() error {
	select {
	case <-in.exited:
		return in.err
	default:
	}
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-in.exited:
		return in.err
	case <-time.After(time.Minute):
		_ = in.cmd.Process.Kill()
		<-in.exited
		return fmt.Errorf("the %s instance did not stop within a minute of SIGTERM", in.name)
	}
}

// close stops and removes everything the rig started.
func (r *rig) close() {
	for _, in := range []*instance{r.live, r.scan} {
		if in != nil {
			_ = in.stop()
		}
	}
	select {
	case <-r.stopGrowth:
	default:
		close(r.stopGrowth)
	}
	for _, p := range append(r.kafka, r.streamProxy, r.steamProxy) {
		if p != nil {
			_ = p.Close()
		}
	}
	for _, s := range []*httptest.Server{r.streamSrv, r.steamSrv} {
		if s != nil {
			s.Close()
		}
	}
	if r.kcl != nil {
		r.kcl.Close()
	}
	if r.cluster != nil {
		r.cluster.Close()
	}
	if r.dir != "" && os.Getenv("SOAK_KEEP") == "" {
		_ = os.RemoveAll(r.dir)
	}
}

var errNotCaughtUp = errors.New("not caught up")
