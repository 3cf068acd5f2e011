package odlogs

import (
	"bytes"
	"io"
	"math"
	"time"
)

// event is what eventStream.next found.
type event struct {
	// data is the event's data buffer, each of its data lines followed by
	// LF, or, when long is true, the start of one data line too long to
	// read whole. It is valid until the next call to next.
	data []byte
	// message is true for an event with no type or the type "message":
	// the events a browser's EventSource hands to onmessage.
	message bool
	// long is true when data is the start of an over-long data line
	// rather than an event. It is reported as soon as it is read, before
	// the event it belongs to is dispatched.
	long bool
	// dropped counts the event's data lines that were left out because
	// its data would have grown beyond the event limit.
	dropped int
}

// eventStream decodes a text/event-stream body as the WHATWG HTML
// standard, section "Server-sent events", interprets it: lines end in CR
// LF, LF or CR; a leading UTF-8 BOM is dropped; a line that starts with a
// colon is a comment; "data" appends its value and LF to the data buffer;
// "event" sets the event type; "id" sets the last event ID buffer unless
// its value holds NUL; "retry" sets the reconnection time if its value is
// all ASCII digits; other fields are ignored; a blank line dispatches the
// event, first making the last event ID buffer the stream's last event
// ID; the end of the stream discards an event not yet dispatched. Unlike
// a browser it works on bytes (it does not replace invalid UTF-8) and it
// bounds lines and events.
//
// The last event ID and the reconnection time outlive a connection: reset
// starts reading a new body with them.
type eventStream struct {
	lines    lineReader
	maxData  int
	data     []byte // the data buffer
	typ      []byte // the event type buffer
	dropped  int    // data lines left out of the event being read
	idBuffer string // the last event ID buffer

	// lastID is the last event ID, to send as Last-Event-ID on reconnect.
	lastID string
	// retry is the reconnection time the server asked for; 0 if none.
	retry time.Duration
}

func newEventStream(maxLine, maxData int) *eventStream {
	return &eventStream{lines: lineReader{buf: make([]byte, maxLine+1), max: maxLine}, maxData: maxData}
}

// reset starts reading r, a new connection's body.
func (s *eventStream) reset(r io.Reader) {
	s.lines.reset(r)
	s.data = s.data[:0]
	s.typ = s.typ[:0]
	s.dropped = 0
	s.idBuffer = s.lastID
}

// next reads up to the next event dispatched or the next over-long data
// line. It returns the error that ended the body, io.EOF if it ended
// cleanly; whatever the body held after the last dispatched event is then
// discarded.
func (s *eventStream) next() (event, error) {
	for {
		line, long, err := s.lines.next()
		if err != nil {
			return event{}, err
		}
		name, value := splitField(line)
		if long {
			if string(name) == "data" {
				return event{data: value, long: true}, nil
			}
			continue // an over-long comment, id, event or retry is dropped
		}
		if len(line) == 0 {
			s.lastID = s.idBuffer
			if len(s.data) == 0 && s.dropped == 0 {
				s.typ = s.typ[:0]
				continue
			}
			ev := event{
				data:    s.data,
				message: len(s.typ) == 0 || string(s.typ) == "message",
				dropped: s.dropped,
			}
			s.data, s.typ, s.dropped = s.data[:0], s.typ[:0], 0
			return ev, nil
		}
		switch string(name) {
		case "data":
			if len(s.data)+len(value)+1 > s.maxData {
				s.dropped++
				continue
			}
			s.data = append(s.data, value...)
			s.data = append(s.data, '\n')
		case "event":
			s.typ = append(s.typ[:0], value...)
		case "id":
			if bytes.IndexByte(value, 0) < 0 && string(value) != s.idBuffer {
				s.idBuffer = string(value)
			}
		case "retry":
			if ms, ok := parseRetry(value); ok {
				s.retry = ms
			}
		}
	}
}

// splitField splits a line into its field name and value: the name runs
// to the first colon (the whole line if none; empty for a comment), and
// one space after the colon is not part of the value.
func splitField(line []byte) (name, value []byte) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return line, nil
	}
	value = line[i+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return line[:i], value
}

// maxRetry caps a retry: value, well beyond any backoff, so that the
// conversion to a Duration cannot overflow.
const maxRetry = 24 * time.Hour

// parseRetry reads a retry: value, milliseconds in ASCII digits.
func parseRetry(v []byte) (time.Duration, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var ms int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= (math.MaxInt64-9)/10 {
			ms = ms*10 + int64(c-'0')
		}
	}
	return time.Duration(min(ms, int64(maxRetry/time.Millisecond))) * time.Millisecond, true
}

// bom is the UTF-8 byte order mark, dropped from the start of a stream.
var bom = []byte("\xef\xbb\xbf")

// lineReader splits a stream into lines ended by CR LF, LF or CR, reusing
// one buffer. A line longer than max is returned cut to max bytes, with
// long set, and the rest of it is skipped.
type lineReader struct {
	r          io.Reader
	buf        []byte // len(buf) == max+1: a line of max bytes and its end
	start, end int    // the unread bytes are buf[start:end]
	max        int
	err        error // the error that ended r, returned once buf is used up
	atStart    bool  // nothing was taken from r yet: a BOM may follow
	afterCR    bool  // the last line ended in CR: an LF next is part of it
	skipping   bool  // the current line is over max and is being skipped
}

func (l *lineReader) reset(r io.Reader) {
	*l = lineReader{r: r, buf: l.buf, max: l.max, atStart: true}
}

// next returns the next line without its end. It returns r's error, io.EOF
// if r ended cleanly, once every whole line before it is returned; a line
// without an end before it is discarded.
func (l *lineReader) next() (line []byte, long bool, err error) {
	for {
		b := l.buf[l.start:l.end]
		if l.atStart {
			if len(b) < len(bom) && bytes.HasPrefix(bom, b) && l.err == nil {
				if err := l.fill(); err != nil {
					return nil, false, err
				}
				continue
			}
			l.atStart = false
			if bytes.HasPrefix(b, bom) {
				l.start += len(bom)
				continue
			}
		}
		if l.afterCR && len(b) > 0 {
			l.afterCR = false
			if b[0] == '\n' {
				l.start++
				continue
			}
		}
		i := bytes.IndexAny(b, "\r\n")
		switch {
		case i >= 0 && l.skipping:
			l.skipping = false
			l.consume(i)
			continue
		case i >= 0:
			l.consume(i)
			return b[:i], false, nil
		case l.skipping:
			l.start = l.end
		case len(b) > l.max:
			l.skipping = true
			l.start = l.end
			return b[:l.max], true, nil
		}
		if err := l.fill(); err != nil {
			return nil, false, err
		}
	}
}

// consume drops the line of length i at the start of the buffer and its
// end.
func (l *lineReader) consume(i int) {
	l.afterCR = l.buf[l.start+i] == '\r'
	l.start += i + 1
}

// fill reads more into the buffer, first moving what is left to its start.
// It returns r's error once r has nothing more to give.
func (l *lineReader) fill() error {
	if l.err != nil {
		return l.err
	}
	if l.start > 0 {
		l.end = copy(l.buf, l.buf[l.start:l.end])
		l.start = 0
	}
	n, err := l.r.Read(l.buf[l.end:])
	l.end += n
	if err != nil {
		l.err = err
		if n == 0 {
			return err
		}
	}
	return nil
}
