package odlogs

import (
	"bytes"
	"math"

	"github.com/dota-data/ingestion-service/internal/match"
)

// Kind says which match announcement, if any, a log line is.
type Kind uint8

// The kinds of log line.
const (
	// Other is a line that announces no match this package reads: a line
	// of the gcdata or queue channels, an insert of parsed or gcdata data,
	// a parse that failed, crashed or was skipped, noise.
	Other Kind = iota
	// Insert is a match newly inserted from the Steam API:
	// "[<time>] [<app>] [insert: api] [ended: <when>] <match_id>".
	Insert
	// Parsed is a match whose replay was parsed: "[<time>] [parser]
	// [success: <n>ms] [api: ...] ... [att: <n>] <match_id> <message>".
	Parsed
)

// String returns "other", "insert" or "parsed".
func (k Kind) String() string {
	switch k {
	case Insert:
		return "insert"
	case Parsed:
		return "parsed"
	}
	return "other"
}

// Rejections are shared so that rejecting a line allocates nothing.
var (
	errMissingID   error = &match.RejectError{Reason: match.MissingID}
	errNotInteger  error = &match.RejectError{Reason: match.NotInteger}
	errNotPositive error = &match.RejectError{Reason: match.NotPositive}
	errOutOfRange  error = &match.RejectError{Reason: match.OutOfRange}
)

// ParseLine reads one log line, with or without ANSI colour codes and
// surrounding blanks. It returns Other and a nil error for a line that has
// neither the Insert nor the Parsed shape. For a line that has one, it
// returns its Kind and either the match it announces or a
// *match.RejectError whose reason is MissingID (nothing follows the
// bracketed fields), NotInteger (the first word after them is not a
// decimal integer), NotPositive or OutOfRange (it is not in 1..2^63-1).
// Words after the match ID are ignored.
//
// ParseLine never panics, does not retain line, and allocates nothing for
// a line of up to 512 bytes once its colour codes are removed.
func ParseLine(line []byte) (Kind, match.Match, error) {
	if bytes.IndexByte(line, esc) >= 0 {
		var buf [512]byte
		line = stripANSI(buf[:0], line)
	}
	kind, rest := shape(trimBlank(line))
	if kind == Other {
		return Other, match.Match{}, nil
	}
	m, err := parseID(firstWord(rest))
	return kind, m, err
}

// headKind returns the Kind that head, the start of a line too long to
// read whole, has the shape of: the bracketed fields that name it are
// complete within head.
func headKind(head []byte) Kind {
	if bytes.IndexByte(head, esc) >= 0 {
		head = stripANSI(make([]byte, 0, len(head)), head)
	}
	kind, _ := shape(trimBlank(head))
	return kind
}

// shape finds the Kind of a line without colour codes or outer blanks from
// its leading bracketed fields, and returns the text after all of them.
func shape(s []byte) (Kind, []byte) {
	_, s, ok := field(s) // the time
	if !ok {
		return Other, nil
	}
	app, s, ok := field(s)
	if !ok {
		return Other, nil
	}
	tag, s, ok := field(s)
	if !ok {
		return Other, nil
	}
	var kind Kind
	switch {
	case isTag(tag, "insert", "api"):
		kind = Insert
	case string(app) == "parser" && bytes.HasPrefix(tag, []byte("success:")):
		kind = Parsed
	default:
		return Other, nil
	}
	for len(s) > 0 && s[0] == '[' {
		_, rest, ok := field(s)
		if !ok {
			break // an unclosed bracket: it is the first word, not an ID
		}
		s = rest
	}
	return kind, s
}

// field reads a bracketed field at the start of s: "[" content "]", then
// blanks or the end of s. It returns the content and what follows the
// blanks.
func field(s []byte) (content, rest []byte, ok bool) {
	if len(s) == 0 || s[0] != '[' {
		return nil, nil, false
	}
	end := bytes.IndexByte(s, ']')
	if end < 0 {
		return nil, nil, false
	}
	content, rest = s[1:end], s[end+1:]
	if len(rest) > 0 && !isBlank(rest[0]) {
		return nil, nil, false
	}
	return content, trimLeftBlank(rest), true
}

// isTag reports whether content is "<name>: <value>", allowing any blanks
// around the value.
func isTag(content []byte, name, value string) bool {
	if len(content) <= len(name) || string(content[:len(name)]) != name || content[len(name)] != ':' {
		return false
	}
	return string(trimBlank(content[len(name)+1:])) == value
}

// firstWord returns s up to its first blank.
func firstWord(s []byte) []byte {
	for i, c := range s {
		if isBlank(c) {
			return s[:i]
		}
	}
	return s
}

// parseID reads a match ID: a decimal integer in 1..2^63-1, with an
// optional minus sign so that negative IDs are told apart from words. As
// for a JSON integer literal in a frame, a leading zero is not allowed
// (007 is no ID; 0 is one that is not positive).
func parseID(b []byte) (match.Match, error) {
	if len(b) == 0 {
		return match.Match{}, errMissingID
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || (len(b) > 1 && b[0] == '0') {
		return match.Match{}, errNotInteger
	}
	var n uint64
	overflow := false
	for _, c := range b {
		if c < '0' || c > '9' {
			return match.Match{}, errNotInteger
		}
		if n > (math.MaxUint64-9)/10 {
			overflow = true
			continue
		}
		n = n*10 + uint64(c-'0')
	}
	if neg || n == 0 {
		return match.Match{}, errNotPositive
	}
	if overflow || n > math.MaxInt64 {
		return match.Match{}, errOutOfRange
	}
	return match.New(int64(n))
}

// esc starts an ANSI escape sequence.
const esc = 0x1b

// stripANSI appends src to dst without its ANSI control sequences (CSI:
// ESC "[", parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F, a
// final byte 0x40-0x7E), such as the colour codes "\x1b[32m", "\x1b[39m"
// and "\x1b[1;31m". A sequence cut short by the end of src or by a byte
// that cannot be in it is removed up to that byte; an ESC not followed by
// "[" is kept.
func stripANSI(dst, src []byte) []byte {
	for {
		i := bytes.IndexByte(src, esc)
		if i < 0 || i+1 >= len(src) || src[i+1] != '[' {
			if i < 0 || i+1 >= len(src) {
				return append(dst, src...)
			}
			dst = append(dst, src[:i+1]...)
			src = src[i+1:]
			continue
		}
		dst = append(dst, src[:i]...)
		j := i + 2
		for j < len(src) && src[j] >= 0x30 && src[j] <= 0x3f {
			j++
		}
		for j < len(src) && src[j] >= 0x20 && src[j] <= 0x2f {
			j++
		}
		if j < len(src) && src[j] >= 0x40 && src[j] <= 0x7e {
			j++
		}
		src = src[j:]
	}
}

// isBlank reports whether c is ASCII white space.
func isBlank(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

func trimLeftBlank(s []byte) []byte {
	for len(s) > 0 && isBlank(s[0]) {
		s = s[1:]
	}
	return s
}

func trimBlank(s []byte) []byte {
	s = trimLeftBlank(s)
	for len(s) > 0 && isBlank(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
