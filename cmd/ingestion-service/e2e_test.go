package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/logtest"
)

// binary is the service, built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	if code, ok := hostileFromEnv(); ok {
		os.Exit(code) // a child process playing a hostile client, not a test run
	}
	dir, err := os.MkdirTemp("", "ingestion-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "ingestion-service")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the service:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// feed is a loopback match stream: the first connection receives frames,
// later ones nothing; every connection stays open until the client leaves.
type feed struct {
	frames [][]byte
	url    string
	mu     sync.Mutex
	conns  int
	start  time.Time
	// hold, when set, pauses the first connection after holdAfter frames
	// until it is closed.
	hold      chan struct{}
	holdAfter int
}

func newFeed(t *testing.T, frames [][]byte) *feed {
	f := &feed{frames: frames}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		f.mu.Lock()
		first := f.conns == 0
		f.conns++
		if first {
			f.start = time.Now()
		}
		f.mu.Unlock()
		ctx := c.CloseRead(r.Context())
		if first {
			for i, fr := range f.frames {
				if f.hold != nil && i == f.holdAfter {
					select {
					case <-f.hold:
					case <-ctx.Done():
						return
					}
				}
				if err := c.Write(ctx, websocket.MessageText, fr); err != nil {
					return
				}
			}
		}
		<-ctx.Done()
	}))
	t.Cleanup(srv.Close)
	f.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/matches"
	return f
}

// mixedFrames returns valid frames for IDs base+1..base+valid, shuffled
// with invalid ones of every kind.
func mixedFrames(base int64, valid, invalid int) ([][]byte, map[int64]bool) {
	bad := []string{
		`{"match_id":"%d"}`, `{"match_id":%d.0}`, `{"match_id":-%d}`, `{"match_id":null,"n":%d}`, `[%d]`,
		`{"id":%d}`, `{"match_id":true,"n":%d}`, `{"match_id":%de3}`, `garbage %d`, `{"match_id":9223372036854775808,"n":%d}`, `{"match_id":0,"n":%d}`,
	}
	rng := rand.New(rand.NewPCG(7, 11))
	frames := make([][]byte, 0, valid+invalid)
	want := make(map[int64]bool, valid)
	for i := 1; i <= valid; i++ {
		id := base + int64(i)
		want[id] = true
		frames = append(frames, fmt.Appendf(nil, `{"match_id":%d,"start_time":1764201600,"radiant_win":true}`, id))
	}
	for i := 0; i < invalid; i++ {
		frames = append(frames, fmt.Appendf(nil, bad[i%len(bad)], base+int64(i)))
	}
	rng.Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
	return frames, want
}

// service is a running ingestion-service process.
type service struct {
	cmd  *exec.Cmd
	addr string
	out  *logtest.Buffer
	done chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startService(t *testing.T, env map[string]string, args ...string) *service {
	t.Helper()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	envFile := filepath.Join(dir, "empty.env")
	if err := os.WriteFile(envFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "API_HOST=127.0.0.1", "API_PORT="+port, "ENV_FILE="+envFile, "LOG_SUMMARY_INTERVAL=1s")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	s := &service{cmd: cmd, addr: addr, out: &logtest.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("service output (progress lines left out but the last):\n%s", tail(eventful(s.out.String()), 12000))
		}
	})
	return s
}

