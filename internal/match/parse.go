package match

import (
	"encoding/json"
	"math"
	"unicode/utf8"
)

// Parse turns one frame of the stream into a Match. The frame must be a JSON
// object with a "match_id" member holding an integer literal in 1..2^63-1;
// other members are ignored. If "match_id" occurs more than once the last
// one counts, as with encoding/json. The frame must be valid UTF-8 (RFC
// 8259). Any other frame yields a *RejectError.
//
// Parse never panics, does not retain frame and allocates nothing for a
// frame whose keys contain no escape sequences.
func Parse(frame []byte) (Match, error) {
	if m, ok := parseCanonical(frame); ok {
		return m, nil
	}
	if !json.Valid(frame) {
		return Match{}, reject(InvalidJSON)
	}
	if !utf8.Valid(frame) {
		return Match{}, reject(InvalidUTF8)
	}
	// From here on the frame is known to be valid JSON, so the scanner below
	// only has to find its way, not check the grammar.
	i := skipSpace(frame, 0)
	if frame[i] != '{' {
		return Match{}, reject(NotObject)
	}
	i++
	var value []byte
	for {
		i = skipSpace(frame, i)
		if frame[i] == '}' {
			break
		}
		keyStart := i
		i = skipString(frame, i)
		key := frame[keyStart:i]
		i = skipSpace(frame, i) + 1 // the colon
		i = skipSpace(frame, i)
		valueStart := i
		i = skipValue(frame, i)
		if isMatchIDKey(key) {
			value = frame[valueStart:i]
		}
		i = skipSpace(frame, i)
		if frame[i] == ',' {
			i++
		}
	}
	if value == nil {
		return Match{}, reject(MissingID)
	}
	return parseID(value)
}

// parseCanonical parses a frame of exactly the form {"match_id":N}, N a
// positive integer literal without a leading zero that fits in an int64:
// the form the stream is expected to send, and a record's value. Such a
// frame is valid JSON by construction, which spares the general path its
// validation pass. It reports false for any other frame, valid or not.
func parseCanonical(frame []byte) (Match, bool) {
	const prefix = `{"match_id":`
	if len(frame) < len(prefix)+2 || string(frame[:len(prefix)]) != prefix || frame[len(frame)-1] != '}' {
		return Match{}, false
	}
	digits := frame[len(prefix) : len(frame)-1]
	if len(digits) > 18 || digits[0] < '1' || digits[0] > '9' { // 18 digits always fit
		return Match{}, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return Match{}, false
		}
		n = n*10 + int64(c-'0')
	}
	return Match{ID: n}, true
}

// parseID classifies a JSON value that is known to be valid.
func parseID(v []byte) (Match, error) {
	switch v[0] {
	case 'n':
		return Match{}, reject(NullID)
	case '"', 't', 'f', '{', '[':
		return Match{}, reject(WrongType)
	}
	neg := v[0] == '-'
	digits := v
	if neg {
		digits = v[1:]
	}
	var n uint64
	overflow := false
	for _, c := range digits {
		if c < '0' || c > '9' {
			// A fraction or an exponent: a number, but not an integer literal.
			return Match{}, reject(NotInteger)
		}
		if !overflow {
			if n > (math.MaxUint64-9)/10 {
				overflow = true
				continue
			}
			n = n*10 + uint64(c-'0')
		}
	}
	if neg || n == 0 {
		return Match{}, reject(NotPositive)
	}
	if overflow || n > math.MaxInt64 {
		return Match{}, reject(OutOfRange)
	}
	return Match{ID: int64(n)}, nil
}

const matchIDKey = `"match_id"`

// isMatchIDKey reports whether the quoted JSON string key spells match_id,
// allowing for escape sequences.
func isMatchIDKey(key []byte) bool {
	if string(key) == matchIDKey {
		return true
	}
	for _, c := range key {
		if c == '\\' {
			var s string
			return json.Unmarshal(key, &s) == nil && s == "match_id"
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string that starts at b[i].
func skipString(b []byte, i int) int {
	i++ // opening quote
	for i < len(b) {
		switch b[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return i
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}
