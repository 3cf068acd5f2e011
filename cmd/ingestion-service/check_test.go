package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

// runCheck runs the binary's check command with env alone (and PATH and
// HOME: the test's own KAFKA_TEST_* variables would be warned about), in
// an empty directory, and returns its exit status and output.
func runCheck(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	return runCommand(t, env, append([]string{"check"}, args...)...)
}

// runCommand runs the binary with args in an empty directory and only
// env besides PATH and HOME, and returns its exit status and output.
func runCommand(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestCheckCommand: check passes a good configuration against a live
// Kafka and stream; lists every invalid setting and a mistyped variable
// with exit status 2; fails with 1, naming each, a missing topic and a
// stream that does not answer; and, -offline, touches neither.
func TestCheckCommand(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 3)
	f := newFeed(t, nil)
	good := map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(cluster.Brokers, ","),
		"KAFKA_PUBLISH_TOPIC":     topic,
		"OPENDOTA_STREAM_URL":     f.url,
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string
		not  []string
	}{
		{"good", good, nil, 0,
			[]string{"ok       configuration: source websocket", "ok       kafka:", "ok       topic " + topic + ": 3 partitions, all led", "ok       source websocket", "handshake succeeded"},
			[]string{"FAIL", "warning"}},
		{"invalid settings and a typo", with(map[string]string{"API_PORT": "abc", "LOG_FORMAT": "xml", "KAFKA_BOOTSTRAP_SERVER": "x:1"}), nil, 2,
			[]string{`FAIL     invalid API_PORT="abc"`, `FAIL     invalid LOG_FORMAT="xml"`, "warning  KAFKA_BOOTSTRAP_SERVER (environment) is ignored: did you mean KAFKA_BOOTSTRAP_SERVERS?"},
			[]string{"ok       kafka", "ingestion-service: "}}, // each invalid setting once, not again on stderr
		{"missing topic, stream down", with(map[string]string{"KAFKA_PUBLISH_TOPIC": topic + "-missing", "OPENDOTA_STREAM_URL": "ws://127.0.0.1:1/matches"}), []string{"-timeout", "5s"}, 1,
			[]string{"ok       kafka:", "FAIL     topic " + topic + "-missing", "KAFKA_CREATE_TOPIC=true", "FAIL     source websocket at ws://127.0.0.1:1/matches"},
			nil},
		{"offline", with(map[string]string{"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "OPENDOTA_STREAM_URL": "ws://127.0.0.1:1/matches"}), []string{"-offline"}, 0,
			[]string{"ok       configuration"},
			[]string{"kafka", "source websocket at"}},
		{"settings the source ignores", with(map[string]string{"STEAM_API_KEY": "k", "STEAM_MATCHES_TOPIC": "matches"}), []string{"-offline"}, 0,
			[]string{"warning  STEAM_API_KEY is set, but SOURCE=websocket does not read it", "warning  STEAM_MATCHES_TOPIC is set, but SOURCE=websocket does not read it", "ok       configuration"},
			[]string{"FAIL"}},
		{"warnings fail with -strict", with(map[string]string{"STEAM_API_KEY": "k", "KAFKA_LINGR": "5ms"}), []string{"-offline", "-strict"}, 2,
			[]string{"warning  STEAM_API_KEY is set", "warning  KAFKA_LINGR (environment) is ignored: did you mean KAFKA_LINGER?", "FAIL     2 warning(s), and -strict makes them fail"},
			[]string{"ingestion-service:"}},
		{"-strict without warnings", good, []string{"-offline", "-strict"}, 0, []string{"ok       configuration"}, []string{"warning", "FAIL"}},
		{"every topic the Steam scans write, probed", with(map[string]string{"SOURCE": "steam-sequence", "STEAM_API_KEY": "k", "STEAM_API_URL": "http://127.0.0.1:1",
			"STEAM_MATCHES_TOPIC": topic + "-matches", "OPENDOTA_STREAM_URL": ""}), []string{"-timeout", "5s"}, 1,
			[]string{"writes " + topic + ", " + topic + "-matches, " + topic + "-steam-cursor at", "ok       topic " + topic + ": 3 partitions",
				"FAIL     topic " + topic + "-matches", "ok       topic " + topic + "-steam-cursor: ", "the service creates it, compacted", "FAIL     source steam-sequence"},
			nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCheck(t, tt.env, tt.args...)
			t.Logf("exit %d:\n%s", code, out)
			if code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
		})
	}
}
