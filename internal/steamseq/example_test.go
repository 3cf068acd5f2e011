package steamseq_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
	"github.com/dota-data/ingestion-service/internal/steamseq"
)

// printer prints the first matches it is given, then refuses more.
type printer struct{ left int }

var errEnough = errors.New("enough")

func (p *printer) Match(_ context.Context, m match.Match) error {
	if p.left == 0 {
		return errEnough
	}
	p.left--
	fmt.Printf("match %d, seq %d, started %d\n", m.ID, m.SeqNum, m.StartTime)
	return nil
}

func (p *printer) Reject(_ context.Context, reason match.Reason, item []byte) {
	fmt.Printf("rejected (%s): %s\n", reason, item)
}

func Example() {
	fake := steamfake.New(steamfake.Options{Count: 10})
	fake.Replace(6_500_000_001, `{"match_seq_num":6500000001,"match_id":null}`)
	srv := httptest.NewServer(fake)
	defer srv.Close()

	s, err := steamseq.New(steamseq.Config{BaseURL: srv.URL, Keys: []string{steamfake.DefaultKey}},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		fmt.Println(err)
		return
	}
	// Resume after the first match, as if it had been delivered before.
	resume := func(context.Context, int64, int64) (steamseq.Resume, error) {
		return steamseq.Resume{Found: true, Seq: 6_500_000_000, Rescan: 6_500_000_000}, nil
	}
	err = s.Run(context.Background(), resume, &printer{left: 2})
	fmt.Println(errors.Is(err, errEnough), "position", s.Position())
	// Output:
	// rejected (null_match_id): {"match_seq_num":6500000001,"match_id":null}
	// match 8300000006, seq 6500000002, started 1760000004
	// match 8300000009, seq 6500000003, started 1760000006
	// true position 6500000003
}
