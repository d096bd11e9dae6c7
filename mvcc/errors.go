package mvcc

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers match them with errors.Is; the texts are etcd's
// (with this package's prefix) so that the gRPC boundary can map each one to
// the rpctypes error etcd clients expect.
var (
	// ErrCompacted: the revision asked for is below the compacted revision.
	// The error returned wraps it in a *CompactedError carrying both
	// revisions.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev: the revision asked for is above the current revision.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")

	// ErrEmptyKey is etcd's "key is not provided".
	ErrEmptyKey = errors.New("mvcc: key is not provided")
	// ErrKeyNotFound is etcd's "key not found": a put with ignore_value or
	// ignore_lease on a key that does not exist, or an empty txn operation.
	ErrKeyNotFound = errors.New("mvcc: key not found")
	// ErrValueProvided: ignore_value is set and so is a value.
	ErrValueProvided = errors.New("mvcc: value is provided")
	// ErrLeaseProvided: ignore_lease is set and so is a lease.
	ErrLeaseProvided = errors.New("mvcc: lease is provided")
	// ErrTooManyOps: a txn has more compares or operations than
	// Options.MaxTxnOps.
	ErrTooManyOps = errors.New("mvcc: too many operations in txn request")
	// ErrDuplicateKey: a txn writes the same key twice (etcd's overlap rules).
	ErrDuplicateKey = errors.New("mvcc: duplicate key given in txn request")
	// ErrInvalidSortOption: an unknown sort order or sort target.
	ErrInvalidSortOption = errors.New("mvcc: invalid sort option")

	// The errors below have no etcd counterpart: etcd accepts these inputs
	// (and reads a negative revision as "current"), cairn refuses them.

	// ErrKeyTooLarge: a key or range end is longer than Options.MaxKeyBytes.
	ErrKeyTooLarge = errors.New("mvcc: key is too large")
	// ErrValueTooLarge: a value is longer than Options.MaxValueBytes.
	ErrValueTooLarge = errors.New("mvcc: value is too large")
	// ErrInvalidRange: range_end sorts before key (and is not "\x00").
	ErrInvalidRange = errors.New("mvcc: range end is before key")
	// ErrInvalidRevision: a negative revision, or History from below 1.
	ErrInvalidRevision = errors.New("mvcc: invalid revision")
	// ErrInvalidCompare: a compare with an unknown target or result.
	ErrInvalidCompare = errors.New("mvcc: invalid compare")

	// ErrCorrupt: a stored record could not be decoded. The error names the
	// Pebble key.
	ErrCorrupt = errors.New("mvcc: corrupt record")
	// ErrBadSnapshot: a snapshot stream given to Restore is malformed.
	ErrBadSnapshot = errors.New("mvcc: bad snapshot stream")
	// ErrRestoreIncomplete: a Restore was interrupted (by an error or a
	// crash); the store serves nothing until a Restore completes.
	ErrRestoreIncomplete = errors.New("mvcc: restore incomplete")
	// ErrBatchClosed: the batch was committed or closed.
	ErrBatchClosed = errors.New("mvcc: batch is closed")
	// ErrBatchFailed: a write failed half-way through a request; the batch
	// holds a partial request and can only be closed.
	ErrBatchFailed = errors.New("mvcc: batch failed")
	// ErrStaleBatch: another batch or a Restore was committed after this
	// batch was created; committing it would lose that write.
	ErrStaleBatch = errors.New("mvcc: batch is stale")
	// ErrAppliedIndexRegress: Commit was given an applied index below the
	// stored one.
	ErrAppliedIndexRegress = errors.New("mvcc: applied index goes backwards")
)

// CompactedError is the error for a read or History below the compacted
// revision. It matches ErrCompacted with errors.Is, and carries the compacted
// revision so that a watcher can be told where to resynchronise from.
type CompactedError struct {
	Requested  int64 // the revision asked for
	CompactRev int64 // the store's compacted revision at the time
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("%v (requested %d, compacted at %d)", ErrCompacted, e.Requested, e.CompactRev)
}

func (e *CompactedError) Unwrap() error { return ErrCompacted }

// FutureRevError is the error for a read above the current revision. It
// matches ErrFutureRev with errors.Is.
type FutureRevError struct {
	Requested int64 // the revision asked for
	Rev       int64 // the store's current revision at the time
}

func (e *FutureRevError) Error() string {
	return fmt.Sprintf("%v (requested %d, current %d)", ErrFutureRev, e.Requested, e.Rev)
}

func (e *FutureRevError) Unwrap() error { return ErrFutureRev }

// corrupt reports a record that could not be decoded, naming its key.
func corrupt(key []byte, what string) error {
	return fmt.Errorf("%w: key %q: %s", ErrCorrupt, key, what)
}
