package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrLocked is returned by Open when another process has the directory
// open: two writers would corrupt it.
var ErrLocked = errors.New("spool: directory in use by another process")

// lockDir takes an exclusive lock on dir/lock, held until the returned
// file is closed (or the process ends, however it ends): flock(2) on
// Linux, macOS and the BSDs, LockFileEx on Windows. Elsewhere no lock is
// taken.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: lock file: %w", err)
	}
	if err := lockFile(f, dir); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}
