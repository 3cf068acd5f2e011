package steamseq

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// TestProbeKeysTellsARefusedKey: one call a key; the key Steam refuses
// fails, named by its position and never shown; the other reports the head.
func TestProbeKeysTellsARefusedKey(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 50})
	s, err := New(Config{BaseURL: base, Keys: []string{steamfake.DefaultKey, "wr0ng-s3cr3t"}}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	probes := s.ProbeKeys(context.Background())
	if len(probes) != 2 || probes[0].Err != nil || probes[0].Head != fake.Head() || probes[1].Err == nil {
		t.Fatalf("probes %+v; want key 1 at the head %d, key 2 refused", probes, fake.Head())
	}
	if msg := probes[1].Err.Error(); strings.Contains(msg, "wr0ng") || !strings.Contains(msg, "key 2") {
		t.Fatalf("refusal %q: want key 2 named by position, never shown", msg)
	}
	if n := len(fake.Calls()); n != 2 {
		t.Fatalf("%d calls, want one a key", n)
	}
}
