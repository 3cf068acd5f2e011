package kafkasink

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/logtest"
)

// TestClientLoggerQuietsRepeats: franz-go's info lines go to debug, and a
// warning repeated at every retry is logged at warning level once a
// minute, the rest at debug.
func TestClientLoggerQuietsRepeats(t *testing.T) {
	var out logtest.Buffer
	l := ClientLogger(slog.New(slog.NewTextHandler(&out, nil))).(*quietClient)
	clock := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return clock }
	for range 30 { // a retry every 2 s for a minute
		l.Log(kgo.LogLevelWarn, "unable to open connection to broker", "addr", "localhost:9092")
		l.Log(kgo.LogLevelInfo, "metadata refresh", "topic", "t")
		clock = clock.Add(2 * time.Second)
	}
	l.Log(kgo.LogLevelWarn, "unable to open connection to broker", "addr", "localhost:9092")
	l.Log(kgo.LogLevelError, "unable to request api versions")
	text := out.String()
	if n := strings.Count(text, "unable to open connection"); n != 2 {
		t.Fatalf("the repeated warning was logged %d times over 62 s, want 2 (once a minute):\n%s", n, text)
	}
	if strings.Contains(text, "metadata refresh") || !strings.Contains(text, "unable to request api versions") {
		t.Fatalf("info lines must go to debug, another message must show:\n%s", text)
	}
}
