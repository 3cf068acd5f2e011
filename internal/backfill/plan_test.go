package backfill

import (
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/steamseq"
)

func TestSplit(t *testing.T) {
	for _, tt := range []struct {
		r    steamseq.Range
		n    int
		want []steamseq.Range
	}{
		{steamseq.Range{From: 1, To: 101}, 4, []steamseq.Range{{From: 1, To: 26}, {From: 26, To: 51}, {From: 51, To: 76}, {From: 76, To: 101}}},
		{steamseq.Range{From: 10, To: 17}, 3, []steamseq.Range{{From: 10, To: 13}, {From: 13, To: 15}, {From: 15, To: 17}}},
		{steamseq.Range{From: 5, To: 7}, 4, []steamseq.Range{{From: 5, To: 6}, {From: 6, To: 7}}},
		{steamseq.Range{From: 5, To: 5}, 4, nil},
		{steamseq.Range{From: 5, To: 9}, 0, nil},
	} {
		got := Split(tt.r, tt.n)
		if len(got) != len(tt.want) {
			t.Fatalf("Split(%v, %d) = %v, want %v", tt.r, tt.n, got, tt.want)
		}
		var total int64
		for i := range got {
			if got[i] != tt.want[i] {
				t.Fatalf("Split(%v, %d) = %v, want %v", tt.r, tt.n, got, tt.want)
			}
			total += got[i].Len()
		}
		if len(tt.want) > 0 && total != tt.r.Len() {
			t.Fatalf("Split(%v, %d) covers %d seqs, want %d", tt.r, tt.n, total, tt.r.Len())
		}
	}
}

func TestParseBound(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Bound
		ok   bool
	}{
		{"6300000000", Bound{Seq: 6_300_000_000}, true},
		{" 2024-01-01 ", Bound{Date: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, true},
		{"0", Bound{}, false},
		{"-5", Bound{}, false},
		{"2024-13-01", Bound{}, false},
		{"2010-01-01", Bound{}, false},
		{"yesterday", Bound{}, false},
	} {
		got, err := ParseBound(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBound(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && got.String() != strings.TrimSpace(tt.in) {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}
