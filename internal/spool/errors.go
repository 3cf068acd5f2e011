package spool

import "errors"

var (
	// ErrFull is returned by Append when the record would take the spool's
	// files past Options.MaxBytes. Committing records frees space.
	ErrFull = errors.New("spool: full")
	// ErrClosed is returned by every method called after Close, and by a
	// second Close.
	ErrClosed = errors.New("spool: closed")
	// ErrTooLarge is returned by Append for a payload longer than
	// MaxPayload.
	ErrTooLarge = errors.New("spool: record too large")
)
