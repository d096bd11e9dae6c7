package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Hub fans the store's revisions out to watchers. All its methods may be
// called concurrently; Notify calls must come in revision order (one apply
// loop calls it).
type Hub struct {
	cfg   Config
	hist  History
	stopc chan struct{} // closed by Stop, after every watcher has ended
	wg    sync.WaitGroup
	ids   atomic.Int64

	// catchUpEvents counts the events catching-up goroutines hold outside
	// watchers' buffers (Stats.CatchUpEvents).
	catchUpEvents atomic.Int64
	chunks        chunkCache // History chunks shared by catching-up watchers

	mu struct {
		sync.Mutex
		rev     int64 // the last revision notified (or the store's at New)
		stopped bool
		idx     index                 // synced watchers
		all     map[*Watcher]struct{} // every watcher not yet ended
		// progress holds the watchers that asked for periodic progress.
		progress map[*Watcher]struct{}
		synced   int
		stats    Stats
		// scratch for Notify, reused between calls.
		matched  []*group
		touched  []*group
		overflow []*Watcher
		skipped  []skip      // resyncs to log once the lock is released
		behind   []behindMsg // OnFellBehind calls to make once the lock is released
	}
}

// behindMsg is an OnFellBehind call to make.
type behindMsg struct {
	id       int64
	key, end []byte
}

// fellBehindLocked counts synced w's overflow and records it for
// Config.OnFellBehind; the caller then moves w off the live path.
func (h *Hub) fellBehindLocked(w *Watcher) {
	h.mu.stats.Overflows++
	if h.cfg.OnFellBehind == nil {
		return
	}
	m := behindMsg{id: w.id, key: bytes.Clone(w.rng.key)}
	switch {
	case w.rng.fromKey:
		m.end = []byte{0}
	case w.rng.end != nil:
		m.end = bytes.Clone(w.rng.end)
	}
	h.mu.behind = append(h.mu.behind, m)
}

// Stats is a snapshot of the hub's state and counters.
type Stats struct {
	// Rev is the last revision notified.
	Rev int64
	// Watchers open; Synced of them on the live path, Unsynced catching up.
	Watchers, Synced, Unsynced int
	// CatchUpEvents is the number of events catching-up watchers hold
	// outside their buffers: at most one History chunk each.
	CatchUpEvents int64
	// Overflows counts the times a watcher's buffer was full and it was moved
	// off the live path.
	Overflows uint64
	// Compacted counts the watchers ended by compaction.
	Compacted uint64
	// Resyncs counts the times the hub sent its synced watchers back to
	// History because revisions were skipped (Resync, or a gap in Notify).
	Resyncs uint64
}