// eventful returns a service's output without its periodic progress
// lines but the last, which would crowd out of a failed test's tail the
// events that say what happened.
func eventful(out string) string {
	var b strings.Builder
	last := ""
	for line := range strings.Lines(out) {
		if strings.Contains(line, `"Ingestion progress"`) || strings.Contains(line, "msg=\"Ingestion progress\"") {
			last = line
			continue
		}
		b.WriteString(line)
	}
	b.WriteString(last)
	return b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// apiClient is the tests' client of the service's API: a request that
// takes longer than its timeout is an answer the operator never got (code
// 0), not a test that hangs.
var apiClient = &http.Client{Timeout: 10 * time.Second}

func (s *service) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := apiClient.Get("http://" + s.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (s *service) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("service exited (%v) while waiting for %s", err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns the sum of every sample of the named metric family.
func (s *service) metric(t *testing.T, name string) float64 {
	t.Helper()
	code, body := s.get(t, "/metrics")
	if code != 200 {
		return -1
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(body))
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			v, err := strconv.ParseFloat(m[2], 64)
			if err == nil {
				sum += v
				found = true
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

// kill stops the service with SIGKILL, as a crash would, and waits for
// it to end.
func (s *service) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s.done <- nil
}

// holdsNothing reports whether the service's relay holds no match: none
// in memory, in flight to Kafka, or in the spool.
func (s *service) holdsNothing(t *testing.T) bool {
	t.Helper()
	return s.metric(t, "ingestion_buffer_records") == 0 && s.metric(t, "ingestion_inflight_records") == 0 &&
		s.metric(t, "ingestion_spool_records") == 0
}

func (s *service) stop(t *testing.T, timeout time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(timeout):
		// SIGQUIT makes the Go runtime print every goroutine's stack:
		// where the shutdown hangs.
		before := len(s.out.String())
		_ = s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.done:
			s.done <- nil // for the cleanup's wait
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("service did not exit within %s of SIGTERM; its goroutines (SIGQUIT):\n%s", timeout, s.out.String()[before:])
	}
	return s.cmd.ProcessState.ExitCode(), time.Since(start)
}

func TestEndToEnd(t *testing.T) {
	const valid, invalid = 10_000, 1_000
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	frames, want := mixedFrames(8_000_000_000, valid, invalid)
	f := newFeed(t, frames)
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     f.url,
		"SERVICE_NAME":            "e2e-ingestion",
	})

	svc.waitFor(t, "all matches published", 120*time.Second, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") >= valid
	})
	elapsed := time.Since(f.start)
	t.Logf("end to end: %d valid + %d invalid frames, %d published in %s: %.0f matches/s",
		valid, invalid, valid, elapsed.Round(time.Millisecond), float64(valid)/elapsed.Seconds())

	// Liveness: the original service's contract, exactly.
	if code, body := svc.get(t, "/api/v1/health"); code != 200 || body != `{"status":"healthy","service":"e2e-ingestion"}` {
		t.Fatalf("health = %d %s", code, body)
	}
	// Readiness: stream connected and Kafka reachable.
	svc.waitFor(t, "ready", 30*time.Second, func() bool { code, _ := svc.get(t, "/api/v1/ready"); return code == 200 })
	_, body := svc.get(t, "/api/v1/ready")
	var ready struct {
		Status string
		Checks map[string]struct{ Status string }
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || ready.Status != "ready" || ready.Checks["stream"].Status != "up" || ready.Checks["kafka"].Status != "up" || ready.Checks["buffer"].Status != "up" {
		t.Fatalf("ready body = %s", body)
	}
	// Metrics account for every frame.
	for name, want := range map[string]float64{
		"ingestion_frames_received_total":   valid + invalid,
		"ingestion_matches_accepted_total":  valid,
		"ingestion_frames_rejected_total":   invalid,
		"ingestion_matches_published_total": valid,
		"ingestion_publish_errors_total":    0,
		"ingestion_stream_connected":        1,
		"ingestion_kafka_ready":             1,
		"ingestion_relay_full":              0,
		"ingestion_spool_records":           0,
		"ingestion_duplicates_total":        0,
	} {
		if got := svc.metric(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := svc.metric(t, "ingestion_produce_latency_seconds_count"); got != valid {
		t.Errorf("latency histogram count = %v, want %d", got, valid)
	}
	if svc.metric(t, "ingestion_inflight_records") < 0 || svc.metric(t, "ingestion_stream_reconnects_total") < 0 {
		t.Errorf("in-flight records or reconnects metric missing")
	}
	if svc.metric(t, "ingestion_buffered_records") >= 0 {
		t.Errorf("ingestion_buffered_records is served: the Kafka client's records are ingestion_inflight_records")
	}

	code, took := svc.stop(t, 30*time.Second)
	if code != 0 {
		t.Fatalf("exit status after SIGTERM = %d, want 0", code)
	}
	t.Logf("shutdown took %s", took.Round(time.Millisecond))

	recs := cluster.ReadAll(t, topic, valid, 60*time.Second)
	got := make(map[int64]bool, len(recs))
	for _, r := range recs {
		id, err := strconv.ParseInt(string(r.Key), 10, 64)
		if err != nil || string(r.Value) != `{"match_id":`+string(r.Key)+`}` {
			t.Fatalf("record key %q value %q", r.Key, r.Value)
		}
		if got[id] {
			t.Fatalf("match %d published twice", id)
		}
		if !want[id] {
			t.Fatalf("match %d was never sent as valid", id)
		}
		got[id] = true
	}
	if len(got) != valid {
		t.Fatalf("topic holds %d distinct matches, want %d", len(got), valid)
	}
	if !strings.Contains(svc.out.String(), `"event":"Shutdown complete"`) {
		t.Fatalf("no shutdown line in the logs")
	}
}

// TestSIGTERMFlushesBufferedRecords holds records in the client with a long
// linger, so that they are still unsent when the signal arrives.
//
// The first record after a quiet spell is sent at once, and franz-go goes
// on sending a partition's records without lingering while one of its
// batches is in flight: a feed that streams without a pause can keep that
// chain going to its end. So the feed sends one frame, waits until it is
// published, and only then sends the rest, which linger.
func TestSIGTERMFlushesBufferedRecords(t *testing.T) {
	const n = 3000
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 2)
	f, env := lingering(t, cluster, topic, 9_000_000_000, n)
	svc := startService(t, env)
	lingerOver(t, svc, f, n)
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status = %d", code)
	}
	if got := len(cluster.ReadAll(t, topic, n, 30*time.Second)); got != n {
		t.Fatalf("topic holds %d records after SIGTERM, want %d", got, n)
	}
}

// lingering returns a feed of n frames from base that holds all but the
// first until lingerOver, and the settings under which a service's
// producer lingers over what it has: a minute, in batches of up to 1 MB.
func lingering(t *testing.T, cluster *kafkatest.Cluster, topic string, base int64, n int) (*feed, map[string]string) {
	frames, _ := mixedFrames(base, n, 0)
	f := newFeed(t, frames)
	f.hold, f.holdAfter = make(chan struct{}), 1
	return f, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     f.url,
		"KAFKA_LINGER":            "1m",
		"KAFKA_BATCH_MAX_BYTES":   "1000000",
	}
}

