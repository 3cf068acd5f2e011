package spool

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Default values of Options fields left at zero.
const (
	DefaultMaxBytes     int64 = 1 << 30 // 1 GiB
	DefaultSegmentBytes int64 = 8 << 20 // 8 MiB
)

// cursorEvery is how often the commit cursor is written when the policy
// never syncs (SyncPolicy{}): often enough to bound the records replayed
// after a crash, rarely enough to cost nothing.
const cursorEvery = time.Second

// SyncPolicy says when written data is forced to stable storage with
// fsync. The zero value never calls fsync and leaves write-back to the
// operating system: records then survive a killed process but not
// necessarily a power cut.
type SyncPolicy struct {
	// Always fsyncs the segment after every Append and the cursor after
	// every Commit. Nothing acknowledged is lost, at the cost of one fsync
	// per call.
	Always bool
	// Interval, when Always is false, fsyncs the active segment and the
	// cursor at most this often, from a background goroutine; zero means
	// never. Without Always the cursor is written (without fsync when
	// Interval is zero) once per Interval, or once a second when Interval
	// is zero, and on Close.
	Interval time.Duration
}

// syncs reports whether the policy ever calls fsync.
// String names the policy as the service's SPOOL_FSYNC setting does:
// "always", an interval such as "1s", or "never".
func (p SyncPolicy) String() string {
	switch {
	case p.Always:
		return "always"
	case p.Interval > 0:
		return p.Interval.String()
	}
	return "never"
}

func (p SyncPolicy) syncs() bool { return p.Always || p.Interval > 0 }

// Options configures Open. Only Dir is required.
type Options struct {
	// Dir holds the segment and cursor files; it is created, mode 0750,
	// if missing. Only one Spool may use a directory at a time.
	Dir string
	// MaxBytes caps the total size of the segment files; Append returns
	// ErrFull rather than exceed it. Default DefaultMaxBytes (1 GiB).
	MaxBytes int64
	// SegmentBytes is the size past which a new segment file is started.
	// Default DefaultSegmentBytes (8 MiB); it is lowered to MaxBytes/2 if
	// larger, so that committed space can always be reclaimed.
	SegmentBytes int64
	// Sync says when data is fsynced; the zero value never fsyncs.
	Sync SyncPolicy
	// WriteBuffer, when positive, gathers appended records in memory and
	// writes them in one system call once this many bytes wait, before
	// Next reads them, at the background flush (every Sync.Interval, or
	// every second) and on Sync and Close. A killed process then loses the
	// records gathered but not written: at most WriteBuffer bytes, none of
	// which Next has returned. Zero (the default) writes each record before
	// Append returns. It is ignored when Sync.Always.
	WriteBuffer int
	// Logger receives warnings about corruption and failed background
	// writes; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns o with zero fields set to their defaults, or an
// error if a field is invalid.
func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("spool: Options.Dir is required")
	}
	if o.Sync.Always || o.WriteBuffer < 0 {
		o.WriteBuffer = 0
	}
	if o.MaxBytes < 0 || o.SegmentBytes < 0 || o.Sync.Interval < 0 {
		return o, fmt.Errorf("spool: negative option (MaxBytes %d, SegmentBytes %d, Sync.Interval %s)",
			o.MaxBytes, o.SegmentBytes, o.Sync.Interval)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	o.SegmentBytes = max(min(o.SegmentBytes, o.MaxBytes/2), 1)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
