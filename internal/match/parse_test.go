package match

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		frame  string
		want   int64
		reason Reason
	}{
		{name: "plain", frame: `{"match_id":123}`, want: 123},
		{name: "other fields ignored", frame: `{"start_time":1700000000,"match_id":8012345678,"radiant_win":true}`, want: 8012345678},
		{name: "whitespace", frame: " \n{ \"match_id\" :\t42 }\r\n", want: 42},
		{name: "nested objects skipped", frame: `{"players":[{"match_id":1},{"x":"}"}],"match_id":7}`, want: 7},
		{name: "escaped key", frame: `{"match\u005fid":99}`, want: 99},
		{name: "last duplicate wins", frame: `{"match_id":1,"match_id":2}`, want: 2},
		{name: "max int64", frame: `{"match_id":9223372036854775807}`, want: math.MaxInt64},
		{name: "one", frame: `{"match_id":1}`, want: 1},

		{name: "empty frame", frame: ``, reason: InvalidJSON},
		{name: "not json", frame: `match 123`, reason: InvalidJSON},
		{name: "truncated", frame: `{"match_id":123`, reason: InvalidJSON},
		{name: "trailing garbage", frame: `{"match_id":123} x`, reason: InvalidJSON},
		{name: "leading zero", frame: `{"match_id":0123}`, reason: InvalidJSON},
		{name: "invalid UTF-8 in a string", frame: "{\"match_id\":5,\"x\":\"\xff\"}", reason: InvalidUTF8},
		{name: "invalid UTF-8 in a key", frame: "{\"match_id\":5,\"\xc3\x28\":1}", reason: InvalidUTF8},
		{name: "plus sign", frame: `{"match_id":+5}`, reason: InvalidJSON},
		{name: "array", frame: `[{"match_id":1}]`, reason: NotObject},
		{name: "bare number", frame: `123`, reason: NotObject},
		{name: "bare string", frame: `"123"`, reason: NotObject},
		{name: "null frame", frame: `null`, reason: NotObject},
		{name: "missing", frame: `{"id":123}`, reason: MissingID},
		{name: "empty object", frame: `{}`, reason: MissingID},
		{name: "only nested", frame: `{"m":{"match_id":1}}`, reason: MissingID},
		{name: "key case differs", frame: `{"Match_ID":1}`, reason: MissingID},
		{name: "null", frame: `{"match_id":null}`, reason: NullID},
		{name: "string", frame: `{"match_id":"123"}`, reason: WrongType},
		{name: "true", frame: `{"match_id":true}`, reason: WrongType},
		{name: "false", frame: `{"match_id":false}`, reason: WrongType},
		{name: "object", frame: `{"match_id":{"id":1}}`, reason: WrongType},
		{name: "array value", frame: `{"match_id":[1]}`, reason: WrongType},
		{name: "float", frame: `{"match_id":1.5}`, reason: NotInteger},
		{name: "exponent", frame: `{"match_id":1e3}`, reason: NotInteger},
		{name: "integral float", frame: `{"match_id":123.0}`, reason: NotInteger},
		{name: "negative exponent", frame: `{"match_id":-1E2}`, reason: NotInteger},
		{name: "zero", frame: `{"match_id":0}`, reason: NotPositive},
		{name: "negative zero", frame: `{"match_id":-0}`, reason: NotPositive},
		{name: "negative", frame: `{"match_id":-5}`, reason: NotPositive},
		{name: "huge negative", frame: `{"match_id":-99999999999999999999999}`, reason: NotPositive},
		{name: "2^63", frame: `{"match_id":9223372036854775808}`, reason: OutOfRange},
		{name: "2^64", frame: `{"match_id":18446744073709551616}`, reason: OutOfRange},
		{name: "many digits", frame: `{"match_id":` + strings.Repeat("9", 400) + `}`, reason: OutOfRange},
		{name: "last duplicate invalid", frame: `{"match_id":1,"match_id":"x"}`, reason: WrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.frame))
			if tt.reason != "" {
				r, ok := ReasonOf(err)
				if !ok || r != tt.reason {
					t.Fatalf("Parse(%q) = %v, %v; want rejection %q", tt.frame, m, err, tt.reason)
				}
				if m != (Match{}) {
					t.Fatalf("rejected frame returned a non-zero Match %v", m)
				}
				return
			}
			if err != nil || m.ID != tt.want {
				t.Fatalf("Parse(%q) = %v, %v; want ID %d", tt.frame, m, err, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	if _, err := New(0); mustReason(t, err) != NotPositive {
		t.Fatalf("New(0) = %v", err)
	}
	if _, err := New(-1); mustReason(t, err) != NotPositive {
		t.Fatalf("New(-1) = %v", err)
	}
	m, err := New(5)
	if err != nil || m.ID != 5 {
		t.Fatalf("New(5) = %v, %v", m, err)
	}
}

func mustReason(t *testing.T, err error) Reason {
	t.Helper()
	r, ok := ReasonOf(err)
	if !ok {
		t.Fatalf("%v is not a rejection", err)
	}
	return r
}

func TestRecordEncoding(t *testing.T) {
	for _, id := range []int64{1, 42, 8012345678, math.MaxInt64} {
		m := Match{ID: id}
		if got, want := string(m.AppendKey(nil)), strconv.FormatInt(id, 10); got != want {
			t.Errorf("key = %q, want %q", got, want)
		}
		v := m.AppendValue([]byte("prefix"))
		if !bytes.HasPrefix(v, []byte("prefix")) {
			t.Fatalf("AppendValue dropped dst: %q", v)
		}
		v = v[len("prefix"):]
		if want := `{"match_id":` + strconv.FormatInt(id, 10) + `}`; string(v) != want {
			t.Errorf("value = %q, want %q", v, want)
		}
		// The value must round-trip through Parse.
		back, err := Parse(v)
		if err != nil || back != m {
			t.Errorf("Parse(AppendValue(%d)) = %v, %v", id, back, err)
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race; .ci/run runs this test without it")
	}
	valid := []byte(`{"match_id":8012345678,"other":[1,2,{"a":"b"}]}`)
	invalid := []byte(`{"match_id":"8012345678"}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(valid) }); n != 0 {
		t.Errorf("Parse(valid) allocates %.0f times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(invalid) }); n != 0 {
		t.Errorf("Parse(invalid) allocates %.0f times", n)
	}
}

// reference classifies a frame with encoding/json alone; the fuzz test
// checks that Parse agrees with it on every input.
func reference(frame []byte) (int64, Reason) {
	if !json.Valid(frame) {
		return 0, InvalidJSON
	}
	if !utf8.Valid(frame) {
		return 0, InvalidUTF8
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(frame, &obj); err != nil || obj == nil {
		return 0, NotObject
	}
	raw, ok := obj["match_id"]
	if !ok {
		return 0, MissingID
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case string(raw) == "null":
		return 0, NullID
	case raw[0] == '"' || raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f':
		return 0, WrongType
	case bytes.ContainsAny(raw, ".eE"):
		return 0, NotInteger
	case raw[0] == '-' || strings.Trim(string(raw), "0") == "":
		return 0, NotPositive
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, OutOfRange
	}
	return n, ""
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"match_id":123}`, `{"match_id":"1"}`, `{"match_id":1.0}`, `{"match_id":-1}`, `{"match_id":null}`,
		`{"match_id":9223372036854775808}`, `[]`, `{`, ``, `{"a":{"match_id":1},"match_id":2}`,
		`{"match\u005fid":3}`, `{"match_id":1e3}`, `{"x":"\"}","match_id":4}`,
		`{"match_id":0}`, `{"match_id":01}`, `{"match_id":999999999999999999}`, `{"match_id":9223372036854775807}`,
		`{"match_id":1}}`, `{"match_id":}`, `{"match_id":1 }`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := Parse(frame)
		wantID, wantReason := reference(frame)
		if err != nil {
			r, ok := ReasonOf(err)
			if !ok {
				t.Fatalf("Parse(%q) returned a non-rejection error %v", frame, err)
			}
			// encoding/json keeps the last of duplicate keys, as Parse does,
			// so the reasons must agree exactly.
			if r != wantReason {
				t.Fatalf("Parse(%q) rejected with %q, reference says %q (id %d)", frame, r, wantReason, wantID)
			}
			return
		}
		if wantReason != "" || m.ID != wantID || m.ID <= 0 {
			t.Fatalf("Parse(%q) = %d, reference says %d %q", frame, m.ID, wantID, wantReason)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	frame := []byte(`{"match_id":8012345678,"match_seq_num":6712345678,"start_time":1764201600}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := Parse(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCanonical parses the stream's expected form, which skips
// the validation pass.
func BenchmarkParseCanonical(b *testing.B) {
	frame := []byte(`{"match_id":8012345678}`)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(frame); err != nil {
			b.Fatal(err)
		}
	}
}
