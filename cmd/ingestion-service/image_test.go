//go:build image

package main

// The container image's tests: the image built from the repository's
// Dockerfile, run with podman against a Kafka broker and a match stream on
// the host's loopback (host network). scripts/image.sh test builds the
// image and runs them; by hand:
//
//	go test -tags image -v -run TestImage ./cmd/ingestion-service
//
// INGESTION_IMAGE names the image (default localhost/ingestion-service:ci)
// and PODMAN_FLAGS the flags podman needs on this machine before its
// command (default --runtime=runc --cgroup-manager=cgroupfs).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/logtest"
)

const (
	defaultImage       = "localhost/ingestion-service:ci"
	defaultPodmanFlags = "--runtime=runc --cgroup-manager=cgroupfs"
	// imageSpool is where the Dockerfile puts the spool (SPOOL_DIR).
	imageSpool = "/var/lib/ingestion-service/spool"
	// imageUID is the image's non-root user (distroless's nonroot), the
	// runAsUser of deploy/kubernetes.
	imageUID = 65532
	// imageSizeBudget is the most the image may weigh: a static binary on
	// a base of a few megabytes.
	imageSizeBudget = 64 << 20
)

func imageName() string {
	if s := os.Getenv("INGESTION_IMAGE"); s != "" {
		return s
	}
	return defaultImage
}

// podman runs podman with this machine's flags and returns its combined
// output.
func podman(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := podmanCmd(ctx, args...).CombinedOutput()
	return withoutSystemdNoise(string(out)), err
}

func podmanCmd(ctx context.Context, args ...string) *exec.Cmd {
	flags := os.Getenv("PODMAN_FLAGS")
	if flags == "" {
		flags = defaultPodmanFlags
	}
	return exec.CommandContext(ctx, "podman", append(strings.Fields(flags), args...)...)
}

// withoutSystemdNoise drops podman's complaints that it cannot reach
// systemd to schedule health checks (there is no systemd here; the tests
// run the checks themselves).
func withoutSystemdNoise(out string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		if !strings.Contains(line, "systemd") {
			b.WriteString(line)
		}
	}
	return strings.TrimSpace(b.String())
}

func mustPodman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := podman(t, args...)
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// container is the service running in a container, in the foreground of
// a podman run whose exit status is the container's.
type container struct {
	*service
	name string
}

// runFlags are the container's constraints, those of deploy/kubernetes'
// securityContext: a read-only root filesystem with nothing writable but
// the spool volume (no tmpfs), no capabilities, no privilege escalation;
// the image's own user. Ulimits stay within this machine's hard limits,
// which podman's defaults may exceed.
func runFlags(t *testing.T) []string {
	t.Helper()
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	n := min(nofile.Max, 65536)
	return []string{
		"--network=host", "--read-only", "--read-only-tmpfs=false",
		"--cap-drop=ALL", "--security-opt=no-new-privileges",
		"--health-interval=disable", // podman schedules checks through systemd; the tests run them
		fmt.Sprintf("--ulimit=nofile=%d:%d", n, n), "--ulimit=nproc=4096:4096",
	}
}

// startContainer runs the image with env and the service's arguments, and
// removes the container when t ends.
func startContainer(t *testing.T, env map[string]string, extra []string, args ...string) *container {
	t.Helper()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	name := "ingestion-test-" + randomHex(t)
	argv := append([]string{"run", "--name", name}, runFlags(t)...)
	argv = append(argv, extra...)
	env["API_PORT"] = port
	env["LOG_SUMMARY_INTERVAL"] = "1s"
	for k, v := range env {
		argv = append(argv, "--env", k+"="+v)
	}
	argv = append(argv, imageName())
	argv = append(argv, args...)
	cmd := podmanCmd(context.Background(), argv...)
	s := &service{cmd: cmd, addr: addr, out: &logtest.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if out, err := podman(t, "rm", "--force", "--ignore", "--time=0", name); err != nil {
			t.Logf("podman rm %s: %v %s", name, err, out)
		}
		if cmd.ProcessState == nil {
			<-s.done
		}
		if t.Failed() {
			t.Logf("container %s output (progress lines left out but the last):\n%s", name, tail(eventful(s.out.String()), 12000))
		}
	})
	return &container{service: s, name: name}
}

// stop stops the container as an orchestrator does (podman stop: SIGTERM,
// then SIGKILL after grace) and returns its exit status and how long it
// took.
func (c *container) stop(t *testing.T, grace time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	mustPodman(t, "stop", "--time", strconv.Itoa(int(grace/time.Second)), c.name)
	select {
	case <-c.done:
	case <-time.After(grace + 30*time.Second):
		t.Fatalf("podman run did not return after podman stop")
	}
	took := time.Since(start)
	code, err := strconv.Atoi(mustPodman(t, "inspect", "--format", "{{.State.ExitCode}}", c.name))
	if err != nil {
		t.Fatal(err)
	}
	return code, took
}