// lingerOver lets the feed's frames go once the first is published, and
// returns how many were published once all n are accepted: fewer than n,
// or the test proves nothing.
func lingerOver(t *testing.T, svc *service, f *feed, n int) float64 {
	t.Helper()
	svc.waitFor(t, "the first frame published", 90*time.Second, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") == 1
	})
	close(f.hold)
	svc.waitFor(t, "all frames accepted", 60*time.Second, func() bool {
		return svc.metric(t, "ingestion_matches_accepted_total") == float64(n)
	})
	p := svc.metric(t, "ingestion_matches_published_total")
	if p == float64(n) {
		t.Fatalf("all %d records were published before the signal; the test proves nothing", n)
	}
	return p
}

var shutdownLine = regexp.MustCompile(`"event":"Shutdown complete".*`)

// shutdownCount reads a count from the service's last log line.
func shutdownCount(t *testing.T, out, key string) int {
	t.Helper()
	line := shutdownLine.FindString(out)
	m := regexp.MustCompile(`"` + key + `":(\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no %q in the shutdown line %q", key, line)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestShutdownSummarySaysWhereEveryMatchWent: matches accepted while Kafka
// is unreachable. At SIGTERM none is logged or counted as a failed publish;
// the last line counts them spooled (and the next start, with Kafka back,
// delivers them), or lost in memory mode, which exits non-zero.
func TestShutdownSummarySaysWhereEveryMatchWent(t *testing.T) {
	const n = 300
	frames, _ := mixedFrames(7_000_000_000, n, 0)
	t.Run("spooled", func(t *testing.T) {
		spoolDir := t.TempDir()
		f := newFeed(t, frames)
		svc := startService(t, map[string]string{
			"KAFKA_BOOTSTRAP_SERVERS": freeAddr(t), // nothing listens there
			"OPENDOTA_STREAM_URL":     f.url,
			"SPOOL_DIR":               spoolDir,
			"SHUTDOWN_TIMEOUT":        "2s",
		})
		svc.waitFor(t, "all accepted", time.Minute, func() bool { return svc.metric(t, "ingestion_matches_accepted_total") == n })
		if code, _ := svc.stop(t, 30*time.Second); code != 0 {
			t.Fatalf("exit status %d, want 0: every match was kept", code)
		}
		out := svc.out.String()
		for key, want := range map[string]int{"accepted": n, "published": 0, "spooled": n, "spooled_at_shutdown": n, "lost": 0, "failed_attempts": 0} {
			if got := shutdownCount(t, out, key); got != want {
				t.Errorf("shutdown line: %s = %d, want %d", key, got, want)
			}
		}
		if strings.Contains(out, "Failed to publish") || strings.Contains(out, "Retrying failed deliveries") {
			t.Errorf("a match kept in the spool was logged as failed or retried:\n%s", tail(out, 2000))
		}

		// The next start, with Kafka there, delivers all of them.
		cluster := kafkatest.Start(t)
		topic := cluster.Topic(t, 2)
		next := startService(t, map[string]string{
			"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
			"KAFKA_PUBLISH_TOPIC":     topic,
			"OPENDOTA_STREAM_URL":     newFeed(t, nil).url,
			"SPOOL_DIR":               spoolDir,
		})
		next.waitFor(t, "the spool replayed", time.Minute, func() bool { return next.metric(t, "ingestion_matches_published_total") == n })
		if code, _ := next.stop(t, 30*time.Second); code != 0 {
			t.Fatalf("exit status after the replay %d", code)
		}
		if got := shutdownCount(t, next.out.String(), "spooled"); got != 0 {
			t.Errorf("after the replay the shutdown line says %d spooled, want 0", got)
		}
		if got := len(cluster.ReadAll(t, topic, n, 30*time.Second)); got != n {
			t.Fatalf("the topic holds %d records after the replay, want %d", got, n)
		}
	})
	t.Run("lost in memory mode", func(t *testing.T) {
		f := newFeed(t, frames)
		svc := startService(t, map[string]string{
			"KAFKA_BOOTSTRAP_SERVERS": freeAddr(t),
			"OPENDOTA_STREAM_URL":     f.url,
			"SPOOL_MODE":              "memory",
			"SHUTDOWN_TIMEOUT":        "2s",
		})
		svc.waitFor(t, "all accepted", time.Minute, func() bool { return svc.metric(t, "ingestion_matches_accepted_total") == n })
		if code, _ := svc.stop(t, 30*time.Second); code == 0 {
			t.Fatalf("exit status 0 with %d matches lost", n)
		}
		out := svc.out.String()
		for key, want := range map[string]int{"accepted": n, "published": 0, "spooled": 0, "lost": n} {
			if got := shutdownCount(t, out, key); got != want {
				t.Errorf("shutdown line: %s = %d, want %d", key, got, want)
			}
		}
		if strings.Contains(out, "Failed to publish") || strings.Contains(out, "Retrying failed deliveries") {
			t.Errorf("shutdown logged matches as failed publishes rather than lost:\n%s", tail(out, 2000))
		}
		if !strings.Contains(out, `"event":"Matches lost at shutdown`) {
			t.Errorf("no line says matches were lost")
		}
	})
}

