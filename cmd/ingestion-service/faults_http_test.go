//go:build faults

package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

// TestFaultHostileHTTPClients: 10,000 idle keep-alive connections and
// 10,000 that never finish their headers, held for 40 s (each reopened
// 50 ms after the service closes it) while a stream of 1,000 matches a
// second runs. The pipeline keeps its rate, the service holds no more
// connections than API_MAX_CONNECTIONS, and its peak RSS stays under
// 64 MiB (the Kubernetes manifest's request; its limit is 128 MiB).
// Before the connection cap and the timeouts, such clients were reported
// to take it to 212 MB (idle) and 130 MB (slow). How often health answered is logged.
func TestFaultHostileHTTPClients(t *testing.T) {
	const rate, conns = 1000, 10_000
	const attack = 40 * time.Second
	const rssBound = 64 << 10 // KiB
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	stream := newLiveStream(t, idRange(2_000_000_001, rate*120), streamOpts{Rate: rate, WriteTimeout: 2 * time.Second})
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     stream.url,
	})
	svc.waitFor(t, "3 s of matches flowing", time.Minute, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") >= 3*rate
	})
	mon := startMonitor(t, svc, 250*time.Millisecond)

	var children []*exec.Cmd
	var outs []*bytes.Buffer
	for _, role := range []string{"idle", "slow"} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), hostileEnv+"="+role, hostileAddr+"="+svc.addr,
			hostileConns+"="+strconv.Itoa(conns), hostileSeconds+"="+strconv.Itoa(int(attack/time.Second)))
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children, outs = append(children, cmd), append(outs, out)
	}
	began := time.Now()
	publishedBefore := svc.metric(t, "ingestion_matches_published_total")

	// A probe as Kubernetes makes it: a new connection, a 2 s timeout.
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var probes, answered int
	var lastAnswer time.Time
	var longestSilence time.Duration
	for time.Since(began) < attack-2*time.Second {
		probes++
		if resp, err := probe.Get("http://" + svc.addr + "/api/v1/health"); err == nil {
			if resp.StatusCode == http.StatusOK {
				answered++
				if !lastAnswer.IsZero() {
					longestSilence = max(longestSilence, time.Since(lastAnswer))
				}
				lastAnswer = time.Now()
			}
			resp.Body.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
	if lastAnswer.IsZero() {
		longestSilence = time.Since(began)
	} else {
		longestSilence = max(longestSilence, time.Since(lastAnswer))
	}
	publishedDuring := svc.metric(t, "ingestion_matches_published_total") - publishedBefore
	during := time.Since(began)
	for i, c := range children {
		if err := c.Wait(); err != nil {
			t.Fatalf("hostile client %d: %v: %s", i, err, outs[i])
		}
	}
	mon.halt()
	peak := procKiB(svc.cmd.Process.Pid, "VmHWM")
	held := mon.max("ingestion_http_connections")
	shed := svc.metric(t, "ingestion_http_connections_shed_total")
	var stats [2]hostileStats
	for i, out := range outs {
		if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &stats[i]); err != nil {
			t.Fatalf("hostile client %d said %q: %v", i, out, err)
		}
	}
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	perSecond := publishedDuring / during.Seconds()
	t.Logf("idle clients %+v, slow clients %+v; health answered %d of %d probes, the longest without an answer %s; published %.0f/s during the attack (stream %d/s); "+
		"peak RSS %s; connections held at most %.0f, shed %.0f",
		stats[0], stats[1], answered, probes, longestSilence.Round(time.Millisecond), perSecond, rate, mib(peak), held, shed)

	if stats[0].Opened < conns || stats[1].Opened < conns {
		t.Fatalf("the clients opened %d and %d connections, want at least %d each: the attack did not happen", stats[0].Opened, stats[1].Opened, conns)
	}
	// Health is measured, not asserted: the clients reconnect 50 ms after
	// each close, so the accept queue they share with the probe stays
	// full, and on one 2-core machine a probe waits behind them (see the
	// README). What the service holds is bounded; what the kernel queues
	// is not its to shed.
	if perSecond < 0.9*rate {
		t.Errorf("published %.0f matches a second during the attack, want the stream's %d", perSecond, rate)
	}
	if held > 512+16 || shed == 0 {
		t.Errorf("held at most %.0f connections (cap 512), shed %.0f", held, shed)
	}
	if peak > rssBound {
		t.Errorf("peak RSS %s, want under %s", mib(peak), mib(rssBound))
	}
}