// pid returns the container's main process on the host.
func (c *container) pid(t *testing.T) int {
	t.Helper()
	pid, err := strconv.Atoi(mustPodman(t, "inspect", "--format", "{{.State.Pid}}", c.name))
	if err != nil || pid <= 0 {
		t.Fatalf("container %s has no process: %v", c.name, err)
	}
	return pid
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestImage(t *testing.T) {
	img := imageName()
	if _, err := podman(t, "image", "exists", img); err != nil {
		t.Fatalf("no image %s: build it with scripts/image.sh build (or set INGESTION_IMAGE)", img)
	}
	t.Run("size", func(t *testing.T) { testImageSize(t, img) })
	t.Run("runs as configured", testImageRuns)
	t.Run("stop drains to Kafka", testImageStopDrains)
	t.Run("spool volume outlives the container", testImageSpoolVolume)
}

func testImageSize(t *testing.T, img string) {
	size, err := strconv.ParseInt(mustPodman(t, "image", "inspect", "--format", "{{.Size}}", img), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s: %.1f MB (%d bytes)", img, float64(size)/1e6, size)
	if size > imageSizeBudget {
		t.Errorf("the image weighs %d bytes, more than its budget of %d", size, imageSizeBudget)
	}
	var inspect []struct {
		Config struct {
			User    string
			Volumes map[string]any
		}
		// Healthcheck: the OCI image format has none, so an image built
		// in it (buildah's default) silently loses the Dockerfile's
		// HEALTHCHECK.
		Healthcheck *struct{ Test []string }
	}
	raw := mustPodman(t, "image", "inspect", img)
	if err := json.Unmarshal([]byte(raw), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect %s: %v\n%s", img, err, raw)
	}
	cfg, hc := inspect[0].Config, inspect[0].Healthcheck
	if hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/usr/local/bin/ingestion-service", "healthcheck"}) {
		t.Errorf("the image's health check is %+v, want the Dockerfile's HEALTHCHECK (built in OCI format, which drops it?)", hc)
	}
	if _, ok := cfg.Volumes[imageSpool]; !ok {
		t.Errorf("the image declares no volume at %s: %s", imageSpool, raw)
	}
	if cfg.User == "" || strings.HasPrefix(cfg.User, "root") || strings.HasPrefix(cfg.User, "0") {
		t.Errorf("the image's user is %q, want a non-root one", cfg.User)
	}
}

// testImageRuns: the image starts, publishes a loopback stream's matches
// to the host's Kafka, is ready, runs as the non-root user on a read-only
// root filesystem, and its HEALTHCHECK passes while the API answers and
// fails while it does not.
func testImageRuns(t *testing.T) {
	const valid, invalid = 2000, 100
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	frames, want := mixedFrames(8_200_000_000, valid, invalid)
	f := newFeed(t, frames)
	c := startContainer(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     f.url,
	}, nil)

	c.waitFor(t, "ready", 90*time.Second, func() bool { code, _ := c.get(t, "/api/v1/ready"); return code == 200 })
	recs := cluster.ReadAll(t, topic, valid, time.Minute)
	got := map[int64]bool{}
	for _, r := range recs {
		id, err := strconv.ParseInt(string(r.Key), 10, 64)
		if err != nil || !want[id] {
			t.Fatalf("record key %q is no match the stream sent", r.Key)
		}
		got[id] = true
	}
	if len(got) != valid || len(recs) != valid {
		t.Fatalf("the topic holds %d records of %d matches, want %d", len(recs), len(got), valid)
	}
	t.Logf("published: %d of %d valid frames (%d invalid rejected); /api/v1/ready 200", len(got), valid, invalid)

	pid := c.pid(t)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := fmt.Sprintf("%d\t%d\t%d\t%d", imageUID, imageUID, imageUID, imageUID)
	for _, line := range strings.Split(string(status), "\n") {
		if (strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:")) && !strings.Contains(line, wantIDs) {
			t.Errorf("the service runs as %q, want %d throughout", line, imageUID)
		}
	}
	for _, field := range []string{"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), "\n"+field+"\n") {
			t.Errorf("the service's /proc status has no %q: capabilities not dropped or privileges not fenced", field)
		}
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	if opts := mountOptions(string(mounts), "/"); !strings.Contains(","+opts+",", ",ro,") {
		t.Errorf("the root filesystem is mounted %q, want read-only", opts)
	}
	t.Logf("user: uid/gid %d; root filesystem read-only; no capabilities, bounding set empty; no new privileges", imageUID)

	if out, err := podman(t, "healthcheck", "run", c.name); err != nil {
		t.Fatalf("HEALTHCHECK of a healthy service failed: %v %s", err, out)
	}
	// A service whose API does not answer: stopped, its port still bound.
	mustPodman(t, "kill", "--signal", "STOP", c.name)
	start := time.Now()
	out, err := podman(t, "healthcheck", "run", c.name)
	took := time.Since(start)
	mustPodman(t, "kill", "--signal", "CONT", c.name)
	if err == nil {
		t.Fatalf("HEALTHCHECK passed while the API could not answer: %s", out)
	}
	if out, err := podman(t, "healthcheck", "run", c.name); err != nil {
		t.Fatalf("HEALTHCHECK failed once the service ran again: %v %s", err, out)
	}
	t.Logf("HEALTHCHECK: passes while healthy, fails (%q after %s) while the API is stopped, passes again", out, took.Round(100*time.Millisecond))

	if code, took := c.stop(t, 60*time.Second); code != 0 {
		t.Fatalf("exit status %d after podman stop (%s)", code, took)
	}
}