func TestKafkaDownAtStartIsNotReadyButRuns(t *testing.T) {
	f := newFeed(t, nil)
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": freeAddr(t), // nothing listens there
		"OPENDOTA_STREAM_URL":     f.url,
		"SHUTDOWN_TIMEOUT":        "2s",
	})
	svc.waitFor(t, "health", 30*time.Second, func() bool { code, _ := svc.get(t, "/api/v1/health"); return code == 200 })
	var body string
	svc.waitFor(t, "a kafka-down readiness answer", 30*time.Second, func() bool {
		var code int
		code, body = svc.get(t, "/api/v1/ready")
		return code == 503 && strings.Contains(body, `metadata for topic`)
	})
	var ready struct {
		Status string
		Checks map[string]struct{ Status, Since, Detail string }
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil {
		t.Fatal(err)
	}
	k := ready.Checks["kafka"]
	if ready.Status != "not_ready" || k.Status != "down" || k.Detail == "" || k.Since == "" {
		t.Fatalf("ready = %s", body)
	}
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status = %d, want 0 (nothing was accepted, so nothing was lost)", code)
	}
}

func TestInvalidSettingExitsWithStatus2(t *testing.T) {
	for _, tt := range []struct{ name, value string }{
		{"API_PORT", "abc"},
		{"LOG_FORMAT", "xml"},
		{"OPENDOTA_STREAM_URL", "http://example.com/matches"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), tt.name+"="+tt.value)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("err = %v, want exit status 2; output %s", err, out)
			}
			if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tt.name) {
				t.Fatalf("output %q is not one line naming %s", out, tt.name)
			}
		})
	}
}

