package watch

import (
	"errors"
	"fmt"
)

var (
	// ErrCompacted: the watcher needed a revision the store no longer holds.
	// The error a watcher ends with is a *CompactedError that carries the
	// compact revision; CompactRevision extracts it.
	ErrCompacted = errors.New("watch: required revision has been compacted")
	// ErrClosed: the watcher was closed (Close), or the hub was stopped
	// (then the error is also ErrStopped).
	ErrClosed = errors.New("watch: closed")
	// ErrStopped: the hub was stopped. errors.Is(ErrStopped, ErrClosed) holds.
	ErrStopped error = stoppedError{}
	// ErrTooManyWatchers: Watch would exceed Config.MaxWatchers.
	ErrTooManyWatchers = errors.New("watch: too many watchers")
	// ErrEmptyKey: a single-key watch of the empty key.
	ErrEmptyKey = errors.New("watch: empty key")
	// ErrInvalidRange: range end not after the key, or conflicting range options.
	ErrInvalidRange = errors.New("watch: invalid range")
	// ErrInvalidRevision: a negative start revision.
	ErrInvalidRevision = errors.New("watch: invalid revision")
	// ErrRevisionOrder: Notify or Resync was given revisions that do not
	// follow the last notified one in increasing order; the call changed
	// nothing.
	ErrRevisionOrder = errors.New("watch: revisions out of order")
	// ErrBadEvent: Notify was given a nil event or an event without a kv; the
	// call changed nothing.
	ErrBadEvent = errors.New("watch: malformed event")
	// ErrHistoryGap: History did not return revisions the hub had already been
	// notified of — a broken History contract. The watchers that hit it end
	// with it rather than skip the missing revisions.
	ErrHistoryGap = errors.New("watch: history is missing notified revisions")
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("watch: invalid config")
)

type stoppedError struct{}

func (stoppedError) Error() string { return "watch: hub stopped" }

// Is makes ErrStopped match ErrClosed: a stopped hub closed the watcher.
func (stoppedError) Is(target error) bool { return target == ErrClosed }

// CompactedError reports that a watcher needed revisions at or below
// CompactRev, which the store no longer holds. To resync, read the state at
// CompactRev (or any later revision R) and watch again from R+1.
type CompactedError struct {
	CompactRev int64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("%v: compacted at revision %d; resync from revision %d", ErrCompacted, e.CompactRev, e.CompactRev)
}

// Is makes a *CompactedError match ErrCompacted.
func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }

// CompactRevision returns the compact revision carried by err, and whether
// err wraps ErrCompacted with one.
func CompactRevision(err error) (int64, bool) {
	var ce *CompactedError
	if errors.As(err, &ce) {
		return ce.CompactRev, true
	}
	return 0, false
}
