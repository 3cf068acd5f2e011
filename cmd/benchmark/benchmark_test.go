package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

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
	for _, bad := range [][]string{{"-n", "0"}, {"-rates", "10,x"}, {"-mode", "tape"}, {"extra"}} {
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
