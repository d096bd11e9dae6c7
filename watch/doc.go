// Package watch is cairn's watch hub: it tells every watcher about every
// change to the keys it watches, in revision order, exactly once, without
// ever letting a slow watcher block a write or silently lose an event.
//
// It keeps etcd's watch guarantees (api_guarantees.md): ordered, unique,
// reliable (no gap inside the history window), atomic (a revision's events
// are never split across responses, except as flagged fragments), resumable
// from any non-compacted revision, and bookmarkable (a progress notification
// at revision R means every matching event with revision <= R has been
// delivered). The one way a watcher loses events is compaction, and then it
// is told: a final response with Canceled and CompactRevision, and Err
// wrapping ErrCompacted.
//
// # Using it
//
//	h, err := watch.New(store, watch.Config{})    // store implements History
//	defer h.Stop()
//	// the state machine, after each applied group of entries:
//	err = h.Notify(createdRevisions)
//	// a client:
//	w, err := h.Watch(ctx, []byte("config/"), watch.WithPrefix(), watch.WithRev(42))
//	defer w.Close()
//	for resp := range w.C() { ... }
//	if errors.Is(w.Err(), watch.ErrCompacted) { /* resync from watch.CompactRevision(w.Err()) */ }
//
// # Synced and unsynced watchers
//
// The design is etcd's watchableStore, reduced to what an embedded hub
// needs. Every watcher is in one of two places:
//
//   - Synced: on the live path. Notify, called by the state machine with the
//     revisions it just created, looks up the watchers whose key or range
//     matches each event (single keys in a map, ranges in an interval treap;
//     watchers on the same key or range share one group) and copies the
//     response into each watcher's bounded buffer — its channel — with a
//     non-blocking send. Notify never waits for a watcher.
//
//   - Unsynced: catching up. A watcher whose start revision is in the past,
//     or whose buffer was full when Notify had something for it, is taken
//     off the live path, remembering the next revision it needs. A goroutine
//     of its own then reads History in bounded chunks and delivers them,
//     blocking on the watcher's channel at the reader's pace — so a stalled
//     reader costs one parked goroutine and one chunk of memory, and nothing
//     in Notify. When its next revision is past the last notified revision
//     it rejoins the synced set.
//
// The two paths never overlap, which is what makes the stream exactly
// once: every send on a synced watcher's channel happens under the hub's
// lock, the catch-up goroutine owns the channel while the watcher is
// unsynced, and the switch between them happens under the same lock. The
// catch-up goroutine reads History only up to the revision the hub has been
// notified of (its target, read under the lock), and joins the synced set
// only if, under the lock, its next revision is beyond the last notified
// one: every earlier revision it read itself, every later one Notify will
// bring. Synced watchers skip revisions below their next, which is how a
// watch that starts ahead of the hub (a future WithRev, or WithRev(0) while
// the store is ahead of Notify) waits for its start.
//
// # Memory
//
// The hub keeps no queue of events. A watcher holds at most
// Config.WatcherBufferSize responses in its channel, plus, while catching
// up, one History chunk (Config.EventQueueSize events, or one larger
// revision); the hub also keeps the last four full chunks read, which
// watchers catching up over the same revisions share. Notify works through at most EventQueueSize events at a time,
// its scratch space that slice's events times the groups each matches, and
// for a watcher it has moved off the live path it does nothing at all.
// Everything is bounded by MaxWatchers, whatever readers do.
//
// # What the store must do
//
// Call Notify after every applied group of entries with the revisions it
// created, in order, with no gap, each readable through History before the
// call (etcd's watchableStore gets the same ordering from its store lock).
// Calls must not overlap. After installing a snapshot, call Resync with the
// snapshot's revision: watchers that needed the history it replaced are
// canceled with the compact revision. A gap in Notify is treated the same
// way, so a bug upstream costs a catch-up, never a silent loss.
//
// # Responses
//
// A response carries the matching events of one or more whole revisions,
// and Revision, the revision the watcher is now complete up to. Responses
// are cut at revision boundaries to stay under Config.MaxResponseBytes; a
// single revision larger than that is split into fragments (Fragment set on
// all but the last) only if the watcher asked for WithFragment, and sent
// whole otherwise. Events are shared between watchers and with the store:
// treat them as read-only.
//
// # Goroutines
//
// The hub owns a progress ticker and one goroutine per catching-up watcher;
// Stop ends every watcher with ErrStopped (which is ErrClosed) and waits for
// all of them. A watcher ends when its context is done, when Close is
// called, on compaction, or on Stop; its channel is then closed and Err says
// why.
package watch
