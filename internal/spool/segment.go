package spool

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	segmentExt = ".seg"
	// maxSeq bounds sequence numbers read from disk, far beyond any real
	// spool, so that arithmetic on them cannot overflow.
	maxSeq = 1 << 62
)

// segment describes one segment file.
type segment struct {
	id    uint64 // sequence number of its first record; names the file
	size  int64  // bytes in the file, counted against MaxBytes
	end   int64  // end of the last valid record; reading stops here
	count uint64 // valid records
}

// endSeq is the sequence number after the segment's last record.
func (g segment) endSeq() uint64 { return g.id + g.count }

// after counts the segment's records at or after l, a position in some
// segment.
func (g segment) after(l loc) int64 {
	switch {
	case g.id < l.seg:
		return 0
	case g.id > l.seg:
		return int64(g.count)
	case l.seq >= g.endSeq():
		return 0
	}
	return int64(g.endSeq() - l.seq)
}

// loc is a position in the spool: a byte offset in a segment and the
// sequence number of the record that starts there.
type loc struct {
	seg uint64
	off int64
	seq uint64
}

// segmentName returns the file name of segment id.
func segmentName(id uint64) string { return fmt.Sprintf("%020d%s", id, segmentExt) }

func segmentPath(dir string, id uint64) string { return filepath.Join(dir, segmentName(id)) }

// parseSegmentName returns the id named by a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || id > maxSeq {
		return 0, false
	}
	return id, true
}

// listSegments returns the ids of the segment files in dir, oldest first.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: list %s: %w", dir, err)
	}
	var ids []uint64
	for _, e := range entries {
		if id, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// findSegment returns the index of segment id in segs, sorted by id.
func findSegment(segs []segment, id uint64) (int, bool) {
	return slices.BinarySearchFunc(segs, id, func(g segment, id uint64) int { return cmp.Compare(g.id, id) })
}

// syncDir fsyncs a directory, making file creations and renames in it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
