package kafkasink

import (
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// repeatEvery is how often one of franz-go's warnings or errors, by its
// message, is logged at its own level; the repeats between go to debug.
const repeatEvery = time.Minute

// ClientLogger returns the logger the service's Kafka clients write to:
// franz-go's own lines through log, with its info lines (connections
// opened, metadata refreshed, flushing, each transaction begun and ended:
// tens a second for a transactional leader) demoted to debug, so that
// info is the service's events and progress. Its warnings and errors
// keep their level, but each message at most once a minute: while Kafka
// is down the client says "unable to open connection to broker" at every
// retry, and the sink already logs when an outage starts and ends.
func ClientLogger(log *slog.Logger) kgo.Logger {
	return &quietClient{Logger: kslog.New(log), last: map[string]time.Time{}, now: time.Now}
}

type quietClient struct {
	kgo.Logger
	now func() time.Time

	mu   sync.Mutex
	last map[string]time.Time // by message: when it was last logged at its level
}

func (q *quietClient) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelInfo:
		level = kgo.LogLevelDebug
	case kgo.LogLevelWarn, kgo.LogLevelError:
		now := q.now()
		q.mu.Lock()
		if at, ok := q.last[msg]; ok && now.Sub(at) < repeatEvery {
			level = kgo.LogLevelDebug
		} else {
			q.last[msg] = now
		}
		q.mu.Unlock()
	}
	q.Logger.Log(level, msg, keyvals...)
}
