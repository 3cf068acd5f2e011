package steamfake

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Tally compares the records read from a topic with the matches a Server
// lists: each listed match should be there exactly once.
type Tally struct {
	// Listed is the number of matches the Server lists; Records, the
	// records read.
	Listed, Records int
	// Missing and Duplicates count listed matches without a record, and
	// records beyond the first of a match.
	Missing, Duplicates int
	// Unlisted counts records of matches the Server does not list;
	// Differ, records whose value is not the object the Server served
	// (counted only when objects are checked).
	Unlisted, Differ int
	// SomeMissing holds up to ten of the missing match IDs, in order.
	SomeMissing []int64
}

// ExactlyOnce reports whether every listed match is there once, and
// nothing else.
func (t Tally) ExactlyOnce() bool {
	return t.Missing == 0 && t.Duplicates == 0 && t.Unlisted == 0 && t.Differ == 0
}

func (t Tally) String() string {
	s := fmt.Sprintf("%d listed, %d records, missing %d, duplicates %d, unlisted %d, differing %d",
		t.Listed, t.Records, t.Missing, t.Duplicates, t.Unlisted, t.Differ)
	if len(t.SomeMissing) > 0 {
		s += fmt.Sprintf(" (missing such as %v)", t.SomeMissing)
	}
	return s
}

// Tally counts recs, keyed by decimal match ID, against the matches the
// Server lists now. With objects, each value must also be, byte for byte,
// the match object the Server serves (Body).
func (s *Server) Tally(recs []*kgo.Record, objects bool) Tally {
	want := map[int64]string{}
	for _, m := range s.Matches() {
		body, _ := s.Body(m.SeqNum)
		want[m.ID] = body
	}
	t := Tally{Listed: len(want), Records: len(recs)}
	seen := map[int64]int{}
	for _, r := range recs {
		id, _ := strconv.ParseInt(string(r.Key), 10, 64)
		body, ok := want[id]
		switch {
		case !ok:
			t.Unlisted++
		case objects && string(r.Value) != body:
			t.Differ++
		default:
			if seen[id]++; seen[id] > 1 {
				t.Duplicates++
			}
		}
	}
	for id := range want {
		if seen[id] == 0 {
			t.Missing++
			t.SomeMissing = append(t.SomeMissing, id)
		}
	}
	slices.Sort(t.SomeMissing)
	t.SomeMissing = t.SomeMissing[:min(len(t.SomeMissing), 10)]
	return t
}
