package watch

import "fmt"

// catchUp is the goroutine of an unsynced watcher. It owns w.ch until it
// hands w back to the live path or w ends, and closes w.ch in the latter
// case. It reads History in chunks up to the hub's revision at the time
// (its target) and blocks on the reader, never holding the hub's lock while
// it reads or sends.
func (h *Hub) catchUp(w *Watcher) {
	defer h.wg.Done()
	h.mu.Lock()
	for {
		if w.done {
			h.releaseLocked(w)
			h.mu.Unlock()
			return
		}
		if w.next > h.mu.rev {
			if !w.progressPending {
				// Every revision up to the hub's has been delivered, and
				// Notify will bring every later one: rejoin under the lock
				// Notify takes, so no revision falls between the two.
				h.joinLocked(w)
				h.mu.Unlock()
				return
			}
			w.progressPending = false
			r := Response{WatchID: w.id, Revision: h.mu.rev, ProgressNotify: true}
			h.mu.Unlock()
			if !h.deliver(w, r) {
				h.mu.Lock()
				continue // ended meanwhile
			}
			h.mu.Lock()
			continue // more may have been notified meanwhile
		}
		from, target := w.next, h.mu.rev
		h.mu.Unlock()

		next, err := h.replayChunk(w, from, target)
		if err != nil {
			h.cancel(w, err)
			return
		}
		h.mu.Lock()
		if next > 0 {
			w.next = next
		}
	}
}

// replayChunk reads one History chunk from `from` and delivers the part of it
// up to target that w watches. It returns the next revision w needs, or 0 if
// w ended while the chunk was being delivered.
func (h *Hub) replayChunk(w *Watcher, from, target int64) (int64, error) {
	revs, complete, err := h.readChunk(from)
	if err != nil {
		return 0, h.historyError(w, from, err)
	}
	var (
		items   []item
		covered = from - 1 // every revision up to covered has been read
		prev    int64
	)
	for _, r := range revs {
		if r.Rev <= prev || r.Rev < from {
			return 0, fmt.Errorf("watcher %d: %w: History(%d) returned revision %d after %d", w.id, ErrHistoryGap, from, r.Rev, prev)
		}
		prev = r.Rev
		if r.Rev > target {
			covered = target // anything newer comes through Notify
			break
		}
		covered = r.Rev
		for _, ev := range r.Events {
			if ev != nil && ev.Kv != nil && w.rng.contains(ev.Kv.Key) {
				items = append(items, item{rev: r.Rev, ev: ev})
			}
		}
	}
	if complete && covered < target {
		// A short read returned everything the store has: the revisions up to
		// target it did not return have no events — if the store has them.
		if rev := h.hist.Rev(); rev < target {
			return 0, fmt.Errorf("watcher %d: %w: store at revision %d, hub notified up to %d", w.id, ErrHistoryGap, rev, target)
		}
		covered = target
	}
	if covered < from {
		return 0, fmt.Errorf("watcher %d: %w: History(%d) returned nothing before revision %d", w.id, ErrHistoryGap, from, target)
	}

	resps := h.build(items, w.flags, covered)
	h.catchUpEvents.Add(int64(len(items)))
	defer h.catchUpEvents.Add(-int64(len(items)))
	for _, r := range resps {
		r.WatchID = w.id
		if !h.deliver(w, r) {
			return 0, nil
		}
	}
	return covered + 1, nil
}

// deliver sends r to w at the reader's pace; false if w or the hub ended
// meanwhile.
func (h *Hub) deliver(w *Watcher, r Response) bool {
	select {
	case w.ch <- r:
		return true
	case <-w.stopc:
		return false
	case <-h.stopc:
		return false
	}
}

// cancel ends w with err and delivers the final response that says so —
// with the compact revision if err is a compaction — then closes w.ch.
func (h *Hub) cancel(w *Watcher, err error) {
	h.mu.Lock()
	if w.done {
		h.releaseLocked(w)
		h.mu.Unlock()
		return
	}
	final := Response{WatchID: w.id, Revision: h.mu.rev, Canceled: true, CancelReason: err.Error()}
	rev, compacted := CompactRevision(err)
	if compacted {
		final.CompactRevision = rev
		h.mu.stats.Compacted++
	}
	h.endLocked(w, err) // w.syncing: ch stays open for the final response
	h.mu.Unlock()
	if !compacted {
		h.cfg.Logger.Warn("watch: watcher canceled", "id", w.id, "err", err)
	} else if h.cfg.OnCompacted != nil {
		h.cfg.OnCompacted(w.id, rev)
	}
	h.deliver(w, final) // gives up only if the reader closes w or the hub stops
	h.mu.Lock()
	h.releaseLocked(w)
	h.mu.Unlock()
}

// releaseLocked is the catch-up goroutine's last act for an ended watcher.
func (h *Hub) releaseLocked(w *Watcher) {
	w.syncing = false
	close(w.ch)
}
