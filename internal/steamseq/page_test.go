package steamseq

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/match"
	"github.com/dota-data/ingestion-service/internal/steamfake"
)

// pageRecorder is a PageHandler that keeps each page: the matches with
// their objects, and the cursor that ended it.
type pageRecorder struct {
	*recorder
	failEnd error // returned by EndPage once set

	pmu     sync.Mutex
	open    []match.Match
	objects map[int64]string // by seq
	pages   []recordedPage
}

type recordedPage struct {
	matches []match.Match
	at      Cursor
}

func newPageRecorder() *pageRecorder {
	return &pageRecorder{recorder: newRecorder(), objects: map[int64]string{}}
}

func (p *pageRecorder) MatchObject(ctx context.Context, m match.Match, object []byte) error {
	p.pmu.Lock()
	p.open = append(p.open, m)
	p.objects[m.SeqNum] = string(object)
	p.pmu.Unlock()
	return p.recorder.Match(ctx, m)
}

func (p *pageRecorder) Match(context.Context, match.Match) error {
	panic("a PageHandler is given MatchObject, not Match")
}

func (p *pageRecorder) EndPage(_ context.Context, at Cursor) error {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	if p.failEnd != nil {
		return p.failEnd
	}
	p.pages = append(p.pages, recordedPage{matches: p.open, at: at})
	p.open = nil
	return nil
}

// TestPageHandlerGetsObjectsAndCursors: with late listing, hidden matches
// and the rescan on, a PageHandler gets every match with its object byte
// for byte as the fake served it, and each page ends with a cursor that
// covers every match handed in it, never going back.
func TestPageHandlerGetsObjectsAndCursors(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 1, LateFraction: 0.05, LateBy: 600, HiddenEvery: 100})
	cfg := testConfig(base)
	cfg.StartSeqNum = fake.Head()
	cfg.IdleWait = 5 * time.Millisecond
	cfg.RescanBehind, cfg.RescanDelay = 800, 5*time.Second
	rec := newPageRecorder()
	r := start(t, cfg, noResume, rec)
	<-produce(t, fake, 2, 2000, 10*time.Millisecond)
	head := fake.Head()
	waitFor(t, "both cursors at the head", func() bool { return r.s.Position() == head && r.s.RescanPosition() == head })

	rec.pmu.Lock()
	defer rec.pmu.Unlock()
	got := map[int64]int{}
	var last Cursor
	for i, pg := range rec.pages {
		if pg.at.Primary < last.Primary || pg.at.Rescan < last.Rescan {
			t.Fatalf("page %d ends at %+v, after %+v: a cursor went back", i, pg.at, last)
		}
		last = pg.at
		for _, m := range pg.matches {
			got[m.SeqNum]++
			if late := m.RescanSeq == m.SeqNum; late && m.SeqNum > pg.at.Rescan || !late && m.SeqNum > pg.at.Primary {
				t.Fatalf("page %d holds seq %d but ends at %+v: a replay from that cursor would skip it", i, m.SeqNum, pg.at)
			}
		}
	}
	if last.Primary != head {
		t.Fatalf("the last page ends at %+v, want the primary at the head %d", last, head)
	}
	for _, m := range fake.Matches() {
		want, ok := fake.Body(m.SeqNum)
		if !ok {
			continue // hidden
		}
		if got[m.SeqNum] != 1 {
			t.Fatalf("seq %d handed %d times, want once", m.SeqNum, got[m.SeqNum])
		}
		if rec.objects[m.SeqNum] != want {
			t.Fatalf("seq %d: the object handed on differs from what the fake served", m.SeqNum)
		}
	}
}

// TestEndPageErrorStopsTheScan: a page the handler could not write stops
// Run with its error, for the scan to start again from the last cursor
// written.
func TestEndPageErrorStopsTheScan(t *testing.T) {
	fake, base := steamfake.Start(t, steamfake.Options{Count: 300})
	cfg := testConfig(base)
	cfg.StartSeqNum = fake.Matches()[0].SeqNum
	rec := newPageRecorder()
	failed := errors.New("transaction aborted")
	rec.failEnd = failed
	r := start(t, cfg, noResume, rec)
	if err := r.result(t); !errors.Is(err, failed) {
		t.Fatalf("Run = %v, want the EndPage error", err)
	}
}

// TestPlainHandlerSeesWhatAPageHandlerSees is why the scanner takes a
// plain Handler besides a PageHandler, though the service only ever gives
// it a PageHandler (its Kafka page writer): the plain Handler is the
// scanner's contract without Kafka, through which this package's tests
// check the scan itself (order, rescans, skips, refusals, resumes) and
// its example shows it. That holds for the service only if the two see the
// same scan: the same matches in the same order, the same rejections,
// with pages and objects the only difference.
func TestPlainHandlerSeesWhatAPageHandlerSees(t *testing.T) {
	opts := steamfake.Options{Count: 600, HiddenEvery: 97}
	run := func(h Handler, rec *recorder) ([]match.Match, []rejected) {
		fake, base := steamfake.Start(t, opts)
		fake.Replace(fake.Matches()[10].SeqNum, `{"match_seq_num":`+strconv.FormatInt(fake.Matches()[10].SeqNum, 10)+`,"match_id":null}`)
		cfg := testConfig(base)
		cfg.StartSeqNum = fake.Matches()[0].SeqNum
		r := start(t, cfg, noResume, h)
		head := fake.Head()
		waitFor(t, "the head", func() bool { return r.s.Position() == head })
		r.cancel()
		_ = r.result(t) // Run has returned: no call is under way
		return rec.snapshot()
	}
	plain := newRecorder()
	paged := newPageRecorder()
	pm, pr := run(plain, plain)
	gm, gr := run(paged, paged.recorder)
	if len(pm) == 0 || len(pr) == 0 {
		t.Fatalf("the plain handler saw %d matches and %d rejections; the test proves nothing", len(pm), len(pr))
	}
	if !slices.Equal(pm, gm) {
		t.Errorf("the plain handler saw %d matches, the page handler %d, or in another order", len(pm), len(gm))
	}
	if !slices.Equal(pr, gr) {
		t.Errorf("rejections: plain %v, paged %v", pr, gr)
	}
	if len(paged.pages) == 0 {
		t.Errorf("the page handler was given no page")
	}
}
