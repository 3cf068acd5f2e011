//go:build linux

package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

// TestTimerSlack: the service gives every one of its threads the timer
// slack of TIMER_SLACK (5 ms by default) by executing itself again, as the
// same process, before it starts; it then runs as always. TIMER_SLACK=0
// leaves the kernel's 50 µs.
func TestTimerSlack(t *testing.T) {
	cluster := kafkatest.Start(t)
	// The service inherits this process's slack; if a supervisor set one,
	// the default keeps it.
	inherited, err := timerSlack()
	if err != nil {
		t.Fatal(err)
	}
	byDefault := 5 * time.Millisecond
	if inherited != kernelDefaultSlack {
		byDefault = inherited
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		want time.Duration
	}{
		{"default", nil, byDefault},
		{"set", map[string]string{"TIMER_SLACK": "2ms"}, 2 * time.Millisecond},
		{"off", map[string]string{"TIMER_SLACK": "0"}, inherited},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 50
			topic := cluster.Topic(t, 1)
			frames, _ := mixedFrames(6_000_000_000, n, 0)
			f := newFeed(t, frames)
			env := map[string]string{
				"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
				"KAFKA_PUBLISH_TOPIC":     topic,
				"OPENDOTA_STREAM_URL":     f.url,
			}
			for k, v := range tt.env {
				env[k] = v
			}
			svc := startService(t, env)
			svc.waitFor(t, "every match published", time.Minute, func() bool {
				return svc.metric(t, "ingestion_matches_published_total") == n
			})
			// The process the harness started (its PID) is the one serving.
			tasks, err := os.ReadDir("/proc/" + strconv.Itoa(svc.cmd.Process.Pid) + "/task")
			if err != nil || len(tasks) < 2 {
				t.Fatalf("threads: %d, %v", len(tasks), err)
			}
			for _, task := range tasks {
				// Only /proc/<pid> has the file, but every thread ID is a
				// <pid> there.
				f := filepath.Join("/proc", task.Name(), "timerslack_ns")
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				if got := time.Duration(ns); got != tt.want {
					t.Errorf("%s: %v, want %v", f, got, tt.want)
				}
			}
			if c := strings.Count(svc.out.String(), `"Starting ingestion service"`); c != 1 {
				t.Errorf("%d start lines, want 1", c)
			}
			if code, _ := svc.stop(t, 30*time.Second); code != 0 {
				t.Errorf("exit status %d", code)
			}
		})
	}
}

// TestTimerSlackWhenExecFails: when the binary cannot be executed again
// (a security profile that forbids it), setTimerSlack says why and leaves
// the thread with the slack it had, so that the service runs on as it was.
func TestTimerSlackWhenExecFails(t *testing.T) {
	selfExe = filepath.Join(t.TempDir(), "missing") // an exec that must fail
	t.Cleanup(func() { selfExe = "/proc/self/exe" })
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := timerSlack()
	if err != nil {
		t.Fatal(err)
	}
	want := before + time.Millisecond
	got, err := setTimerSlack(want, true)
	if err == nil || !strings.Contains(err.Error(), "execute the binary again") {
		t.Fatalf("error %v, want the failed exec", err)
	}
	if got != before {
		t.Errorf("returned %v, want the slack it had, %v", got, before)
	}
	if now, _ := timerSlack(); now != before {
		t.Errorf("the thread's slack is %v after the failed exec, want %v back", now, before)
	}
}
