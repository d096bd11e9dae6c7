package watch

import "go.etcd.io/etcd/api/v3/mvccpb"

// Revision is one store revision and every event it created, in the order
// the store applied them. Events carry PrevKv when the store knows it; the
// hub strips it for watchers that did not ask for it (WithPrevKV).
//
// The hub and every watcher share the events: neither the store nor a
// reader may modify them once they are handed over.
type Revision struct {
	Rev    int64
	Events []*mvccpb.Event
}

// History is the part of the MVCC store the hub reads while a watcher
// catches up. Its methods may be called concurrently, from several
// catching-up watchers at once, and never with the hub's lock held.
//
// The store must make a revision readable through History before it passes
// it to Hub.Notify: the hub relies on it to hand a watcher over from
// History to the live path with no gap.
type History interface {
	// History returns the revisions from `from` on, in order, each with all
	// its events, stopping at a revision boundary once maxEvents events are
	// collected (so a revision is never split, and the result may hold more
	// than maxEvents events). If it returns fewer than maxEvents events, it
	// returned everything up to Rev(). Revisions without events may be left
	// out. It returns an empty result if from > Rev(), and an error wrapping
	// ErrCompacted (a *CompactedError, ideally) for revisions it no longer
	// holds: below CompactRev() for cairn's store, which keeps the compacted
	// revision itself, as etcd does.
	History(from int64, maxEvents int) ([]Revision, error)
	// Rev is the store's current revision.
	Rev() int64
	// CompactRev is the revision the store was last compacted at: History
	// holds every revision after it (and may hold it too).
	CompactRev() int64
}
