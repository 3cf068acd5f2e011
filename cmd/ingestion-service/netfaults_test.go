//go:build faults

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/faultproxy"
	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// The network faults: each degrades the links between the service and
// Kafka, its source, or both, while every end lives. Each broker and the
// source sit behind a fault proxy (internal/faultproxy) that the service
// is pointed at; the brokers advertise their proxies' addresses, so that
// no connection goes around them.

// netFaultSeconds is how long each fault holds: NETFAULT_SECONDS, default
// 60.
func netFaultSeconds(t *testing.T) time.Duration {
	if v := os.Getenv("NETFAULT_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("NETFAULT_SECONDS=%q: want a positive number of seconds", v)
		}
		return time.Duration(n) * time.Second
	}
	return time.Minute
}

// netScenarios returns the faults to run: every one of
// faultproxy.Scenarios, or those whose name contains NETFAULT_ONLY (to
// repeat one fault while chasing what it does).
func netScenarios(t *testing.T, all []faultproxy.Scenario) []faultproxy.Scenario {
	only := os.Getenv("NETFAULT_ONLY")
	if only == "" {
		return all
	}
	var out []faultproxy.Scenario
	for _, s := range all {
		if strings.Contains(s.Name, only) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Fatalf("NETFAULT_ONLY=%q names none of the faults", only)
	}
	return out
}

// The bounds every phase must keep.
const (
	netRSSBound      = 64 << 10 // KiB
	netUnreadyWithin = 15 * time.Second
	netReadyWithin   = 15 * time.Second
	netFirstRecord   = 10 * time.Second
	netLogBurst      = 3 // lines of one cause beyond one a second
)

// netLinks are the proxies in front of a scenario's servers.
type netLinks struct {
	kafka  []*faultproxy.Proxy
	source []*faultproxy.Proxy
}

func (l netLinks) set(f faultproxy.Scenario) {
	for _, p := range l.kafka {
		p.Set(f.Kafka)
	}
	for _, p := range l.source {
		p.Set(f.Source)
	}
}

func (l netLinks) heal() { l.set(faultproxy.Scenario{}) }

// phase is what one fault did to a running service.
type phase struct {
	fault               faultproxy.Scenario
	from, healed, ready time.Time
	unreadyAfter        time.Duration // -1: stayed ready
	readyAfter          time.Duration // from the heal; -1: never
	firstRecordAfter    time.Duration // from the heal; -1: none
	peakRSS             int64         // KiB
	logs                map[string]int
	// Filled in by the scenario: what the source sent during the phase
	// (fault and recovery), and what of it is in Kafka; of the missing,
	// those sent after the heal.
	sent, delivered, missing, duplicates int
	missingAfterHeal                     int
}

// runPhases holds each fault for d on links, then heals it and waits for
// the service to be ready and to have caught up (caughtUp), and returns
// what each phase did. progress names the counter that moves when records
// reach Kafka. mark is called as each fault starts, as it heals, and at
// the end: the marks split what the source sent by phase, and each phase
// into the fault and what followed the heal.
func runPhases(t *testing.T, svc *service, mon *monitor, links netLinks, faults []faultproxy.Scenario, d time.Duration,
	progress string, caughtUp func(m map[string]float64) bool, mark func()) []phase {
	t.Helper()
	var out []phase
	for _, f := range faults {
		mark()
		p := phase{fault: f, from: time.Now()}
		t.Logf("%s: on for %s", f.Name, d)
		links.set(f)
		hold(t, svc, d, f.Name)
		links.heal()
		mark()
		p.healed = time.Now()
		before := mon.last(progress, p.healed)
		svc.waitFor(t, f.Name+": ready and caught up after the heal", 3*time.Minute, func() bool {
			m := svc.metrics()
			return m != nil && svc.readiness().code == 200 && caughtUp(m)
		})
		time.Sleep(time.Second) // a sample or more after it
		p.ready = time.Now()
		p.unreadyAfter, p.readyAfter = mon.readiness(p.from, p.healed, p.ready)
		p.firstRecordAfter = mon.firstRise(progress, before, p.healed, p.ready)
		p.peakRSS = mon.peakRSS(p.from, p.ready)
		p.logs = logCauses(svc.out.String(), p.from, p.ready)
		out = append(out, p)
		t.Logf("%s: %s", f.Name, p.summary())
	}
	mark()
	return out
}