// TestEveryInvalidSettingIsNamed: several bad settings give one line
// naming each, and exit status 2.
func TestEveryInvalidSettingIsNamed(t *testing.T) {
	cmd := exec.Command(binary)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "API_PORT=abc", "LOG_FORMAT=xml", "KAFKA_COMPRESSION=brotli")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("err = %v, want exit status 2; output %s", err, out)
	}
	line := strings.TrimSpace(string(out))
	for _, name := range []string{"API_PORT", "LOG_FORMAT", "KAFKA_COMPRESSION", "3 invalid settings"} {
		if strings.Count(line, "\n") != 0 || !strings.Contains(line, name) {
			t.Fatalf("output %q: want one line naming %s", out, name)
		}
	}
}

// TestEnvFileProblemsExitWithStatus2: a malformed .env (named with its
// line) and a missing ENV_FILE are invalid settings, like any other.
func TestEnvFileProblemsExitWithStatus2(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(bad, []byte("LOG_LEVEL=INFO\nAPI_PORT=8000\nKAFKA_SASL_PASSWORD=\"unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, envFile, want string }{
		{"malformed", bad, "at line 3"},
		{"missing", filepath.Join(dir, "nope.env"), "cannot read it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), "ENV_FILE="+tt.envFile)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "ENV_FILE") || !strings.Contains(string(out), tt.envFile) ||
				!strings.Contains(string(out), tt.want) || strings.Contains(string(out), "unclosed") {
				t.Fatalf("err %v, output %s; want exit 2 naming ENV_FILE, %s and %q, the text not shown", err, out, tt.envFile, tt.want)
			}
		})
	}
}

func TestHealthcheckCommand(t *testing.T) {
	f := newFeed(t, nil)
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": freeAddr(t),
		"OPENDOTA_STREAM_URL":     f.url,
		"SHUTDOWN_TIMEOUT":        "2s",
	})
	svc.waitFor(t, "health", 30*time.Second, func() bool { code, _ := svc.get(t, "/api/v1/health"); return code == 200 })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok := exec.CommandContext(ctx, binary, "healthcheck", "-url", "http://"+svc.addr+"/api/v1/health")
	if out, err := ok.CombinedOutput(); err != nil || !strings.Contains(string(out), "healthy") {
		t.Fatalf("healthcheck against a live service: %v %s", err, out)
	}
	bad := exec.CommandContext(ctx, binary, "healthcheck", "-url", "http://"+freeAddr(t)+"/api/v1/health")
	if err := bad.Run(); err == nil {
		t.Fatal("healthcheck against nothing succeeded")
	}
	svc.stop(t, 30*time.Second)
}

