package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

const (
	cursorName    = "cursor"
	cursorTmpName = "cursor.tmp"
	cursorMagic   = "SPC1"
	cursorSize    = 16
)

// errBadCursor reports a cursor file that exists but cannot be trusted.
var errBadCursor = errors.New("spool: damaged cursor file")

// readCursor returns the sequence number of the first uncommitted record
// stored in dir's cursor file. The error wraps os.ErrNotExist when there is
// no cursor, errBadCursor when it is damaged.
func readCursor(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if err != nil {
		return 0, err
	}
	if len(b) != cursorSize || string(b[:4]) != cursorMagic ||
		crc32.Checksum(b[:12], castagnoli) != binary.LittleEndian.Uint32(b[12:]) {
		return 0, errBadCursor
	}
	next := binary.LittleEndian.Uint64(b[4:12])
	if next > maxSeq {
		return 0, errBadCursor
	}
	return next, nil
}

// writeCursor replaces dir's cursor file with one holding next, through a
// temporary file and a rename. With sync, the file and the directory are
// fsynced, so the new cursor survives a power cut.
func writeCursor(dir string, next uint64, sync bool) error {
	b := encodeCursor(next)
	tmp := filepath.Join(dir, cursorTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("spool: write cursor: %w", err)
	}
	_, err = f.Write(b[:])
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, cursorName))
	}
	if err == nil && sync {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("spool: write cursor: %w", err)
	}
	return nil
}

// encodeCursor returns the contents of a cursor file holding next.
func encodeCursor(next uint64) [cursorSize]byte {
	var b [cursorSize]byte
	copy(b[:], cursorMagic)
	binary.LittleEndian.PutUint64(b[4:12], next)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
	return b
}