// last returns the last value of the counter name sampled at or before
// at, or -1.
func (m *monitor) last(name string, at time.Time) float64 {
	v := -1.0
	for _, s := range m.all() {
		if s.at.After(at) {
			break
		}
		if x, ok := s.metrics[name]; ok {
			v = x
		}
	}
	return v
}

// readiness returns how long after from readiness first said the service
// was not ready (-1 if it never did before healed), and how long after
// healed it was ready again (-1 if not by to).
func (m *monitor) readiness(from, healed, to time.Time) (unready, ready time.Duration) {
	unready, ready = -1, -1
	for _, s := range m.between(from, to) {
		if s.at.Before(healed) && unready < 0 && s.ready.code != 200 && s.ready.code != 0 {
			unready = s.at.Sub(from)
		}
		if !s.at.Before(healed) && ready < 0 && s.ready.code == 200 {
			ready = s.at.Sub(healed)
		}
	}
	return unready, ready
}

// firstRise returns how long after healed the counter name first rose above
// before, -1 if not by to.
func (m *monitor) firstRise(name string, before float64, healed, to time.Time) time.Duration {
	for _, s := range m.between(healed, to) {
		if v, ok := s.metrics[name]; ok && v > before {
			return s.at.Sub(healed)
		}
	}
	return -1
}

// peakRSS returns the highest RSS sampled from from to to, in KiB.
func (m *monitor) peakRSS(from, to time.Time) int64 {
	var best int64
	for _, s := range m.between(from, to) {
		best = max(best, s.rssKiB)
	}
	return best
}