// mountOptions returns the mount options of the mount at point in a
// /proc/PID/mountinfo, the last one mounted there.
func mountOptions(mountinfo, point string) string {
	opts := ""
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == point {
			opts = f[5]
		}
	}
	return opts
}

// testImageStopDrains: matches the producer still lingers over when
// podman stop sends SIGTERM reach Kafka before the container exits 0,
// within SHUTDOWN_TIMEOUT.
func testImageStopDrains(t *testing.T) {
	const n = 3000
	const shutdownTimeout = 20 * time.Second
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 2)
	f, env := lingering(t, cluster, topic, 8_300_000_000, n)
	env["SHUTDOWN_TIMEOUT"] = shutdownTimeout.String()
	c := startContainer(t, env, nil)
	before := lingerOver(t, c.service, f, n)
	code, took := c.stop(t, shutdownTimeout+15*time.Second)
	if code != 0 {
		t.Fatalf("exit status %d after podman stop", code)
	}
	if took > shutdownTimeout {
		t.Errorf("the container took %s to stop, more than SHUTDOWN_TIMEOUT (%s)", took, shutdownTimeout)
	}
	if got := len(cluster.ReadAll(t, topic, n, 30*time.Second)); got != n {
		t.Fatalf("the topic holds %d records after podman stop, want %d", got, n)
	}
	t.Logf("podman stop: %d of %d matches still lingering at SIGTERM, all %d in Kafka, exit 0 after %s (SHUTDOWN_TIMEOUT %s)",
		n-int(before), n, n, took.Round(10*time.Millisecond), shutdownTimeout)
}

// testImageSpoolVolume: with Kafka out of reach, what the container
// accepted is spooled to its volume at podman stop; the container is
// removed; a new container on the same volume, with Kafka there, delivers
// every match.
func testImageSpoolVolume(t *testing.T) {
	const n = 500
	volume := "ingestion-test-spool-" + randomHex(t)
	mustPodman(t, "volume", "create", volume)
	t.Cleanup(func() { _, _ = podman(t, "volume", "rm", "--force", volume) })
	mount := []string{"--volume", volume + ":" + imageSpool}

	frames, want := mixedFrames(8_400_000_000, n, 0)
	first := startContainer(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": freeAddr(t), // nothing listens there
		"OPENDOTA_STREAM_URL":     newFeed(t, frames).url,
		"SHUTDOWN_TIMEOUT":        "2s",
	}, mount)
	first.waitFor(t, "all accepted", 90*time.Second, func() bool {
		return first.metric(t, "ingestion_matches_accepted_total") == n
	})
	if code, _ := first.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0: every match was kept", code)
	}
	if got := shutdownCount(t, first.out.String(), "spooled_at_shutdown"); got != n {
		t.Fatalf("the first container spooled %d at shutdown, want %d", got, n)
	}
	mustPodman(t, "rm", first.name)

	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 2)
	next := startContainer(t, map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     newFeed(t, nil).url,
	}, mount)
	next.waitFor(t, "the spool replayed", 90*time.Second, func() bool {
		return next.metric(t, "ingestion_matches_published_total") == n
	})
	recs := cluster.ReadAll(t, topic, n, 30*time.Second)
	got := map[int64]bool{}
	for _, r := range recs {
		id, _ := strconv.ParseInt(string(r.Key), 10, 64)
		if want[id] {
			got[id] = true
		}
	}
	if len(got) != n {
		t.Fatalf("the topic holds %d of the %d spooled matches", len(got), n)
	}
	if code, _ := next.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d after the replay", code)
	}
	t.Logf("spool volume: %d matches spooled with Kafka out of reach, the container removed, all %d delivered by a new container on the volume", n, n)
}
