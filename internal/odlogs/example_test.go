package odlogs_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/odlogs"
)

// printer is a Handler that prints what it gets and stops the source
// after the given number of matches.
type printer struct {
	left int
	stop context.CancelFunc
}

func (p *printer) Match(_ context.Context, m match.Match) error {
	fmt.Println("match", m.ID)
	if p.left--; p.left == 0 {
		p.stop()
	}
	return nil
}

func (p *printer) Reject(_ context.Context, reason match.Reason, item []byte) {
	fmt.Println("rejected:", reason)
}

func Example() {
	// A stand-in for OpenDota's /logs, sending lines of its four channels.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, line := range []string{
			"[2026-08-21T18:25:36.123Z] [inserter] [insert: api] [ended: a few seconds ago] 8012345678",
			"\x1b[35m[2026-08-21T18:25:36.130Z] [web] [queue: parse] [pri: 1] [att: 1] 8012345601\x1b[39m",
			"\x1b[32m[2026-08-21T18:25:37.456Z] [parser] [success: 5321ms] [api: 102ms] [gcdata: 350ms] [parse: 4801ms] [queued: a minute ago] [pri: 1] [att: 1] 8012345601 \x1b[39m",
			"[2026-08-21T18:25:38.000Z] [inserter] [insert: api] [ended: a few seconds ago] undefined",
			"[2026-08-21T18:25:38.789Z] [inserter] [insert: api] [ended: a minute ago] 8012345679",
		} {
			fmt.Fprintf(w, "data: %s\n\n", line)
		}
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}))
	defer upstream.Close()

	src, err := odlogs.New(odlogs.Config{
		URL:      upstream.URL + "/logs",
		Channels: []string{odlogs.ChannelAPI, odlogs.ChannelParsed},
	}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := src.Run(ctx, &printer{left: 3, stop: cancel}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// match 8012345678
	// match 8012345601
	// rejected: not_integer
	// match 8012345679
}

func ExampleParseLine() {
	kind, m, err := odlogs.ParseLine([]byte("[2026-08-21T18:25:36.123Z] [inserter] [insert: api] [ended: a few seconds ago] 8012345678"))
	fmt.Println(kind, m.ID, err)
	kind, _, err = odlogs.ParseLine([]byte("[2026-08-21T18:25:36.123Z] [inserter] [insert: api] [ended: a few seconds ago] 0"))
	fmt.Println(kind, err)
	kind, _, err = odlogs.ParseLine([]byte("\x1b[33m[2026-08-21T18:25:36.123Z] [parser] [fail: 12ms] [att: 1] 8012345603 Missing API data\x1b[39m"))
	fmt.Println(kind, err)
	// Output:
	// insert 8012345678 <nil>
	// insert match rejected: not_positive
	// other <nil>
}
