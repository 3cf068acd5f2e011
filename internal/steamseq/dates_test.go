package steamseq

import (
	"log/slog"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// TestSeqAtDate: against the fake (match i starts 2i seconds after the
// first), a date turns into the seq of the matches that start then,
// within the search's tolerance, in a few calls.
func TestSeqAtDate(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 200_000, Compact: true, HiddenEvery: 50})
	all := fake.Matches()
	cl := newTestClient(t, testConfig(base))
	for _, i := range []int{0, 1234, 97_000, len(all) - 2} {
		want := all[i]
		target := time.Unix(want.StartTime, 0)
		calls := len(fake.Calls())
		res, err := cl.SeqAtDate(t.Context(), target, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		made := len(fake.Calls()) - calls
		if i == 0 && res.Seq <= want.SeqNum {
			// The first match's time: any seq up to the first is where
			// its matches start.
		} else if d := res.Seq - want.SeqNum; d < -200 || d > 200 {
			t.Errorf("match %d (seq %d, start %d): found seq %d", i, want.SeqNum, want.StartTime, res.Seq)
		}
		if made > 12 {
			t.Errorf("match %d: %d calls, want a few", i, made)
		}
		t.Logf("match %d: seq %d found as %d in %d calls", i, want.SeqNum, res.Seq, made)
	}
}
