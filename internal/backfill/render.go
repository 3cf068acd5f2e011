package backfill

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteText writes p for a person: a line per shard and a total, each
// with a progress bar when bar is set (a terminal), as plain lines
// otherwise. now dates the "last commit" ages.
func WriteText(w io.Writer, p Progress, bar bool, now time.Time) error {
	var b strings.Builder
	for _, s := range p.Shards {
		line := shardLine(s, now)
		if bar {
			fmt.Fprintf(&b, "shard %3d %s %s\n", s.Index, progressBar(s.SeqsDone, s.Range.Len(), 24), line)
		} else {
			fmt.Fprintf(&b, "shard %d: %s\n", s.Index, line)
		}
	}
	total := fmt.Sprintf("%s of %s seqs (%s), %s matches, %s, skipped %s seqs",
		group(p.SeqsDone), group(p.Seqs), percent(p.SeqsDone, p.Seqs), group(p.Matches), rateETA(p.Rate, p.ETASeconds, p.Finished), group(p.SkippedSeqs))
	if bar {
		fmt.Fprintf(&b, "total     %s %s\n", progressBar(p.SeqsDone, p.Seqs, 24), total)
	} else {
		fmt.Fprintf(&b, "total: %s\n", total)
	}
	if p.Finished {
		fmt.Fprintf(&b, "Backfill finished: every shard has read its range.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// shardLine describes one shard.
func shardLine(s ShardProgress, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s of %s seqs (%s), %s matches, %s", s.Range, group(s.SeqsDone), group(s.Range.Len()),
		percent(s.SeqsDone, s.Range.Len()), group(s.Matches), rateETA(s.Rate, s.ETASeconds, s.ShardRecord.Done()))
	switch {
	case !s.Started:
		b.WriteString(", not started")
	default:
		fmt.Fprintf(&b, ", replica %s (last commit %s ago)", s.Replica, now.Sub(s.Updated).Round(time.Second))
	}
	if n := s.SkippedSeqs(); n > 0 {
		fmt.Fprintf(&b, ", skipped %d seqs:", n)
		for i, r := range s.Skipped {
			if i == 5 {
				fmt.Fprintf(&b, " and %d more", len(s.Skipped)-i)
				break
			}
			if r.First == r.Last {
				fmt.Fprintf(&b, " %d", r.First)
			} else {
				fmt.Fprintf(&b, " %d-%d", r.First, r.Last)
			}
		}
	}
	return b.String()
}

// rateETA says how fast, and how long until done.
func rateETA(rate, eta float64, done bool) string {
	switch {
	case done:
		return "done"
	case rate <= 0 || eta < 0:
		return "no recent rate"
	}
	return fmt.Sprintf("%.1f seqs/s, done in %s", rate, (time.Duration(eta) * time.Second).Round(time.Second))
}

// progressBar draws done of total in width cells.
func progressBar(done, total int64, width int) string {
	n := 0
	if total > 0 {
		n = int(done * int64(width) / total)
	}
	n = min(max(n, 0), width)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func percent(done, total int64) string {
	if total == 0 {
		return "0.0%"
	}
	return strconv.FormatFloat(float64(done)*100/float64(total), 'f', 1, 64) + "%"
}

// group writes n with commas between thousands.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