// TestProbePort: with API_PROBE_PORT the service serves health, readiness
// and metrics on a second listener (and nothing else there), the
// healthcheck command asks that one, and both close at shutdown.
func TestProbePort(t *testing.T) {
	f := newFeed(t, nil)
	probeAddr := freeAddr(t)
	_, probePort, _ := net.SplitHostPort(probeAddr)
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": freeAddr(t),
		"OPENDOTA_STREAM_URL":     f.url,
		"SHUTDOWN_TIMEOUT":        "2s",
		"API_PROBE_PORT":          probePort,
	})
	svc.waitFor(t, "health", 30*time.Second, func() bool { code, _ := svc.get(t, "/api/v1/health"); return code == 200 })
	for path, want := range map[string]int{"/api/v1/health": 200, "/api/v1/ready": 503, "/metrics": 200, "/docs": 404, "/openapi.json": 404} {
		resp, err := http.Get("http://" + probeAddr + path)
		if err != nil {
			t.Fatalf("GET %s on the probe port: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s on the probe port = %d, want %d: %s", path, resp.StatusCode, want, body)
		}
		if path == "/metrics" && !strings.Contains(string(body), `ingestion_http_connections{listener="probe"}`) {
			t.Errorf("the metrics do not count the probe listener's connections")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Nothing listens on API_PORT here: the command must ask the probe port.
	hc := exec.CommandContext(ctx, binary, "healthcheck")
	hc.Dir = t.TempDir()
	hc.Env = append(os.Environ(), "API_HOST=127.0.0.1", "API_PORT="+strings.Split(freeAddr(t), ":")[1], "API_PROBE_PORT="+probePort)
	if out, err := hc.CombinedOutput(); err != nil || !strings.Contains(string(out), "healthy") {
		t.Fatalf("healthcheck with API_PROBE_PORT: %v %s", err, out)
	}
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if c, err := net.DialTimeout("tcp", probeAddr, time.Second); err == nil {
		c.Close()
		t.Fatal("the probe port still accepts connections after the shutdown")
	}
}

// TestDevMode runs the README's first command: the service against its
// in-process broker and simulated stream, and with -source opendota-logs
// against a simulated OpenDota log feed (read at its /logs/api route).
func TestDevMode(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		source string
		ready  string // in readiness's detail of the source
	}{
		{nil, "websocket", "connected to ws://127.0.0.1:"},
		{[]string{"-source", "opendota-logs"}, "opendota-logs", "/logs/api"},
		{[]string{"-source", "steam-sequence"}, "steam-sequence", "holds 4 of 4 backfill shards"},
	} {
		t.Run(tt.source, func(t *testing.T) {
			_, kafkaPort, _ := net.SplitHostPort(freeAddr(t))
			args := append([]string{"dev", "-kafka-port", kafkaPort, "-rate", "500"}, tt.args...)
			svc := startService(t, map[string]string{"LOG_SUMMARY_INTERVAL": "200ms"}, args...)
			svc.waitFor(t, "matches flowing", 60*time.Second, func() bool {
				return svc.metric(t, "ingestion_matches_published_total") >= 200
			})
			// The backfill may publish before the forward scan has found
			// where to start: readiness waits for every part.
			svc.waitFor(t, "ready, naming "+tt.ready, 60*time.Second, func() bool {
				code, body := svc.get(t, "/api/v1/ready")
				return code == 200 && strings.Contains(body, tt.ready)
			})
			if tt.source != "steam-sequence" && svc.metric(t, "ingestion_frames_rejected_total") < 1 {
				t.Errorf("the simulated source sent nothing malformed")
			}
			if tt.source == "steam-sequence" {
				devSteamChecks(t, svc)
			}
			out := svc.out.String()
			for _, want := range []string{"127.0.0.1:" + kafkaPort, "kcat -b 127.0.0.1:" + kafkaPort, `"event":"Ingestion progress"`,
				`"event":"Source chosen","service":"ingestion-service","source":"` + tt.source + `","why":"dev mode`} {
				if !strings.Contains(out, want) {
					t.Errorf("dev output lacks %q", want)
				}
			}
			if code, _ := svc.stop(t, 30*time.Second); code != 0 {
				t.Fatalf("exit status = %d", code)
			}
			if tt.source == "opendota-logs" {
				checkDevLogsAddUp(t, svc.out.String())
			}
		})
	}
}

var devLogsLine = regexp.MustCompile(`announced (\d+) new matches, (\d+) again .* and (\d+) older ones`)

// checkDevLogsAddUp: what the simulated log feed says it announced adds up
// to the service's own shutdown line: the new and the older matches
// published, those announced again skipped as duplicates (but for the
// lines sent as the service stopped reading).
func checkDevLogsAddUp(t *testing.T, out string) {
	t.Helper()
	m := devLogsLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no line says what the simulated feed announced:\n%s", tail(out, 2000))
	}
	fresh, _ := strconv.Atoi(m[1])
	again, _ := strconv.Atoi(m[2])
	older, _ := strconv.Atoi(m[3])
	published, duplicates := shutdownCount(t, out, "published"), shutdownCount(t, out, "duplicates")
	accepted := shutdownCount(t, out, "accepted")
	// The feed goes on while the service stops reading: the last few lines
	// it sent may not have been read.
	const inFlight = 10
	if published != accepted || accepted > fresh+older || fresh+older-accepted > inFlight || duplicates > again || again-duplicates > inFlight {
		t.Errorf("the feed announced %d new, %d again, %d older; the service accepted %d, published %d, counted %d duplicates",
			fresh, again, older, accepted, published, duplicates)
	}
}

