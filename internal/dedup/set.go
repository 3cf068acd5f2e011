package dedup

import "math/bits"

// set is a hash set of positive int64s: open addressing with linear
// probing, kept at most half full, and backward-shift deletion, so that it
// needs no tombstones. A lookup and an insert share one probe, which on a
// large window is one cache miss where a map takes two or three. The zero
// slot value marks an empty slot.
type set struct {
	slots []int64
	shift uint // 64 - log2(len(slots))
	n     int
}

const minSetSlots = 1 << 12

func newSet() set {
	return set{slots: make([]int64, minSetSlots), shift: uint(64 - bits.TrailingZeros(minSetSlots))}
}

// home is the slot where id's probe starts: Fibonacci hashing, which
// spreads consecutive IDs across the table.
func (s *set) home(id int64) int {
	return int((uint64(id) * 0x9E3779B97F4A7C15) >> s.shift)
}

// add inserts id and reports false, or reports true if it was present.
func (s *set) add(id int64) bool {
	if 2*(s.n+1) > len(s.slots) {
		s.grow()
	}
	mask := len(s.slots) - 1
	for i := s.home(id); ; i = (i + 1) & mask {
		switch s.slots[i] {
		case id:
			return true
		case 0:
			s.slots[i] = id
			s.n++
			return false
		}
	}
}

// remove deletes id if present, moving back the entries after it that
// would otherwise no longer be found.
func (s *set) remove(id int64) {
	mask := len(s.slots) - 1
	i := s.home(id)
	for ; s.slots[i] != id; i = (i + 1) & mask {
		if s.slots[i] == 0 {
			return
		}
	}
	for j := (i + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		// The entry at j may move to the hole at i if its home is not
		// cyclically within (i, j].
		if h := s.home(s.slots[j]); (j-h)&mask >= (j-i)&mask {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = 0
	s.n--
}

// grow doubles the table.
func (s *set) grow() {
	old := s.slots
	s.slots = make([]int64, 2*len(old))
	s.shift--
	mask := len(s.slots) - 1
	for _, id := range old {
		if id == 0 {
			continue
		}
		i := s.home(id)
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = id
	}
}
