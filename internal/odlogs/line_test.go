package odlogs

import (
	"strings"
	"testing"

	"github.com/dota-data/ingestion-service/internal/match"
)

// Lines in the upstream's shapes (see the package comment).
const (
	insertLine = "[2026-08-21T18:25:36.123Z] [inserter] [insert: api] [ended: a few seconds ago] 8012345678"
	parsedLine = "\x1b[32m[2026-08-21T18:25:36.123Z] [parser] [success: 5321ms] [api: 102ms] [gcdata: 350ms] [parse: 4801ms] [queued: a minute ago] [pri: 1] [att: 1] 8012345601 \x1b[39m"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		kind   Kind
		id     int64
		reason match.Reason
	}{
		{"insert", insertLine, Insert, 8012345678, ""},
		{"insert, app is a path", "[2026-08-21T18:25:36.123Z] [/usr/src/svc/scanner.ts] [insert: api] [ended: 2 hours ago] 42", Insert, 42, ""},
		{"insert, colour codes", "\x1b[1;31m" + insertLine + "\x1b[0m", Insert, 8012345678, ""},
		{"insert, code inside the ID", "[t] [inserter] [insert: api] [ended: x] 80\x1b[1m12", Insert, 8012, ""},
		{"insert, blanks around", " \t" + insertLine + "\r\n", Insert, 8012345678, ""},
		{"insert, no ended field", "[t] [inserter] [insert: api] 7", Insert, 7, ""},
		{"insert, extra fields", "[t] [inserter] [insert: api] [ended: x] [new: y] 7", Insert, 7, ""},
		{"insert, words after the ID", "[t] [inserter] [insert: api] [ended: x] 7 later", Insert, 7, ""},
		{"insert, max int64", "[t] [s] [insert: api] [ended: x] 9223372036854775807", Insert, 9223372036854775807, ""},
		// The frame parser's rule: an integer literal has no leading zero.
		{"insert, leading zeros", "[t] [s] [insert: api] [ended: x] 007", Insert, 0, match.NotInteger},
		{"insert, zero", "[t] [s] [insert: api] [ended: x] 0", Insert, 0, match.NotPositive},
		{"insert, blanks in the tag", "[t] [s] [insert:  api ] [ended: x] 7", Insert, 7, ""},
		{"parsed, green", parsedLine, Parsed, 8012345601, ""},
		{"parsed, no colour", "[t] [parser] [success: 1ms] [api: 0ms] [gcdata: 0ms] [parse: 0ms] [queued: now] [pri: 1] [att: 1] 99 ", Parsed, 99, ""},

		{"insert, ID missing", "[t] [inserter] [insert: api] [ended: x]", Insert, 0, match.MissingID},
		{"insert, ID missing, blanks", "[t] [inserter] [insert: api] [ended: x]   ", Insert, 0, match.MissingID},
		{"insert, ID undefined", "[t] [inserter] [insert: api] [ended: x] undefined", Insert, 0, match.NotInteger},
		{"insert, ID with fraction", "[t] [inserter] [insert: api] [ended: x] 1.5", Insert, 0, match.NotInteger},
		{"insert, ID in exponent form", "[t] [inserter] [insert: api] [ended: x] 1e+21", Insert, 0, match.NotInteger},
		{"insert, ID with plus", "[t] [inserter] [insert: api] [ended: x] +5", Insert, 0, match.NotInteger},
		{"insert, lone minus", "[t] [inserter] [insert: api] [ended: x] -", Insert, 0, match.NotInteger},
		{"insert, unclosed field", "[t] [inserter] [insert: api] [ended: x 5", Insert, 0, match.NotInteger},
		{"insert, ID zero", "[t] [inserter] [insert: api] [ended: x] 0", Insert, 0, match.NotPositive},
		{"insert, ID negative", "[t] [inserter] [insert: api] [ended: x] -8012345678", Insert, 0, match.NotPositive},
		{"insert, ID 2^63", "[t] [inserter] [insert: api] [ended: x] 9223372036854775808", Insert, 0, match.OutOfRange},
		{"insert, ID of 30 digits", "[t] [inserter] [insert: api] [ended: x] 123456789012345678901234567890", Insert, 0, match.OutOfRange},
		{"parsed, ID not a number", "\x1b[32m[t] [parser] [success: 1ms] [att: 1] NaN \x1b[39m", Parsed, 0, match.NotInteger},

		{"insert of parsed data", "[t] [parser] [insert: parsed] [ended: x] 8012345601", Other, 0, ""},
		{"insert of gcdata", "[t] [retriever] [insert: gcdata] [ended: x] 8012345601", Other, 0, ""},
		{"parse failed", "\x1b[33m[t] [parser] [fail: 1ms] [api: 0ms] [gcdata: 0ms] [parse: 0ms] [queued: now] [pri: 1] [att: 1] 8012345601 Missing API data\x1b[39m", Other, 0, ""},
		{"parse crashed", "\x1b[31m[t] [parser] [crash: 1ms] [att: 1] 8012345601 boom\x1b[39m", Other, 0, ""},
		{"parse skipped", "\x1b[90m[t] [parser] [skip: 1ms] [att: 1] 8012345601 Replay parse skipped (already parsed)\x1b[39m", Other, 0, ""},
		{"success from another app", "[t] [web] [success: 1ms] 8012345601", Other, 0, ""},
		{"queue line", "\x1b[35m[t] [web] [queue: parse] [pri: 1] [att: 1] 8012345601\x1b[39m", Other, 0, ""},
		{"job progress", "\x1b[34mFetching API data...\x1b[39m", Other, 0, ""},
		{"empty", "", Other, 0, ""},
		{"blank", " \t ", Other, 0, ""},
		{"bare ID", "8012345678", Other, 0, ""},
		{"two fields only", "[t] [insert: api] 5", Other, 0, ""},
		{"no space between fields", "[t][scanner][insert: api] 5", Other, 0, ""},
		{"insert tag in the wrong place", "[insert: api] [t] [scanner] 5", Other, 0, ""},
		{"tag is a prefix", "[t] [scanner] [insert: apiary] 5", Other, 0, ""},
		{"unclosed first field", "[t [inserter] [insert: api] 5", Other, 0, ""},
		{"JSON", `{"match_id":8012345678}`, Other, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, m, err := ParseLine([]byte(tt.line))
			if kind != tt.kind {
				t.Fatalf("kind = %v, want %v", kind, tt.kind)
			}
			if tt.reason != "" {
				if r, ok := match.ReasonOf(err); !ok || r != tt.reason {
					t.Fatalf("error = %v, want reason %s", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v", err)
			}
			if m.ID != tt.id {
				t.Fatalf("ID = %d, want %d", m.ID, tt.id)
			}
		})
	}
}