// TestDevModeHonoursDotEnv: dev mode takes LOG_SUMMARY_INTERVAL from .env
// as it would from the environment, and an API port in use names the
// flag that picks another.
func TestDevModeHonoursDotEnv(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "dev.env")
	if err := os.WriteFile(envFile, []byte("LOG_SUMMARY_INTERVAL=0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, kafkaPort, _ := net.SplitHostPort(freeAddr(t))
	svc := startService(t, map[string]string{"ENV_FILE": envFile, "LOG_SUMMARY_INTERVAL": ""}, "dev", "-kafka-port", kafkaPort, "-rate", "500")
	svc.waitFor(t, "matches flowing", 60*time.Second, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") >= 600 // over a second at 500/s
	})
	// Without .env's 0, dev mode logs progress every 5 s.
	time.Sleep(6 * time.Second)
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status = %d", code)
	}
	if strings.Contains(svc.out.String(), "Ingestion progress") {
		t.Fatalf("LOG_SUMMARY_INTERVAL=0 in .env was overridden: dev mode logged progress")
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, apiPort, _ := net.SplitHostPort(busy.Addr().String())
	_, kafkaPort, _ = net.SplitHostPort(freeAddr(t))
	again := startService(t, nil, "dev", "-kafka-port", kafkaPort, "-api-port", apiPort)
	select {
	case <-again.done:
	case <-time.After(30 * time.Second):
		t.Fatal("dev mode did not exit with its API port in use")
	}
	if code := again.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(again.out.String(), "use -api-port to pick another port") {
		t.Fatalf("exit %d, output %s; want a failure naming -api-port", code, again.out.String())
	}
}

// TestEndToEndSASLSSLCreatesTopic runs the binary against a SASL_SSL
// listener with SCRAM, and lets it create its topic.
func TestEndToEndSASLSSLCreatesTopic(t *testing.T) {
	const n = 500
	cluster := kafkatest.StartSecure(t)
	topic := fmt.Sprintf("e2e-secure-%d", time.Now().UnixNano())
	frames, want := mixedFrames(7_000_000_000, n, 50)
	f := newFeed(t, frames)
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS":        strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":            topic,
		"KAFKA_CREATE_TOPIC":             "true",
		"KAFKA_TOPIC_PARTITIONS":         "2",
		"KAFKA_TOPIC_REPLICATION_FACTOR": "1",
		"KAFKA_SECURITY_PROTOCOL":        "SASL_SSL",
		"KAFKA_SASL_MECHANISM":           "SCRAM-SHA-512",
		"KAFKA_SASL_USERNAME":            cluster.User,
		"KAFKA_SASL_PASSWORD":            cluster.Password,
		"KAFKA_TLS_CA_FILE":              cluster.CAFile,
		"OPENDOTA_STREAM_URL":            f.url,
	})
	svc.waitFor(t, "all matches published", 60*time.Second, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") >= n
	})
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status = %d", code)
	}
	recs := cluster.ReadAll(t, topic, n, 30*time.Second)
	got := map[int64]bool{}
	for _, r := range recs {
		id, _ := strconv.ParseInt(string(r.Key), 10, 64)
		got[id] = true
	}
	if len(got) != n || len(recs) != n {
		t.Fatalf("topic holds %d records, %d distinct, want %d", len(recs), len(got), n)
	}
	for id := range got {
		if !want[id] {
			t.Fatalf("unexpected match %d", id)
		}
	}
	out := svc.out.String()
	if !strings.Contains(out, "Created Kafka topic") {
		t.Errorf("no topic creation logged")
	}
	if strings.Contains(out, cluster.Password) {
		t.Fatalf("the SASL password appears in the logs")
	}
}

