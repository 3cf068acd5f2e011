package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMain makes the test binary a pipeline for -pipeline when
// BENCHMARK_TEST_PIPELINE is set: TestPipelineComparison runs it.
func TestMain(m *testing.M) {
	if os.Getenv("BENCHMARK_TEST_PIPELINE") != "" {
		if err := testPipeline(); err != nil {
			fmt.Fprintln(os.Stderr, "test pipeline:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testPipeline is a minimal pipeline as -pipeline runs one: it reads
// frames from $BENCH_STREAM_URL until the load generator closes the
// stream, produces each to $BENCH_TOPIC on $BENCH_BROKERS keyed by the
// ID it carries, flushes and exits.
func testPipeline() error {
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(os.Getenv(envBrokers), ",")...),
		kgo.DefaultProduceTopic(os.Getenv(envTopic)), kgo.ProducerLinger(10*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	c, _, err := websocket.Dial(ctx, os.Getenv(envStreamURL), nil)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	var failed error
	for {
		_, frame, err := c.Read(ctx)
		if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
			break
		} else if err != nil {
			return err
		}
		key, ok := strings.CutPrefix(strings.TrimSuffix(string(frame), "}"), `{"match_id":`)
		if !ok {
			return fmt.Errorf("frame %q", frame)
		}
		cl.Produce(ctx, &kgo.Record{Key: []byte(key), Value: frame}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed = err
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return failed
}

// TestPipelineComparison runs the service and a pipeline (this test
// binary, see testPipeline) under the same load, and checks the
// comparison table: a row for every scenario, with figures.
func TestPipelineComparison(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	args := []string{"-n", "2000", "-runs", "1", "-rates", "20:2,500:1", "-quiet", "-pipeline-warmup", "500ms",
		"-pipeline", "BENCHMARK_TEST_PIPELINE=1 exec '" + self + "'"}
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	report := out.String()
	t.Log(report)
	for _, row := range []string{`\| 20/s for 2 s \| ([0-9.]+) ms/s \| ([0-9.]+) ms/s \| ([0-9.]+) \(`, `\| 500/s for 1 s \| ([0-9.]+) ms/s \| ([0-9.]+) ms/s \|`,
		`\| full speed, 2,000 \| ([0-9.]+) µs/match \| ([0-9.]+) µs/match \|`} {
		m := regexp.MustCompile(row).FindStringSubmatch(report)
		if m == nil {
			t.Errorf("no row matching %s in the report", row)
			continue
		}
		for _, v := range m[1:] {
			if f, err := strconv.ParseFloat(v, 64); err != nil || f <= 0 {
				t.Errorf("row %q: figure %q, want a positive number", m[0], v)
			}
		}
	}
	if !strings.Contains(report, "0 missing, 0 duplicates") {
		t.Errorf("the report does not say every ID arrived once:\n%s", report)
	}
	if m := regexp.MustCompile(`\| wake-ups per second \| ([0-9,]+) \|`).FindStringSubmatch(report); m == nil || m[1] == "0" {
		t.Errorf("no wake-ups figure for the service")
	}
}

// TestRunTiny runs the whole command with tiny settings: it builds the
// service, runs every scenario once against kfake, and checks the report.
func TestRunTiny(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	args := []string{"-n", "2000", "-runs", "1", "-rate-seconds", "1", "-rates", "500", "-quiet"}
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	report := out.String()
	m := regexp.MustCompile(`\| throughput \(matches/s\) \| ([0-9,]+) \|`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("no throughput row in the report:\n%s", report)
	}
	if v, err := strconv.Atoi(strings.ReplaceAll(m[1], ",", "")); err != nil || v <= 0 {
		t.Errorf("throughput %q, want a positive number", m[1])
	}
	if !strings.Contains(report, "0 missing") {
		t.Errorf("report does not say 0 missing:\n%s", report)
	}
	for _, want := range []string{"latency p99 (ms)", "bare WebSocket reader", "bare franz-go producer", "`go run ./cmd/benchmark -n 2000"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestParseFlagsQuick checks that -quick sets the smoke-run sizes and that
// explicit flags win over it.
func TestParseFlagsQuick(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-runs", "2"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.n != 20000 || o.runs != 2 || o.rateSeconds != 3 || len(o.rates) != 2 {
		t.Errorf("got n=%d runs=%d rate-seconds=%d rates=%v", o.n, o.runs, o.rateSeconds, o.rates)
	}
	o, err = parseFlags([]string{"-rates", "20:60,1000", "-rate-seconds", "7"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []rateSpec{{20, 60}, {1000, 7}}; fmt.Sprint(o.rates) != fmt.Sprint(want) {
		t.Errorf("-rates 20:60,1000 -rate-seconds 7: got %v, want %v", o.rates, want)
	}
	for _, bad := range [][]string{{"-n", "0"}, {"-rates", "10,x"}, {"-rates", "10:0"}, {"-rates", "10:x"}, {"-mode", "tape"}, {"-env", "NOEQUALS"}, {"extra"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// TestHelpers checks the number formatting and the record checks.
func TestHelpers(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
	if id, ok := parseID([]byte("8000000001")); !ok || id != 8000000001 {
		t.Errorf("parseID = %d, %v", id, ok)
	}
	if _, ok := parseID([]byte("-1")); ok {
		t.Error("parseID accepted -1")
	}
	if !validValue([]byte(`{"match_id":42}`), []byte("42")) || validValue([]byte(`{"match_id":43}`), []byte("42")) {
		t.Error("validValue is wrong")
	}
	if lo, med, hi := stats([]float64{3, 1, 2, 10}); lo != 1 || med != 2.5 || hi != 10 {
		t.Errorf("stats = %v %v %v", lo, med, hi)
	}
}
