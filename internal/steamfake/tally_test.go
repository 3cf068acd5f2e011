package steamfake

import (
	"slices"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTally: the tally the exactly-once tests rely on sees each way a
// topic can be wrong.
func TestTally(t *testing.T) {
	s := New(Options{Count: 5})
	ms := s.Matches()
	rec := func(i int, value string) *kgo.Record {
		return &kgo.Record{Key: []byte(strconv.FormatInt(ms[i].ID, 10)), Value: []byte(value)}
	}
	body := func(i int) string {
		b, _ := s.Body(ms[i].SeqNum)
		return b
	}
	all := []*kgo.Record{rec(0, body(0)), rec(1, body(1)), rec(2, body(2)), rec(3, body(3)), rec(4, body(4))}
	if tl := s.Tally(all, true); !tl.ExactlyOnce() || tl.Listed != 5 || tl.Records != 5 {
		t.Fatalf("every match once: %s", tl)
	}
	bad := []*kgo.Record{
		rec(0, body(0)), rec(0, body(0)), // a duplicate
		rec(1, "{}"),                     // not what was served
		rec(2, body(2)), rec(3, body(3)), // 4 missing
		{Key: []byte("42"), Value: []byte("{}")}, // not listed
	}
	tl := s.Tally(bad, true)
	if tl.ExactlyOnce() || tl.Duplicates != 1 || tl.Differ != 1 || tl.Unlisted != 1 || tl.Missing != 2 ||
		!slices.Equal(tl.SomeMissing, []int64{ms[1].ID, ms[4].ID}) {
		t.Fatalf("tally %s; want 1 duplicate, 1 differing, 1 unlisted, and matches 1 and 4 missing", tl)
	}
	if tl := s.Tally(bad[:1], false); tl.Missing != 4 || tl.Differ != 0 {
		t.Fatalf("IDs only: %s", tl)
	}
}
