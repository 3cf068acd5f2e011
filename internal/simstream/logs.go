package simstream

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Logs is a stand-in for OpenDota's live log feed, the Server-Sent Events
// route "/logs{/:jobId}" of odota/core's svc/web.ts, for the dev mode. At
// "/logs" it sends the lines of every channel, as OpenDota does: the
// inserter's "[insert: api]" line for each new match, parser lines in
// ansi colours, queue lines in magenta and gcdata inserts; at "/logs/api"
// the api channel's alone. Each line is one event, "data: <line>\n\n",
// with no id, event or retry field and no keep-alive comment.
//
// As on OpenDota, "[insert: api]" does not mean a new match: one insert in
// retryEvery announces the previous match again (an insert retried after a
// timeout), and one in backfillEvery an old match, 10,000 to 60,000 IDs
// behind the newest (reconcile and repair backfills, svc/util/reconcileUtil.ts
// and svc/repair.ts).
type Logs struct {
	opts     Options
	inserted atomic.Int64
	again    atomic.Int64 // inserts of a match announced before
	older    atomic.Int64 // inserts of an old match not announced before
	lines    atomic.Int64
}

// How often an insert announces a match that is not new: primes, so that
// neither keeps falling on the lines BadEvery leaves without an ID.
const (
	retryEvery    = 23
	backfillEvery = 37
)

// NewLogs returns a Logs feed announcing opts.Rate matches a second, one
// "[insert: api]" line in opts.BadEvery without its match ID.
func NewLogs(opts Options) *Logs {
	return &Logs{opts: New(opts).opts}
}

// Sent returns how many new matches were announced, and how many lines
// were sent in all.
func (l *Logs) Sent() (matches, lines int64) { return l.inserted.Load(), l.lines.Load() }

// Repeated returns how many inserts announced a match that was not new:
// again, one announced before (a retried insert, or a backfill of a match
// this feed announced), which a consumer that remembers what it saw skips
// as a duplicate; older, an old match it never announced (a backfill),
// which such a consumer publishes. Matches(), again and older add up to
// every insert with an ID.
func (l *Logs) Repeated() (again, older int64) { return l.again.Load(), l.older.Load() }

// recentIDs is how many of the newest announced IDs a connection
// remembers, to tell a backfill of one of them from one of a match never
// announced: more than the backfills reach back (60,000 IDs, some 3,000
// matches).
const recentIDs = 8192

// ServeHTTP streams until the client leaves; paths other than /logs and
// /logs/<channel> are not found.
func (l *Logs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	channel, ok := strings.CutPrefix(path, "/logs")
	if !ok || (channel != "" && !strings.HasPrefix(channel, "/")) {
		http.NotFound(w, r)
		return
	}
	channel = strings.TrimPrefix(channel, "/")
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()

	rng := rand.New(rand.NewPCG(l.opts.Seed, uint64(time.Now().UnixNano())))
	seen := map[int64]bool{}
	var ring [recentIDs]int64
	remember := func(n int, id int64) {
		slot := n % recentIDs
		delete(seen, ring[slot])
		ring[slot], seen[id] = id, true
	}
	id := l.opts.FirstID + rng.Int64N(1000)
	t := time.NewTicker(time.Duration(float64(time.Second) / l.opts.Rate))
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		announced, repeat := id+1+rng.Int64N(40), true
		switch {
		case n%retryEvery == 0:
			announced = id
		case n%backfillEvery == 0:
			announced = id - 10_000 - rng.Int64N(50_000)
		default:
			id, repeat = announced, false
		}
		now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		type line struct{ channel, text string }
		insert := fmt.Sprintf("[%s] [inserter] [insert: api] [ended: %d minutes ago] %d", now, 1+rng.IntN(9), announced)
		bad := l.opts.BadEvery > 0 && n%l.opts.BadEvery == 0
		if bad {
			insert = fmt.Sprintf("[%s] [inserter] [insert: api] [ended: a few seconds ago]", now)
		}
		out := []line{
			{"api", insert},
			{"queue", fmt.Sprintf("\x1b[35m[%s] [inserter] [queue: parse] [pri: 5] [att: 0] %d\x1b[39m", now, id)},
		}
		if old := id - 20_000 - rng.Int64N(1000); rng.IntN(3) == 0 {
			out = append(out,
				line{"parsed", fmt.Sprintf("\x1b[32m[%s] [parser] [success: %dms] [api: 95ms] [gcdata: 410ms] [parse: %dms] [queued: a minute ago] [pri: 5] [att: 1] %d \x1b[39m",
					now, 3000+rng.IntN(4000), 2500+rng.IntN(3000), old)},
				line{"gcdata", fmt.Sprintf("[%s] [parser] [insert: gcdata] [ended: an hour ago] %d", now, old)})
		}
		var b strings.Builder
		for _, ln := range out {
			if channel == "" || channel == ln.channel {
				b.WriteString("data: " + ln.text + "\n\n")
				l.lines.Add(1)
				if ln.channel != "api" || bad {
					continue
				}
				switch {
				case !repeat:
					l.inserted.Add(1)
				case seen[announced]:
					l.again.Add(1)
				default:
					l.older.Add(1)
				}
				remember(n, announced)
			}
		}
		if b.Len() == 0 {
			continue
		}
		if _, err := w.Write([]byte(b.String())); err != nil {
			return
		}
		_ = rc.Flush()
	}
}