func TestStripANSI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"\x1b[32mgreen\x1b[39m", "green"},
		{"\x1b[0m\x1b[1;31mbold red\x1b[0m", "bold red"},
		{"a\x1b[38;5;208mb", "ab"},
		{"a\x1b[?25hb", "ab"}, // a private parameter byte
		{"a\x1b[1 qb", "ab"},  // an intermediate byte
		{"cut at the end\x1b[3", "cut at the end"},
		{"cut\x1b[", "cut"},
		{"a\x1b[31\x1bb", "a\x1bb"}, // cut by a byte that cannot be in a CSI
		{"lone \x1b", "lone \x1b"},
		{"\x1bXnot CSI", "\x1bXnot CSI"},
		{"\x1b\x1b[32mx", "\x1bx"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := string(stripANSI(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("stripANSI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHeadKind(t *testing.T) {
	tests := []struct {
		head string
		want Kind
	}{
		{"[t] [" + strings.Repeat("a", 300) + "] [insert: api] [ended: x", Insert},
		{"\x1b[32m[t] [parser] [success: 1ms] [api: 0ms", Parsed},
		{"[t] [scanner] [insert: a", Other},
		{"[t] [inserter] [insert: api]", Insert},
		{strings.Repeat("x", 300), Other},
	}
	for _, tt := range tests {
		if got := headKind([]byte(tt.head)); got != tt.want {
			t.Errorf("headKind(%.40q) = %v, want %v", tt.head, got, tt.want)
		}
	}
}

func TestParseLineAllocatesNothing(t *testing.T) {
	for _, line := range []string{insertLine, parsedLine, "[t] [s] [insert: api] [ended: x] 0", "noise \x1b[1mnoise"} {
		b := []byte(line)
		if n := testing.AllocsPerRun(100, func() { _, _, _ = ParseLine(b) }); n != 0 {
			t.Errorf("ParseLine(%.30q) allocates %v times", line, n)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		insertLine, parsedLine, "", "[", "[]", "[] [] []", "[t] [s] [insert: api] -0",
		"[t] [s] [insert: api] [ended: x] 9223372036854775808", "\x1b[", "\x1b[32m[t] [parser] [success: 1ms] 5\x1b[39m",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		kind, m, err := ParseLine(line)
		switch {
		case kind == Other && (err != nil || m != match.Match{}):
			t.Fatalf("Other line gave %+v, %v", m, err)
		case kind != Other && err == nil && m.ID <= 0:
			t.Fatalf("%v line gave ID %d", kind, m.ID)
		case err != nil && m != match.Match{}:
			t.Fatalf("rejected line gave %+v", m)
		}
		if _, ok := match.ReasonOf(err); err != nil && !ok {
			t.Fatalf("error %v is not a *match.RejectError", err)
		}
		// Colour codes around a line do not change what it says.
		wrapped := append(append([]byte("\x1b[32m"), line...), "\x1b[39m"...)
		if k2, m2, err2 := ParseLine(wrapped); k2 != kind || m2 != m || err2 != err {
			t.Fatalf("wrapped in colour: %v %+v %v, plain: %v %+v %v", k2, m2, err2, kind, m, err)
		}
	})
}

func BenchmarkParseLine(b *testing.B) {
	for _, bb := range []struct{ name, line string }{
		{"insert", insertLine},
		{"parsed", parsedLine},
		{"other", "\x1b[35m[2026-08-21T18:25:36.123Z] [web] [queue: parse] [pri: 1] [att: 1] 8012345601\x1b[39m"},
	} {
		line := []byte(bb.line)
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				_, _, _ = ParseLine(line)
			}
		})
	}
}
