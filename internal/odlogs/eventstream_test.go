package odlogs

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// transcript reads s to its end and describes what it yields, one string
// per event: "type|data" with the data buffer's LFs shown as "/", "long:"
// and the head of an over-long data line, "+N dropped" after an event
// that left lines out. It returns the stream's error too.
func transcript(s *eventStream) ([]string, error) {
	var out []string
	for {
		ev, err := s.next()
		if err != nil {
			return out, err
		}
		switch {
		case ev.long:
			out = append(out, "long:"+string(ev.data))
		default:
			typ := "message"
			if !ev.message {
				typ = "named"
			}
			e := typ + "|" + strings.ReplaceAll(string(ev.data), "\n", "/")
			if ev.dropped > 0 {
				e += fmt.Sprintf(" +%d dropped", ev.dropped)
			}
			out = append(out, e)
		}
	}
}

func TestEventStream(t *testing.T) {
	long := strings.Repeat("x", 40)
	tests := []struct {
		name   string
		in     string
		want   []string
		lastID string
		retry  time.Duration
	}{
		{"upstream's shape", "data: one\n\ndata: two\n\n", []string{"message|one/", "message|two/"}, "", 0},
		{"CRLF", "data: one\r\n\r\ndata: two\r\n\r\n", []string{"message|one/", "message|two/"}, "", 0},
		{"CR", "data: one\r\rdata: two\r\r", []string{"message|one/", "message|two/"}, "", 0},
		{"mixed ends", "data: a\r\ndata: b\rdata: c\n\r\n", []string{"message|a/b/c/"}, "", 0},
		{"multi-line data", "data: a\ndata: b\ndata\ndata:c\n\n", []string{"message|a/b//c/"}, "", 0},
		{"only one space is dropped", "data:  a \n\n", []string{"message| a /"}, "", 0},
		{"comments", ": hello\n:\ndata: a\n: between\n\n", []string{"message|a/"}, "", 0},
		{"comment-only event is not dispatched", ": keep-alive\n\n", nil, "", 0},
		{"blank lines alone", "\n\n\r\n\r\r", nil, "", 0},
		{"empty data dispatches", "data\n\n", []string{"message|/"}, "", 0},
		{"unknown fields", "foo: bar\nDATA: x\ndata : y\ndata: z\n\n", []string{"message|z/"}, "", 0},
		{"named event", "event: ping\ndata: a\n\ndata: b\n\n", []string{"named|a/", "message|b/"}, "", 0},
		{"event message is a message", "event: message\ndata: a\n\n", []string{"message|a/"}, "", 0},
		{"type does not outlive its event", "event: x\n\ndata: a\n\n", []string{"message|a/"}, "", 0},
		{"ids", "id: 1\ndata: a\n\nid: 2\ndata: b\n\n", []string{"message|a/", "message|b/"}, "2", 0},
		{"id on its own sets the last ID", "data: a\n\nid: 7\n\n", []string{"message|a/"}, "7", 0},
		{"id with NUL is ignored", "id: 1\n\nid: a\x00b\n\n", nil, "1", 0},
		{"empty id clears", "id: 1\n\nid\n\n", nil, "", 0},
		{"id of an undispatched event", "id: 1\n\nid: 2\ndata: cut", nil, "1", 0},
		{"retry", "retry: 2500\n\n", nil, "", 2500 * time.Millisecond},
		{"retry, last wins", "retry: 100\nretry: 200\n", nil, "", 200 * time.Millisecond},
		{"retry, not digits", "retry: 100\nretry: 1s\nretry: -5\nretry:\nretry: 1.5\n", nil, "", 100 * time.Millisecond},
		{"retry, huge", "retry: 99999999999999999999\n", nil, "", maxRetry},
		{"BOM", "\xef\xbb\xbfdata: a\n\n", []string{"message|a/"}, "", 0},
		{"second BOM is data", "\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n", nil, "", 0},
		{"partial event at the end", "data: a\n\ndata: b\n", []string{"message|a/"}, "", 0},
		{"partial line at the end", "data: a\n\ndata: b", []string{"message|a/"}, "", 0},
		{"line at the limit", "data: " + long[:26] + "\n\n", []string{"message|" + long[:26] + "/"}, "", 0},
		{"line over the limit", "data: " + long + "\ndata: ok\n\n", []string{"long:" + long[:26], "message|ok/"}, "", 0},
		{"line over the limit, CRLF", "data: " + long + "\r\ndata: ok\r\n\r\n", []string{"long:" + long[:26], "message|ok/"}, "", 0},
		{"long comment", ":" + long + long + "\ndata: ok\n\n", []string{"message|ok/"}, "", 0},
		{"long id is dropped", "id: 1\n\nid: " + long + "\n\n", nil, "1", 0},
		{"event over its limit", "data: 0123456789012345678\ndata: 0123456789012345678\ndata: 0123456789\ndata: a\n\ndata: next\n\n",
			[]string{"message|0123456789012345678/0123456789012345678/a/ +1 dropped", "message|next/"}, "", 0},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"halves":   iotest.HalfReader,
	}
	for _, tt := range tests {
		for rname, wrap := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				s := newEventStream(32, 48)
				s.reset(wrap(strings.NewReader(tt.in)))
				got, err := transcript(s)
				if !errors.Is(err, io.EOF) {
					t.Fatalf("error = %v, want EOF", err)
				}
				if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
					t.Fatalf("events:\n%q\nwant:\n%q", got, tt.want)
				}
				if s.lastID != tt.lastID {
					t.Errorf("last event ID = %q, want %q", s.lastID, tt.lastID)
				}
				if s.retry != tt.retry {
					t.Errorf("retry = %v, want %v", s.retry, tt.retry)
				}
			})
		}
	}
}

func TestEventStreamKeepsIDAndRetryAcrossConnections(t *testing.T) {
	s := newEventStream(256, 1024)
	s.reset(strings.NewReader("retry: 300\nid: 41\ndata: a\n\ndata: b"))
	if _, err := transcript(s); !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	// The next connection's events carry on from the last ID; a partial
	// line of the previous body does not leak into it.
	s.reset(strings.NewReader("data: c\n\n"))
	got, err := transcript(s)
	if !errors.Is(err, io.EOF) || len(got) != 1 || got[0] != "message|c/" {
		t.Fatalf("second body: %q, %v", got, err)
	}
	if s.lastID != "41" || s.retry != 300*time.Millisecond {
		t.Fatalf("last ID %q, retry %v; want 41, 300ms", s.lastID, s.retry)
	}
}

func TestEventStreamReturnsReadError(t *testing.T) {
	boom := errors.New("connection reset")
	s := newEventStream(256, 1024)
	s.reset(io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom)))
	got, err := transcript(s)
	if !errors.Is(err, boom) {
		t.Fatalf("error = %v, want %v", err, boom)
	}
	if len(got) != 1 || got[0] != "message|a/" {
		t.Fatalf("events = %q, want only the dispatched one", got)
	}
}
