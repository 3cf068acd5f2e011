// Package match is the domain of the service: a finished Dota 2 match,
// identified by its match ID, and the strict rules that turn a frame of the
// live stream into one.
//
// Parse accepts a frame only if it is a JSON object whose "match_id" member
// is a JSON integer literal in 1..2^63-1; anything else is rejected with a
// *RejectError that names a Reason. Parse allocates nothing on success.
package match

import (
	"errors"
	"fmt"
	"strconv"
)

// Match is a finished Dota 2 match. Its ID is always positive.
type Match struct {
	// ID is the match ID, in 1..2^63-1.
	ID int64
	// SeqNum is the match's position in Steam's match sequence
	// (match_seq_num), or 0 when the source does not know it. Sources
	// that have it make the service resumable from it; it travels in a
	// record header, never in the value.
	SeqNum int64
	// StartTime is the match's start, in Unix seconds, or 0 when the
	// source does not know it. It travels in a record header.
	StartTime int64
	// RescanSeq is, for a match found by the Steam scanner, the position
	// of its rescan for late-listed matches when the match was handed on
	// (the rescan has read every seq up to it), or 0. It travels in a
	// record header, so that a restarted scanner resumes its rescan from
	// the topic. A match the rescan found itself has RescanSeq equal to
	// its SeqNum; one the primary cursor found, a lower one.
	RescanSeq int64
}

// New returns the Match with the given ID, or a *RejectError with reason
// NotPositive if id is zero or negative.
func New(id int64) (Match, error) {
	if id <= 0 {
		return Match{}, &RejectError{Reason: NotPositive}
	}
	return Match{ID: id}, nil
}

// AppendKey appends the record key of m, its decimal ID, to dst.
func (m Match) AppendKey(dst []byte) []byte {
	return strconv.AppendInt(dst, m.ID, 10)
}

// AppendValue appends the record value of m, exactly {"match_id":N}, to dst.
func (m Match) AppendValue(dst []byte) []byte {
	dst = append(dst, `{"match_id":`...)
	dst = strconv.AppendInt(dst, m.ID, 10)
	return append(dst, '}')
}

// Reason says why a frame was rejected. Its values are stable and are used
// as metric label values.
type Reason string

// The reasons a frame is rejected.
const (
	// InvalidJSON: the frame is not valid JSON (including an empty frame).
	InvalidJSON Reason = "invalid_json"
	// NotObject: the frame is valid JSON but not an object.
	NotObject Reason = "not_object"
	// MissingID: the object has no "match_id" member.
	MissingID Reason = "missing_match_id"
	// NullID: "match_id" is null.
	NullID Reason = "null_match_id"
	// WrongType: "match_id" is a string, bool, object or array.
	WrongType Reason = "wrong_type"
	// NotInteger: "match_id" is a number with a fraction or an exponent,
	// such as 1.5, 1e3 or 123.0.
	NotInteger Reason = "not_integer"
	// NotPositive: "match_id" is zero or negative.
	NotPositive Reason = "not_positive"
	// OutOfRange: "match_id" is an integer beyond 2^63-1.
	OutOfRange Reason = "out_of_range"
	// TooLarge: the frame exceeds the source's size limit; sources report it
	// without calling Parse.
	TooLarge Reason = "too_large"
	// InvalidUTF8: the frame is JSON but not valid UTF-8, which RFC 8259
	// and, for a text frame, RFC 6455 require.
	InvalidUTF8 Reason = "invalid_utf8"
	// ImplausibleSeq: a Steam match whose match_seq_num lies implausibly far
	// beyond the sequence known so far (a bogus value such as 2^63-1, which
	// would skip every match in between); the Steam scanner reports it
	// without calling Parse.
	ImplausibleSeq Reason = "implausible_seq"
)

// Reasons lists every Reason, for pre-registering metric label values.
var Reasons = []Reason{InvalidJSON, NotObject, MissingID, NullID, WrongType, NotInteger, NotPositive, OutOfRange, TooLarge, InvalidUTF8, ImplausibleSeq}

// RejectError is the error returned for a frame that is not a valid match.
type RejectError struct {
	// Reason is the machine-readable cause.
	Reason Reason
}

func (e *RejectError) Error() string {
	return "match rejected: " + string(e.Reason)
}

// ReasonOf returns the Reason carried by err, and false if err is not a
// *RejectError.
func ReasonOf(err error) (Reason, bool) {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason, true
	}
	return "", false
}

// rejections are preallocated so that rejecting allocates nothing either.
var rejections = func() map[Reason]*RejectError {
	m := make(map[Reason]*RejectError, len(Reasons))
	for _, r := range Reasons {
		m[r] = &RejectError{Reason: r}
	}
	return m
}()

func reject(r Reason) error {
	if e, ok := rejections[r]; ok {
		return e
	}
	panic(fmt.Sprintf("match: unknown reason %q", r))
}
