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
	return s.TallyRange(recs, objects, 0, 0)
}

// TallyRange is Tally against the listed matches whose match_seq_num is
// at least from and, when to is positive, below to: a record of a match
// outside counts as Unlisted.
func (s *Server) TallyRange(recs []*kgo.Record, objects bool, from, to int64) Tally {
	tl := s.Tallier(objects, from, to)
	for _, r := range recs {
		tl.Add(r)
	}
	return tl.Tally()
}

// Tallier counts records one at a time, as they are read, against the
// matches a Server lists: for topics too large to hold. Create it with
// Server.Tallier.
type Tallier struct {
	s       *Server
	objects bool
	want    map[int64]int64 // match ID -> seq
	seen    map[int64]int
	t       Tally
}

// Tallier returns a Tallier against the matches listed now whose
// match_seq_num is at least from and, when to is positive, below to.
// With objects, each record's value must be the object the Server serves.
func (s *Server) Tallier(objects bool, from, to int64) *Tallier {
	tl := &Tallier{s: s, objects: objects, want: map[int64]int64{}, seen: map[int64]int{}}
	for _, m := range s.Matches() {
		if m.SeqNum < from || (to > 0 && m.SeqNum >= to) {
			continue
		}
		tl.want[m.ID] = m.SeqNum
	}
	tl.t.Listed = len(tl.want)
	return tl
}

// Add counts r, keyed by decimal match ID. It is not safe for concurrent
// use.
func (tl *Tallier) Add(r *kgo.Record) {
	tl.t.Records++
	id, _ := strconv.ParseInt(string(r.Key), 10, 64)
	seq, ok := tl.want[id]
	switch {
	case !ok:
		tl.t.Unlisted++
		return
	case tl.objects:
		if body, _ := tl.s.Body(seq); string(r.Value) != body {
			tl.t.Differ++
			return
		}
	}
	if tl.seen[id]++; tl.seen[id] > 1 {
		tl.t.Duplicates++
	}
}

// Tally returns the count so far, the missing matches included.
func (tl *Tallier) Tally() Tally {
	t := tl.t
	t.Missing, t.SomeMissing = 0, nil
	for id := range tl.want {
		if tl.seen[id] == 0 {
			t.Missing++
			t.SomeMissing = append(t.SomeMissing, id)
		}
	}
	slices.Sort(t.SomeMissing)
	t.SomeMissing = t.SomeMissing[:min(len(t.SomeMissing), 10)]
	return t
}
