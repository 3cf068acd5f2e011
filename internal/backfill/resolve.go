package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dota-data/ingestion-service/internal/backoff"
	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/steamseq"
	"github.com/dota-data/ingestion-service/internal/steamtxn"
)

// planRecord is what the cursor topic holds of a range given by dates:
// the seqs the dates were turned into, so that every replica and every
// later start splits the same range (a search's answer could differ by a
// few seqs as Steam lists more).
type planRecord struct {
	From     string         `json:"from"`
	To       string         `json:"to"`
	Range    steamseq.Range `json:"range"`
	Resolved time.Time      `json:"resolved"`
}

// planUnit is the unit of a plan record's writer and key.
func planUnit(c Config) string { return "backfill.plan." + c.From.String() + ".." + c.To.String() }

// PlanKey returns the cursor topic's key of the plan record of c, whose
// matches go to topic.
func PlanKey(topic string, c Config) string { return topic + "." + planUnit(c) }

// DateSearch turns a date into a seq (steamseq.Client.SeqAtDate).
type DateSearch func(ctx context.Context, t time.Time, log *slog.Logger) (steamseq.SearchResult, error)

// Resolve returns c's range as seqs. Bounds given as seqs are taken as
// they are. A bound given as a date is read from the plan record in the
// cursor topic when one was committed; otherwise this replica starts the
// plan's transactional writer (fencing any other replica doing the same),
// reads the record again, and if it is still missing turns the dates into
// seqs with search and commits the record. A replica whose writer was
// fenced meanwhile waits for the other's record. So every replica, now
// and later, splits the same range. It retries failures until ctx ends.
func Resolve(ctx context.Context, c Config, kcfg kafkasink.Config, topics steamtxn.Topics, search DateSearch, log *slog.Logger) (steamseq.Range, error) {
	if c.From.Date.IsZero() && c.To.Date.IsZero() {
		return steamseq.Range{From: c.From.Seq, To: c.To.Seq}, nil
	}
	for attempt := 0; ; attempt++ {
		r, err := resolveOnce(ctx, c, kcfg, topics, search, log)
		if err == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			return steamseq.Range{}, ctx.Err()
		}
		delay := backoff.Delay(attempt, time.Second, time.Minute)
		log.Warn("Cannot turn the backfill's dates into seqs yet; retrying", "error", err, "retry_in", delay.String())
		if !backoff.Wait(ctx, delay) {
			return steamseq.Range{}, ctx.Err()
		}
	}
}

func resolveOnce(ctx context.Context, c Config, kcfg kafkasink.Config, topics steamtxn.Topics, search DateSearch, log *slog.Logger) (steamseq.Range, error) {
	if r, ok, err := readPlan(ctx, c, kcfg, topics); err != nil || ok {
		return r, err
	}
	pcfg := steamtxn.PageConfig(kcfg, topics, planUnit(c))
	pw, cursor, err := kafkasink.NewPageWriter(ctx, pcfg, log)
	if err != nil {
		return steamseq.Range{}, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pw.Close(closeCtx)
	}()
	if cursor != nil {
		return decodePlan(cursor, c)
	}
	r := steamseq.Range{From: c.From.Seq, To: c.To.Seq}
	for _, b := range []struct {
		bound Bound
		seq   *int64
		name  string
	}{{c.From, &r.From, "STEAM_BACKFILL_FROM"}, {c.To, &r.To, "STEAM_BACKFILL_TO"}} {
		if b.bound.Date.IsZero() {
			continue
		}
		began := time.Now()
		res, err := search(ctx, b.bound.Date, log)
		if err != nil {
			return steamseq.Range{}, fmt.Errorf("find the seq of %s: %w", b.bound, err)
		}
		*b.seq = res.Seq
		log.Info("Turned a date of the backfill's range into a seq", "setting", b.name, "date", b.bound.String(),
			"match_seq_num", res.Seq, "start_time", time.Unix(res.StartTime, 0).UTC().Format(time.RFC3339),
			"calls", res.Calls, "took", time.Since(began).Round(time.Millisecond).String())
	}
	if r.To <= r.From {
		return steamseq.Range{}, fmt.Errorf("the range %s to %s holds no seq: %s", c.From, c.To, r)
	}
	rec, err := json.Marshal(planRecord{From: c.From.String(), To: c.To.String(), Range: r, Resolved: time.Now().UTC()})
	if err != nil {
		return steamseq.Range{}, err
	}
	if err := pw.Commit(ctx, rec); err != nil {
		if !errors.Is(err, kafkasink.ErrFenced) {
			return steamseq.Range{}, err
		}
		// Another replica resolves the plan: wait for its record.
		return waitPlan(ctx, c, kcfg, topics)
	}
	return r, nil
}

// waitPlan reads the plan record every few seconds until it is there, for
// up to two minutes.
func waitPlan(ctx context.Context, c Config, kcfg kafkasink.Config, topics steamtxn.Topics) (steamseq.Range, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if !backoff.Wait(ctx, 2*time.Second) {
			return steamseq.Range{}, ctx.Err()
		}
		if r, ok, err := readPlan(ctx, c, kcfg, topics); err != nil || ok {
			return r, err
		}
	}
	return steamseq.Range{}, errors.New("another replica took over turning the dates into seqs, and committed nothing in two minutes")
}

// readPlan reads the plan record, reporting whether there is one.
func readPlan(ctx context.Context, c Config, kcfg kafkasink.Config, topics steamtxn.Topics) (steamseq.Range, bool, error) {
	key := PlanKey(topics.IDs, c)
	recs, err := kafkasink.ReadCursors(ctx, kcfg, topics.Cursor, func(k string) bool { return k == key })
	if errors.Is(err, kafkasink.ErrTopicMissing) {
		return steamseq.Range{}, false, nil
	}
	if err != nil {
		return steamseq.Range{}, false, err
	}
	b, ok := recs[key]
	if !ok {
		return steamseq.Range{}, false, nil
	}
	r, err := decodePlan(b, c)
	return r, err == nil, err
}

func decodePlan(b []byte, c Config) (steamseq.Range, error) {
	var p planRecord
	if err := json.Unmarshal(b, &p); err != nil {
		return steamseq.Range{}, fmt.Errorf("backfill plan record %q: %w", b, err)
	}
	if p.Range.Len() == 0 || p.From != c.From.String() || p.To != c.To.String() {
		return steamseq.Range{}, fmt.Errorf("backfill plan record %q is not of %s to %s", b, c.From, c.To)
	}
	return p.Range, nil
}

// ReadRange returns c's range as seqs without calling Steam: as given,
// or from the plan record a replica committed. It reports false when the
// dates have not been turned into seqs yet.
func ReadRange(ctx context.Context, c Config, kcfg kafkasink.Config, topics steamtxn.Topics) (steamseq.Range, bool, error) {
	if c.From.Date.IsZero() && c.To.Date.IsZero() {
		return steamseq.Range{From: c.From.Seq, To: c.To.Seq}, true, nil
	}
	return readPlan(ctx, c, kcfg, topics)
}
