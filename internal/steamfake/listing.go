package steamfake

import "sort"

// lateSalt separates the late-listing choice from the body generator's.
const lateSalt = 0x6c617465 // "late"

// splitmix64 is the finaliser of the SplitMix64 generator: a cheap,
// well-mixed hash of x.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hidden reports whether match i is never listed (Options.HiddenEvery).
func (s *Server) hidden(i int64) bool {
	e := s.opts.HiddenEvery
	return e > 0 && i%e == e-1
}

// late reports whether match i was chosen to be listed late
// (Options.LateFraction).
func (s *Server) late(i int64) bool {
	if s.opts.LateFraction <= 0 || i == 0 || s.hidden(i) {
		return false
	}
	return float64(splitmix64(uint64(i)^lateSalt)>>11)/(1<<53) < s.opts.LateFraction
}

// pending reports whether match i is late and not listed yet with the head
// at head.
func (s *Server) pending(i, head int64) bool {
	return s.late(i) && head < s.seq(i)+s.opts.LateBy
}

// listed reports whether match i, which exists, is listed with the head at
// head.
func (s *Server) listed(i, head int64) bool {
	return !s.hidden(i) && !s.pending(i, head)
}

// sequenceLocked returns the page of up to limit matches from startAt on,
// and how many matches it holds. Hidden matches take a place among the
// limit and are left out; late ones not yet listed take none. A page that
// would hold a broken match is the status 2 answer instead.
func (s *Server) sequenceLocked(startAt int64, limit int) ([]byte, int) {
	head := s.headLocked()
	first := int64(sort.Search(int(s.count), func(i int) bool { return s.seq(int64(i)) >= startAt }))
	var entries []int64
	for i, places := first, 0; i < s.count && places < limit; i++ {
		switch {
		case s.hidden(i):
			places++
		case s.pending(i, head):
		default:
			places++
			entries = append(entries, i)
		}
	}
	if s.spendBrokenLocked(entries) {
		return []byte(brokenPage), 0
	}
	b := make([]byte, 0, 64+len(entries)*16<<10)
	b = append(b, `{"result":{"status":1,"matches":[`...)
	for n, i := range entries {
		if n > 0 {
			b = append(b, ',')
		}
		if e, ok := s.replaced[s.seq(i)]; ok {
			b = append(b, e...)
		} else {
			b = s.appendMatch(b, i)
		}
	}
	b = append(b, "]}}"...)
	return b, len(entries)
}

// spendBrokenLocked reports whether any of the matches entries is broken,
// and takes one answer from each of those broken for a count.
func (s *Server) spendBrokenLocked(entries []int64) bool {
	if len(s.broken) == 0 {
		return false
	}
	hit := false
	for _, i := range entries {
		seq := s.seq(i)
		n, ok := s.broken[seq]
		if !ok {
			continue
		}
		hit = true
		switch {
		case n == 1:
			delete(s.broken, seq)
		case n > 1:
			s.broken[seq] = n - 1
		}
	}
	return hit
}

// historyLocked returns the newest limit listed matches, newest first, in
// GetMatchHistory's shape, and how many it holds.
func (s *Server) historyLocked(limit int) ([]byte, int) {
	head := s.headLocked()
	entries := make([]byte, 0, limit*320)
	n := 0
	for i := s.count - 1; i >= 0 && n < limit; i-- {
		if !s.listed(i, head) {
			continue
		}
		if n > 0 {
			entries = append(entries, ',')
		}
		entries = s.appendHistoryEntry(entries, i)
		n++
	}
	total := s.listedCountLocked(head)
	b := make([]byte, 0, 128+len(entries))
	b = num(b, `{"result":{"status":1,"num_results":`, int64(n))
	b = num(b, `,"total_results":`, total)
	b = num(b, `,"results_remaining":`, total-int64(n))
	b = append(b, `,"matches":[`...)
	b = append(b, entries...)
	return append(b, "]}}"...), n
}

// listedCountLocked returns how many matches are listed with the head at
// head.
func (s *Server) listedCountLocked(head int64) int64 {
	total := s.count
	if e := s.opts.HiddenEvery; e > 0 {
		total -= s.count / e
	}
	if s.opts.LateFraction > 0 {
		for i := range s.count {
			if s.pending(i, head) {
				total--
			}
		}
	}
	return total
}

// appendHistoryEntry appends match i as GetMatchHistory shows it, or its
// Replace entry.
func (s *Server) appendHistoryEntry(b []byte, i int64) []byte {
	m := s.match(i)
	if e, ok := s.replaced[m.SeqNum]; ok {
		return append(b, e...)
	}
	var g game
	g.generate(i)
	b = num(b, `{"match_id":`, m.ID)
	b = num(b, `,"match_seq_num":`, m.SeqNum)
	b = num(b, `,"start_time":`, m.StartTime)
	b = num(b, `,"lobby_type":`, int64(g.lobbyType))
	b = num(b, `,"radiant_team_id":`, g.teams[0].id)
	b = num(b, `,"dire_team_id":`, g.teams[1].id)
	b = num(b, `,"players":[{"account_id":`, g.players[0].accountID)
	b = num(b, `,"player_slot":0,"hero_id":`, int64(g.players[0].heroID))
	b = num(b, `},{"account_id":`, g.players[5].accountID)
	b = num(b, `,"player_slot":128,"hero_id":`, int64(g.players[5].heroID))
	return append(b, "}]}"...)
}
