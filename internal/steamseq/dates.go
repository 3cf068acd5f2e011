package steamseq

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/dota-data/ingestion-service/internal/health"
)

// dateProbePage is how many matches a probe of SeqAtDate reads: the
// median of their start times stands for the seq, so that one long match
// (which starts hours before the ones that end beside it) does not.
const dateProbePage = 9

// SeqAtDate returns a match_seq_num at which Steam's matches start at
// about t: SeqAtTime over the whole sequence up to the head, each probe a
// call for a page of a few matches from the seq probed, taking keys after
// the forward scan. A call Steam refuses for its rate is made again with
// the next key; any other failure ends the search with its error (try
// again later). Result.Calls counts the probes, the head's call besides.
func (s *Client) SeqAtDate(ctx context.Context, t time.Time, log *slog.Logger) (SearchResult, error) {
	hooks := &scanHooks{
		log:     log,
		state:   health.NewState(""),
		ceiling: func(start int64) int64 { return start + MaxSeqJump },
		skipped: func(*cursor, int64, int64) string { return "" },
	}
	c := &cursor{name: cursorBackfill, prio: prioBackfill, scan: hooks}
	head, err := s.headCall(ctx, c)
	if err != nil {
		return SearchResult{}, err
	}
	probe := func(ctx context.Context, seq int64) (int64, int64, bool, error) {
		for {
			var entries []entry
			err := s.call(ctx, c, time.Time{}, endpointSequence, func(k *apiKey) (err error) {
				entries, _, err = s.fetchPage(ctx, k, seq, dateProbePage, head+MaxSeqJump)
				return err
			})
			if errors.Is(err, errRetry) {
				continue
			}
			if err != nil {
				return 0, 0, false, err
			}
			var times []int64
			for _, e := range entries {
				if e.m.StartTime > 0 {
					times = append(times, e.m.StartTime)
				}
			}
			if len(entries) == 0 || len(times) == 0 {
				return 0, 0, false, nil
			}
			slices.Sort(times)
			return times[len(times)/2], entries[0].m.SeqNum, true, nil
		}
	}
	return SeqAtTime(ctx, probe, t, 1, head, SearchOptions{})
}