// TestMissingTopicIsNotReady checks the default: no topic creation, one
// clear error, not ready, and records wait instead of failing.
func TestMissingTopicIsNotReady(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := fmt.Sprintf("e2e-missing-%d", time.Now().UnixNano())
	frames, _ := mixedFrames(6_000_000_000, 100, 0)
	f := newFeed(t, frames)
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     f.url,
	})
	svc.waitFor(t, "a not-ready answer naming the setting", 30*time.Second, func() bool {
		code, body := svc.get(t, "/api/v1/ready")
		return code == 503 && strings.Contains(body, "KAFKA_CREATE_TOPIC")
	})
	svc.waitFor(t, "frames accepted", 30*time.Second, func() bool {
		return svc.metric(t, "ingestion_matches_accepted_total") == 100
	})
	if n := strings.Count(svc.out.String(), "Kafka topic does not exist"); n != 1 {
		t.Fatalf("the missing topic was logged %d times, want once", n)
	}
	if got := svc.metric(t, "ingestion_publish_errors_total"); got != 0 {
		t.Fatalf("%v records failed; they should wait for the topic", got)
	}
	// Creating the topic releases the held records.
	if _, err := cluster.Admin(t).CreateTopic(context.Background(), 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	svc.waitFor(t, "held records published", 60*time.Second, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") == 100
	})
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status = %d", code)
	}
}

// consoleConsumerEnv names scripts/kafka.sh when a real cluster it started
// is under test; the test below then reads the topic with Kafka's own
// console consumer, a client that is not ours.
const consoleConsumerEnv = "KAFKA_TEST_CONSOLE_CONSUMER"

func TestTopicIsReadableByKafkasConsoleConsumer(t *testing.T) {
	script := os.Getenv(consoleConsumerEnv)
	if script == "" || !kafkatest.Real() {
		t.Skipf("needs a real cluster started by scripts/kafka.sh: set %s to that script and %s to its brokers (.ci/run does)", consoleConsumerEnv, kafkatest.BrokersEnv)
	}
	const n = 500
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	frames, want := mixedFrames(5_000_000_000, n, 20)
	f := newFeed(t, frames)
	svc := startService(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     f.url,
	})
	svc.waitFor(t, "all matches published", 60*time.Second, func() bool {
		return svc.metric(t, "ingestion_matches_published_total") >= n
	})
	if code, _ := svc.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status = %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, "consume", topic, "--max", strconv.Itoa(n), "--timeout-ms", "60000")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("console consumer: %v\n%s", err, stderr.String())
	}
	seen := map[int64]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		key, value, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("console consumer line %q is not key<TAB>value", line)
		}
		id, err := strconv.ParseInt(key, 10, 64)
		if err != nil || !want[id] || value != `{"match_id":`+key+`}` {
			t.Fatalf("console consumer read key %q value %q", key, value)
		}
		seen[id] = true
	}
	if len(seen) != n {
		t.Fatalf("console consumer read %d distinct matches, want %d", len(seen), n)
	}
	t.Logf("Kafka's console consumer read all %d records with the exact key and value", n)
}

func TestSpoolDirectoryProblemsStopStartUp(t *testing.T) {
	f := newFeed(t, nil)
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("not a directory", func(t *testing.T) {
		svc := startService(t, map[string]string{"OPENDOTA_STREAM_URL": f.url, "KAFKA_BOOTSTRAP_SERVERS": freeAddr(t), "SPOOL_DIR": notADir})
		select {
		case <-svc.done:
		case <-time.After(30 * time.Second):
			t.Fatal("the service started with a spool directory that is a file")
		}
		if code := svc.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(svc.out.String(), "SPOOL_DIR") {
			t.Fatalf("exit %d, output %s", code, svc.out.String())
		}
	})
	t.Run("in use by another instance", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "spool")
		env := map[string]string{"OPENDOTA_STREAM_URL": f.url, "KAFKA_BOOTSTRAP_SERVERS": freeAddr(t), "SPOOL_DIR": dir, "SHUTDOWN_TIMEOUT": "2s"}
		first := startService(t, env)
		first.waitFor(t, "the first instance up", 30*time.Second, func() bool { code, _ := first.get(t, "/api/v1/health"); return code == 200 })
		second := startService(t, env)
		select {
		case <-second.done:
		case <-time.After(30 * time.Second):
			t.Fatal("a second instance started on the same spool directory")
		}
		if !strings.Contains(second.out.String(), "in use by another process") {
			t.Fatalf("second instance output: %s", second.out.String())
		}
		if code, _ := first.stop(t, 30*time.Second); code != 0 {
			t.Fatalf("first instance exit %d", code)
		}
	})
}