// New returns a hub that reads older revisions from hist and starts at its
// current revision: the next Notify must bring hist.Rev()+1. Stop it when
// done.
func New(hist History, cfg Config) (*Hub, error) {
	if hist == nil {
		return nil, fmt.Errorf("%w: nil History", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, hist: hist, stopc: make(chan struct{})}
	h.mu.rev = hist.Rev()
	h.mu.idx = newIndex()
	h.mu.all = map[*Watcher]struct{}{}
	h.mu.progress = map[*Watcher]struct{}{}
	h.wg.Add(1)
	go h.progressLoop(cfg.progressInterval())
	return h, nil
}

// Watch starts watching key (see the Options for ranges, start revision,
// filters and the rest) until ctx ends or the watcher is closed.
func (h *Hub) Watch(ctx context.Context, key []byte, opts ...Option) (*Watcher, error) {
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	rng, err := newKeyRange(key, &o)
	if err != nil {
		return nil, err
	}
	if o.rev < 0 {
		return nil, fmt.Errorf("%w: start revision %d is negative", ErrInvalidRevision, o.rev)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("watch: %w", context.Cause(ctx))
	}
	start := o.rev
	if start == 0 {
		// As in etcd: from the revision after the store's current one, which
		// may be ahead of the last notified. Read before taking the lock:
		// History is never called under it.
		start = h.hist.Rev() + 1
	}
	w := &Watcher{
		id:       h.ids.Add(1),
		hub:      h,
		rng:      rng,
		flags:    o.flags,
		progress: o.progress,
		ch:       make(chan Response, h.cfg.WatcherBufferSize),
		stopc:    make(chan struct{}),
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.stopped {
		return nil, ErrStopped
	}
	if len(h.mu.all) >= h.cfg.MaxWatchers {
		return nil, fmt.Errorf("%w: %d open (max_watchers)", ErrTooManyWatchers, len(h.mu.all))
	}
	h.mu.all[w] = struct{}{}
	if w.progress {
		h.mu.progress[w] = struct{}{}
	}
	w.next = start
	if start > h.mu.rev {
		// Nothing to read: every revision it needs is yet to be notified.
		h.joinLocked(w)
	} else {
		h.startCatchUpLocked(w)
	}
	w.stopCtx = context.AfterFunc(ctx, func() {
		w.closeWith(fmt.Errorf("watch: context done: %w", context.Cause(ctx)))
	})
	return w, nil
}

// Stop ends every watcher with ErrStopped and waits for the hub's
// goroutines. Later calls of Watch, Notify and Resync fail with ErrStopped.
func (h *Hub) Stop() {
	h.mu.Lock()
	if h.mu.stopped {
		h.mu.Unlock()
		h.wg.Wait()
		return
	}
	h.mu.stopped = true
	for w := range h.mu.all {
		h.endLocked(w, ErrStopped)
		w.abort()
	}
	h.mu.Unlock()
	close(h.stopc)
	h.wg.Wait()
}

// Stats returns a snapshot of the hub's state.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.mu.stats
	s.Rev = h.mu.rev
	s.Watchers = len(h.mu.all)
	s.Synced = h.mu.synced
	s.Unsynced = s.Watchers - s.Synced
	s.CatchUpEvents = h.catchUpEvents.Load()
	return s
}

// endLocked ends w with err unless it already ended: it leaves the hub, and
// its channel is closed now if no catch-up goroutine owns it (otherwise the
// goroutine closes it when it notices). Callers then wake the goroutine
// (w.abort) outside the lock.
func (h *Hub) endLocked(w *Watcher, err error) {
	if w.done {
		return
	}
	w.done = true
	w.setErr(err)
	delete(h.mu.all, w)
	delete(h.mu.progress, w)
	if w.stopCtx != nil {
		w.stopCtx()
	}
	if !w.syncing {
		h.mu.idx.remove(w)
		h.mu.synced--
		close(w.ch)
	}
}

// joinLocked puts w on the live path. The caller has made sure every
// revision up to the hub's has been delivered to it.
func (h *Hub) joinLocked(w *Watcher) {
	w.syncing = false
	h.mu.idx.add(w)
	h.mu.synced++
}

// unsyncLocked takes synced w off the live path; it will catch up from next.
func (h *Hub) unsyncLocked(w *Watcher, next int64) {
	h.mu.idx.remove(w)
	h.mu.synced--
	w.next = next
	h.startCatchUpLocked(w)
}

func (h *Hub) startCatchUpLocked(w *Watcher) {
	w.syncing = true
	h.wg.Add(1) // never after Stop: callers hold the lock and checked stopped, or w would be done
	go h.catchUp(w)
}

// effectiveNextLocked is the first revision synced w has not been given:
// Notify advances w.next only for the watchers it sends to, and every other
// synced watcher has had nothing to receive up to the hub's revision.
func (h *Hub) effectiveNextLocked(w *Watcher) int64 { return max(w.next, h.mu.rev+1) }

// sendProgressLocked gives synced w a progress notification at the hub's
// revision, or, if its buffer is full, owes it one and moves it off the live
// path: the reader is behind, and the catch-up goroutine will send it in
// order.
func (h *Hub) sendProgressLocked(w *Watcher) {
	select {
	case w.ch <- Response{WatchID: w.id, Revision: h.mu.rev, ProgressNotify: true}:
	default:
		w.progressPending = true
		h.fellBehindLocked(w)
		h.unsyncLocked(w, h.effectiveNextLocked(w))
	}
}

// historyError turns an error from History into the reason a watcher ends.
func (h *Hub) historyError(w *Watcher, from int64, err error) error {
	if rev, ok := CompactRevision(err); ok {
		return fmt.Errorf("watcher %d from revision %d: %w", w.id, from, &CompactedError{CompactRev: rev})
	}
	if errors.Is(err, ErrCompacted) {
		return fmt.Errorf("watcher %d from revision %d: %w", w.id, from, &CompactedError{CompactRev: h.hist.CompactRev()})
	}
	return fmt.Errorf("watcher %d: read history from revision %d: %w", w.id, from, err)
}
