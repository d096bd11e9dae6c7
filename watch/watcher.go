package watch

import (
	"sync"
	"sync/atomic"
)

// Watcher is one watch: a stream of responses on C, ended by Close, its
// context, compaction or the hub's Stop. All its methods may be called
// concurrently.
type Watcher struct {
	id       int64
	hub      *Hub
	rng      keyRange
	flags    uint8
	progress bool
	// ch is the watcher's bounded buffer. Exactly one side sends on it at a
	// time: Notify and the progress paths under the hub's lock while the
	// watcher is synced, its catch-up goroutine while it is syncing. It is
	// closed once, by whichever side owns it when the watcher ends.
	ch chan Response
	// stopc is closed (stopOnce) to wake a catch-up goroutine blocked on ch
	// when the watcher is closed or its context ends.
	stopc    chan struct{}
	stopOnce sync.Once
	err      atomic.Pointer[error]

	// Guarded by hub.mu.
	next    int64  // the first revision not yet delivered (synced: may lag the hub's revision; see Hub.effectiveNext)
	grp     *group // the group it is in while synced
	idx     int    // its position in grp.watchers
	syncing bool   // a catch-up goroutine runs for it and owns ch
	done    bool   // ended: detached from the hub, err set
	// progressPending: a progress notification is owed (requested while the
	// watcher was catching up, or it did not fit in the buffer); the catch-up
	// goroutine sends it when it reaches the hub's revision.
	progressPending bool
	stopCtx         func() bool // unregisters the context callback
}

// ID is the watcher's id, unique in its hub; every response carries it.
func (w *Watcher) ID() int64 { return w.id }

// C is the watcher's stream. It is closed when the watcher ends; Err then
// says why. A watcher canceled by compaction receives a last response with
// Canceled and CompactRevision before the channel is closed.
func (w *Watcher) C() <-chan Response { return w.ch }

// Err is why the watcher ended: a *CompactedError (errors.Is ErrCompacted),
// ErrClosed, ErrStopped, the context's error, or a History error. It is nil
// while the watcher runs, and may be set slightly before C is closed.
func (w *Watcher) Err() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close ends the watcher with ErrClosed, unless it already ended, and frees
// its place in the hub. It does not wait for C to be closed; responses
// already buffered may still be read. Closing twice is harmless.
func (w *Watcher) Close() { w.closeWith(ErrClosed) }

// RequestProgress asks for a progress notification: a response with
// ProgressNotify whose Revision R promises that every matching event with
// revision <= R has been delivered before it. A synced watcher gets it at
// once; a catching-up one when it has caught up.
func (w *Watcher) RequestProgress() {
	h := w.hub
	h.mu.Lock()
	defer h.unlockAndLog()
	if w.done {
		return
	}
	if w.syncing {
		w.progressPending = true
		return
	}
	h.sendProgressLocked(w)
}

func (w *Watcher) closeWith(err error) {
	h := w.hub
	h.mu.Lock()
	h.endLocked(w, err)
	h.mu.Unlock()
	w.abort()
}

// abort wakes the watcher's catch-up goroutine if it waits on the reader.
func (w *Watcher) abort() { w.stopOnce.Do(func() { close(w.stopc) }) }

// setErr records why the watcher ended; the first reason wins.
func (w *Watcher) setErr(err error) { w.err.CompareAndSwap(nil, &err) }
