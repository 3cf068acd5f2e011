package kafkasink

import (
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// ClientLogger returns the logger the service's Kafka clients write to:
// franz-go's own lines through log, with its info lines (connections
// opened, metadata refreshed, flushing, each transaction begun and ended:
// tens a second for a transactional leader) demoted to debug, so that
// info is the service's events and progress. Its warnings and errors stay
// what they are.
func ClientLogger(log *slog.Logger) kgo.Logger {
	return quietInfo{kslog.New(log)}
}

type quietInfo struct{ kgo.Logger }

func (q quietInfo) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if level == kgo.LogLevelInfo {
		level = kgo.LogLevelDebug
	}
	q.Logger.Log(level, msg, keyvals...)
}