// logCauses counts the service's log lines from from to to, by event.
func logCauses(out string, from, to time.Time) map[string]int {
	counts := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		var l struct {
			Timestamp time.Time `json:"timestamp"`
			Event     string    `json:"event"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Event == "" {
			continue
		}
		if l.Timestamp.Before(from) || l.Timestamp.After(to) {
			continue
		}
		counts[l.Event]++
	}
	return counts
}

func (p phase) summary() string {
	return fmt.Sprintf("not ready after %s, ready %s after the heal, first record %s after it, peak RSS %s, log lines by cause %v",
		dur(p.unreadyAfter), dur(p.readyAfter), dur(p.firstRecordAfter), mib(p.peakRSS), p.logs)
}

// dur prints a measured duration, or "never" for -1.
func dur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(100 * time.Millisecond).String()
}

// checkPhases fails t where a phase broke a bound every scenario keeps.
func checkPhases(t *testing.T, scenario string, phases []phase) {
	t.Helper()
	for _, p := range phases {
		name := scenario + ", " + p.fault.Name
		if p.peakRSS > netRSSBound {
			t.Errorf("%s: peak RSS %s, want at most %s", name, mib(p.peakRSS), mib(netRSSBound))
		}
		if p.fault.KafkaUnreachable && (p.unreadyAfter < 0 || p.unreadyAfter > netUnreadyWithin) {
			t.Errorf("%s: not ready after %s, want within %s of Kafka becoming unreachable", name, dur(p.unreadyAfter), netUnreadyWithin)
		}
		if p.readyAfter < 0 || p.readyAfter > netReadyWithin {
			t.Errorf("%s: ready %s after the heal, want within %s", name, dur(p.readyAfter), netReadyWithin)
		}
		if p.firstRecordAfter > netFirstRecord {
			t.Errorf("%s: the first record %s after the heal, want within %s", name, dur(p.firstRecordAfter), netFirstRecord)
		}
		seconds := int(p.ready.Sub(p.from).Seconds()) + 1
		for cause, n := range p.logs {
			if n > seconds+netLogBurst {
				t.Errorf("%s: %d %q lines in %d s, want at most one a second", name, n, cause, seconds)
			}
		}
	}
}

// logTable writes the faults × scenario table of a run.
func logTable(t *testing.T, scenario string, phases []phase) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n| fault | sent | delivered | missing (after the heal) | duplicates | peak RSS | not ready after | ready after the heal | first record after the heal | log lines by cause |\n|---|---|---|---|---|---|---|---|---|---|\n", scenario)
	for _, p := range phases {
		causes := make([]string, 0, len(p.logs))
		for c, n := range p.logs {
			causes = append(causes, fmt.Sprintf("%s: %d", c, n))
		}
		slices.Sort(causes)
		fmt.Fprintf(&b, "| %s | %d | %d | %d (%d) | %d | %s | %s | %s | %s | %s |\n", p.fault.Name, p.sent, p.delivered, p.missing, p.missingAfterHeal, p.duplicates,
			mib(p.peakRSS), dur(p.unreadyAfter), dur(p.readyAfter), dur(p.firstRecordAfter), strings.Join(causes, "; "))
	}
	t.Log(b.String())
}

// proxyURL starts a fault proxy in front of rawURL's host and returns the
// URL through it, and the proxy.
func proxyURL(t *testing.T, rawURL string) (string, *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.New("127.0.0.1:0", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	u.Host = p.Addr()
	return u.String(), p
}

// attribute fills each phase's sent, delivered, missing and duplicates
// from the IDs sent between its marks (runPhases).
func attribute(phases []phase, marks []int, sent []int64, recs []*kgo.Record) {
	for i := range phases {
		// count takes every record for one of the phase's: what belongs to
		// other phases is "unexpected" here.
		got, _ := count(sent[marks[2*i]:marks[2*i+2]], recs)
		after, _ := count(sent[marks[2*i+1]:marks[2*i+2]], recs)
		phases[i].sent, phases[i].missing, phases[i].duplicates = got.sent, got.missing, got.duplicates
		phases[i].delivered = got.sent - got.missing
		phases[i].missingAfterHeal = after.missing
	}
}

// TestNetFaultsStream: a live WebSocket stream of 100 matches a second,
// with the spool, through each network fault on its Kafka links (three
// brokers) and its stream link. Every match the service accepted is in
// Kafka once; a fault on the Kafka links alone loses nothing the stream
// sent; and each phase keeps the bounds of checkPhases.
func TestNetFaultsStream(t *testing.T) {
	t.Parallel()
	const rate = 100
	stream := newLiveStream(t, idRange(3_000_000_001, liveIDs(t, rate)), streamOpts{Rate: rate, WriteTimeout: 2 * time.Second})
	runLiveSource(t, "a live WebSocket stream at 100/s with the spool", stream.url, func(url string) map[string]string {
		return map[string]string{"OPENDOTA_STREAM_URL": url}
	}, stream.sent, stream.halt)
}

// liveIDs is how many IDs a live source at rate needs for the fault matrix.
func liveIDs(t *testing.T, rate int) int {
	return rate * int((time.Duration(len(faultproxy.Scenarios()))*(netFaultSeconds(t)+3*time.Minute) + time.Minute).Seconds())
}

// runLiveSource runs the fault matrix on a service reading a live source
// at sourceURL (with the settings env gives for the URL through its proxy)
// beside three brokers, with the spool, and checks it with checkLiveSource.
// sent returns the IDs the source has sent so far; halt makes it send no
// more.
func runLiveSource(t *testing.T, scenario, sourceURL string, env func(url string) map[string]string, sent func() []int64, halt func()) {
	t.Helper()
	cluster, kafka := kafkatest.StartFakeBehindProxies(t, 3)
	topic := cluster.Topic(t, 3)
	proxied, source := proxyURL(t, sourceURL)
	settings := env(proxied)
	settings["KAFKA_BOOTSTRAP_SERVERS"] = strings.Join(cluster.Brokers, ",")
	settings["KAFKA_PUBLISH_TOPIC"] = topic
	settings["SPOOL_DIR"] = filepath.Join(t.TempDir(), "spool")
	svc := startService(t, settings)
	svc.waitFor(t, "300 matches flowing", time.Minute, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") >= 300
	})
	mon := startMonitor(t, svc, 250*time.Millisecond)
	var marks []int
	phases := runPhases(t, svc, mon, netLinks{kafka: kafka, source: []*faultproxy.Proxy{source}}, netScenarios(t, faultproxy.Scenarios()), netFaultSeconds(t),
		"ingestion_matches_published_total", drained, func() { marks = append(marks, len(sent())) })
	mon.halt()
	// The end: the source sends no more, and what it sent arrives before
	// the last phase is counted and the service stopped, so that no ID is
	// still on its way (missing) or sent after the count (unexpected).
	halt()
	holdStill(t, svc, "ingestion_frames_received_total")
	all := sent()
	marks[len(marks)-1] = len(all)
	checkLiveSource(t, scenario, svc, cluster, topic, phases, marks, all)
}

// holdStill waits until the counter name of svc holds still for a second:
// what a halted source sent has arrived.
func holdStill(t *testing.T, svc *service, name string) {
	t.Helper()
	last := -1.0
	svc.waitFor(t, name+" holding still", time.Minute, func() bool {
		v := svc.metric(t, name)
		still := v == last
		last = v
		if !still {
			time.Sleep(time.Second)
		}
		return still
	})
}

// drained says the service holds nothing and has published every match it
// accepted.
func drained(m map[string]float64) bool {
	return m["ingestion_spool_records"] == 0 && m["ingestion_buffer_records"] == 0 && m["ingestion_inflight_records"] == 0 &&
		m["ingestion_matches_published_total"] >= m["ingestion_matches_accepted_total"]
}

// checkLiveSource stops the service and checks a live source's run: every
// match it accepted is in Kafka once, a fault on the Kafka links alone
// lost nothing the source sent, and each phase kept the bounds of
// checkPhases.
func checkLiveSource(t *testing.T, scenario string, svc *service, cluster *kafkatest.Cluster, topic string, phases []phase, marks []int, sent []int64) {
	t.Helper()
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	accepted := shutdownCount(t, svc.out.String(), "accepted")
	recs := cluster.ReadToEnd(t, topic, time.Minute)
	all, _ := count(sent, recs)
	attribute(phases, marks, sent, recs)
	logTable(t, scenario, phases)
	t.Logf("in all: %s; accepted by the service %d", all, accepted)
	if delivered := all.sent - all.missing; all.unexpected != 0 || all.duplicates != 0 || delivered != accepted {
		t.Errorf("%d IDs accepted, %d in Kafka (%d duplicates, %d unexpected): every accepted match must be in Kafka once",
			accepted, delivered, all.duplicates, all.unexpected)
	}
	for _, p := range phases {
		switch {
		case p.fault.Source == (faultproxy.Fault{}) && p.missing != 0:
			t.Errorf("%s: %d of %d IDs sent missing, with the source's link untouched", p.fault.Name, p.missing, p.sent)
		case p.missingAfterHeal != 0:
			t.Errorf("%s: %d IDs sent after the heal missing: the service was not reading again", p.fault.Name, p.missingAfterHeal)
		case !p.fault.Source.Blackhole && p.missing > p.sent/100+10:
			// What a broken connection had on the way is lost to a live
			// source; a service slow to reconnect loses far more. In a
			// black hole the source writes on to a connection the service
			// has given up on: that is lost as on any network.
			t.Errorf("%s: %d of %d IDs sent missing: more than the few on the way when a connection broke", p.fault.Name, p.missing, p.sent)
		}
	}
	checkPhases(t, scenario, phases)
}

// TestNetFaultsSteam: the exactly-once Steam scan, with the matches topic,
// against a Steam whose sequence grows 100 matches a second (5% listed
// late, hidden matches), through each network fault on its Kafka links
// (three brokers) and its Steam link. Both topics hold every listed match
// exactly once at the end, and each phase keeps the bounds of
// checkPhases.
func TestNetFaultsSteam(t *testing.T) {
	t.Parallel()
	d := netFaultSeconds(t)
	faults := netScenarios(t, faultproxy.Scenarios())
	cluster, kafka := kafkatest.StartFakeBehindProxies(t, 3)
	ids, objects := cluster.Topic(t, 3), cluster.Topic(t, 3)
	fake, steamURL := steamfake.Start(t, steamfake.Options{Count: 200, LateFraction: 0.05, LateBy: 600, HiddenEvery: 100})
	first := fake.Matches()[0].SeqNum
	stopGrowing := growSteam(fake, 10, 100*time.Millisecond)
	proxied, source := proxyURL(t, steamURL)
	env := steamEnv(cluster, ids, proxied, first, filepath.Join(t.TempDir(), "spool"), "0")
	env["STEAM_MATCHES_TOPIC"] = objects
	env["STEAM_RESCAN_BEHIND"] = "800"
	env["STEAM_RESCAN_DELAY"] = "10s"
	svc := startService(t, env)
	svc.waitFor(t, "the scan going on", time.Minute, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") >= 300
	})
	mon := startMonitor(t, svc, 250*time.Millisecond)
	var marks []int64
	phases := runPhases(t, svc, mon, netLinks{kafka: kafka, source: []*faultproxy.Proxy{source}}, faults, d,
		"ingestion_matches_published_total", func(m map[string]float64) bool {
			return m["ingestion_steam_position"] >= float64(fake.Head()-300)
		}, func() { marks = append(marks, fake.Head()+1) })
	stopGrowing()
	listed := fake.Matches()
	head := listed[len(listed)-1].SeqNum
	svc.waitFor(t, "both cursors at the head", 3*time.Minute, func() bool {
		return svc.metric(t, "ingestion_steam_position") == float64(head) && svc.metric(t, "ingestion_steam_rescan_position") == float64(head)
	})
	mon.halt()
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	recs := cluster.ReadCommitted(t, ids, time.Minute)
	for i := range phases {
		tl := fake.TallyRange(recs, false, marks[2*i], marks[2*i+2])
		phases[i].sent, phases[i].missing, phases[i].duplicates = tl.Listed, tl.Missing, tl.Duplicates
		phases[i].delivered = tl.Listed - tl.Missing
	}
	logTable(t, "the exactly-once Steam scan with the matches topic", phases)
	checkExactlyOnce(t, cluster, fake, ids, objects)
	checkPhases(t, "steam", phases)
}

// liveLogs is a loopback stand-in for OpenDota's /logs feed, live: it
// announces a fixed list of match IDs, rate a second, with "[insert: api]"
// lines, to whoever is connected, and moves on whether anyone listens or
// not, as the real feed does (a client that reconnects gets what comes
// next, never what it missed).
type liveLogs struct {
	ids    []int64
	srv    *httptest.Server
	next   atomic.Int64 // index of the next ID to announce
	halted atomic.Bool  // announces nothing more (halt)
	stop   chan struct{}

	mu      sync.Mutex
	clients map[chan []byte]struct{}
}

func newLiveLogs(t *testing.T, ids []int64, rate int) *liveLogs {
	l := &liveLogs{ids: ids, stop: make(chan struct{}), clients: map[chan []byte]struct{}{}}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			if l.halted.Load() {
				continue
			}
			var b []byte
			for range max(1, rate/100) {
				i := l.next.Load()
				if i >= int64(len(l.ids)) {
					break
				}
				l.next.Add(1)
				b = fmt.Appendf(b, "data: [%s] [inserter] [insert: api] [ended: 2 minutes ago] %d\n\n",
					time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), l.ids[i])
			}
			l.mu.Lock()
			for c := range l.clients {
				select {
				case c <- b:
				default: // a client that does not keep up loses lines, as on the real feed
				}
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(l.stop)
		<-done
		l.srv.Close()
	})
	return l
}

func (l *liveLogs) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/logs" && r.URL.Path != "/logs/api" {
		http.NotFound(w, r)
		return
	}
	c := make(chan []byte, 1024)
	l.mu.Lock()
	l.clients[c] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.clients, c)
		l.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-l.stop:
			return
		case b := <-c:
			if _, err := w.Write(b); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// sent returns the IDs announced so far.
func (l *liveLogs) sent() []int64 { return l.ids[:l.next.Load()] }

// halt makes the feed announce no more IDs; the connections stay open.
func (l *liveLogs) halt() { l.halted.Store(true) }

// halt makes the stream send no more IDs; the connections stay open.
func (s *liveStream) halt() {
	s.mu.Lock()
	s.halted = true
	s.mu.Unlock()
}

// TestNetFaultsOpenDota: OpenDota's live log feed announcing 100 matches a
// second, with the spool, through each network fault on its Kafka links
// (three brokers) and its feed link. Every match the service accepted is
// in Kafka once; a fault on the Kafka links alone loses nothing the feed
// announced; and each phase keeps the bounds of checkPhases.
func TestNetFaultsOpenDota(t *testing.T) {
	t.Parallel()
	const rate = 100
	feed := newLiveLogs(t, idRange(4_000_000_001, liveIDs(t, rate)), rate)
	runLiveSource(t, "OpenDota's live log feed at 100/s with the spool", feed.srv.URL+"/logs", func(url string) map[string]string {
		return map[string]string{"SOURCE": "opendota-logs", "OPENDOTA_LOGS_URL": url}
	}, feed.sent, feed.halt)
}
