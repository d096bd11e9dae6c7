package engine

import (
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// Entry is a committed log entry handed to the state machine.
type Entry struct {
	Index uint64
	Term  uint64
	// Data is the proposal's payload. The state machine must not keep it
	// past Apply without copying.
	Data []byte
}

// StateMachine is the application's replicated state. The engine calls its
// methods from one goroutine, the apply loop, never concurrently, except
// that a Snapshot returned by Snapshot is written from another goroutine
// while Apply goes on.
type StateMachine interface {
	// Apply applies committed entries in log order, each exactly once per
	// incarnation of the state, and returns one result per entry; result i
	// is handed to whoever proposed entries[i] on this node. An error is
	// fatal: it stops the node (the entries will be applied again after a
	// restart, from AppliedIndex).
	Apply(entries []Entry) ([]any, error)
	// AppliedIndex returns the index of the last entry whose effect is
	// durably stored, read once when the engine starts. A state machine that
	// keeps nothing on disk returns 0; the engine then restores it from the
	// latest snapshot and applies the log after it. A state machine on disk
	// returns the index it stored with its data, so a restart does not
	// replay from zero.
	AppliedIndex() (uint64, error)
	// Snapshot captures the state as of the last applied entry. It must be
	// quick (a point-in-time view); the returned Snapshot is written out
	// concurrently with later Apply calls.
	Snapshot() (Snapshot, error)
	// Restore replaces the whole state with the one read from r, which was
	// written by a Snapshot taken at index. Afterwards the durably applied
	// index is index.
	Restore(r io.Reader, index uint64) error
}

// Snapshot is a point-in-time view of a state machine.
type Snapshot interface {
	// WriteTo writes the state to w.
	WriteTo(w io.Writer) (int64, error)
	// Release frees the view; it is called once, after WriteTo or instead of it.
	Release()
}

// StorageUser is implemented by a state machine that keeps its data in the
// node's Pebble instance, beside the raft log: one write-ahead log, one
// fsync for both. The engine calls UseStorage once, after opening storage
// and before AppliedIndex. The state machine must only use keys at or above
// storage.UserKeyspaceStart, and should write its applied index in the same
// batch as the data of each Apply. The engine calls ReleaseStorage once it
// no longer applies, before it closes db — also when it stops by itself
// after a failure: from then on the state machine must not touch db (its
// readers get an error instead of a closed Pebble).
type StorageUser interface {
	UseStorage(db *pebble.DB) error
	ReleaseStorage()
}
