package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrLocked is returned by Open when another process uses the data directory.
var ErrLocked = errors.New("storage: data directory is in use by another process")

// dirLock holds a data directory's LOCK file. On a real disk it is an
// advisory lock the kernel drops when the process dies, so a crash never
// leaves a stale lock behind.
type dirLock struct{ c io.Closer }

func lockDir(fs vfs.FS, dir string) (*dirLock, error) {
	path := fs.PathJoin(dir, "LOCK")
	c, err := fs.Lock(path)
	if err != nil {
		var pe *os.PathError
		opening := errors.As(err, &pe) && pe.Op == "open" // could not even create the file
		if !opening && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) || strings.Contains(err.Error(), "lock held")) {
			return nil, fmt.Errorf("%w: %s (%v)", ErrLocked, dir, err)
		}
		return nil, fmt.Errorf("storage: lock %s: %w", path, err)
	}
	return &dirLock{c: c}, nil
}

func (l *dirLock) release() error {
	if l == nil || l.c == nil {
		return nil
	}
	err := l.c.Close()
	l.c = nil
	return err
}
