package watch

import "fmt"

// Notify hands the hub the revisions the store just created, in order,
// starting right after the last one notified (a revision with no events may
// be passed with none). The store must have made them readable through
// History first. Notify never waits for a watcher: it copies each synced
// watcher's response into its buffer, and a watcher whose buffer is full is
// moved off the live path to catch up from History. It returns once every
// synced watcher has been served.
//
// Revisions that do not follow the last notified one in increasing order,
// or a nil event or kv, fail with ErrRevisionOrder or ErrBadEvent and change
// nothing. Revisions that skip ahead are accepted: the watchers that could
// have missed the skipped ones catch up from History (see Resync).
func (h *Hub) Notify(revs []Revision) error {
	if err := checkRevisions(revs); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.unlockAndLog()
	if h.mu.stopped {
		return ErrStopped
	}
	if len(revs) > 0 && revs[0].Rev <= h.mu.rev {
		return fmt.Errorf("%w: revision %d notified after %d", ErrRevisionOrder, revs[0].Rev, h.mu.rev)
	}
	for len(revs) > 0 {
		if revs[0].Rev > h.mu.rev+1 {
			h.resyncLocked(revs[0].Rev - 1)
		}
		n := h.sliceLen(revs)
		h.dispatchLocked(revs[:n])
		revs = revs[n:]
		if len(revs) > 0 {
			// Let Watch, Close and catching-up watchers in between slices.
			h.unlockAndLog()
			h.mu.Lock()
			if h.mu.stopped {
				return ErrStopped
			}
			if revs[0].Rev <= h.mu.rev {
				// Another Notify ran in between, against the contract: refuse
				// the rest rather than deliver it out of order.
				return fmt.Errorf("%w: concurrent Notify moved the hub to %d before revision %d", ErrRevisionOrder, h.mu.rev, revs[0].Rev)
			}
		}
	}
	return nil
}

// Resync tells the hub that the store moved to rev without Notify seeing
// the revisions in between — typically a snapshot was installed. Watchers
// that could need them re-read them from History, and are canceled with the
// compact revision if the store no longer holds them. The next Notify must
// bring rev+1. A rev below the last notified one fails with
// ErrRevisionOrder.
func (h *Hub) Resync(rev int64) error {
	h.mu.Lock()
	defer h.unlockAndLog()
	switch {
	case h.mu.stopped:
		return ErrStopped
	case rev < h.mu.rev:
		return fmt.Errorf("%w: resync to revision %d below %d", ErrRevisionOrder, rev, h.mu.rev)
	case rev > h.mu.rev:
		h.resyncLocked(rev)
	}
	return nil
}

func checkRevisions(revs []Revision) error {
	for i, r := range revs {
		if i > 0 && r.Rev <= revs[i-1].Rev {
			return fmt.Errorf("%w: revision %d follows %d in one call", ErrRevisionOrder, r.Rev, revs[i-1].Rev)
		}
		for j, ev := range r.Events {
			if ev == nil || ev.Kv == nil {
				return fmt.Errorf("%w: revision %d event %d has no kv", ErrBadEvent, r.Rev, j)
			}
		}
	}
	return nil
}

// sliceLen is how many of revs the next dispatch takes: whole, consecutive
// revisions, at most EventQueueSize events unless the first revision alone
// has more.
func (h *Hub) sliceLen(revs []Revision) int {
	events := len(revs[0].Events)
	n := 1
	for ; n < len(revs); n++ {
		if revs[n].Rev != revs[n-1].Rev+1 || events+len(revs[n].Events) > h.cfg.EventQueueSize {
			break
		}
		events += len(revs[n].Events)
	}
	return n
}

// resyncLocked moves the hub to rev without events: every synced watcher
// that could need a revision up to rev goes back to History.
func (h *Hub) resyncLocked(rev int64) {
	h.mu.stats.Resyncs++
	h.mu.skipped = append(h.mu.skipped, skip{from: h.mu.rev + 1, to: rev, synced: h.mu.synced})
	var behind []*Watcher
	for w := range h.mu.all {
		if !w.syncing && h.effectiveNextLocked(w) <= rev {
			behind = append(behind, w)
		}
	}
	for _, w := range behind {
		h.unsyncLocked(w, h.effectiveNextLocked(w))
	}
	h.mu.rev = rev
}

// dispatchLocked delivers consecutive revisions, the first right after the
// hub's revision, to the synced watchers, and advances the hub's revision.
func (h *Hub) dispatchLocked(revs []Revision) {
	first, last := revs[0].Rev, revs[len(revs)-1].Rev
	touched := h.mu.touched[:0]
	for _, r := range revs {
		for _, ev := range r.Events {
			h.mu.matched = h.mu.idx.match(ev.Kv.Key, h.mu.matched[:0])
			for _, g := range h.mu.matched {
				if len(g.pending) == 0 {
					touched = append(touched, g)
				}
				g.pending = append(g.pending, item{rev: r.Rev, ev: ev})
			}
		}
	}
	overflow := h.mu.overflow[:0]
	for _, g := range touched {
		overflow = h.deliverLocked(g, first, last, overflow)
		clear(g.pending)
		if cap(g.pending) > 2*h.cfg.EventQueueSize {
			g.pending = nil // do not keep an oversized revision's worth
		} else {
			g.pending = g.pending[:0]
		}
	}
	h.mu.rev = last
	// Moved only now: deliverLocked iterates the groups they leave.
	for _, w := range overflow {
		h.fellBehindLocked(w)
		h.unsyncLocked(w, max(w.next, first))
	}
	clear(touched)
	clear(overflow)
	clear(h.mu.matched)
	h.mu.touched, h.mu.overflow = touched[:0], overflow[:0]
}

// deliverLocked sends g's pending events, of revisions first..last, to each
// of its watchers, and appends to overflow the watchers whose buffers cannot
// take them whole.
func (h *Hub) deliverLocked(g *group, first, last int64, overflow []*Watcher) []*Watcher {
	var shared [numFlavors]struct {
		built bool
		resps []Response
	}
	for _, w := range g.watchers {
		var resps []Response
		switch {
		case w.next <= first: // the common case: share per flags
			s := &shared[w.flags]
			if !s.built {
				s.resps, s.built = h.build(g.pending, w.flags, last), true
			}
			resps = s.resps
		case w.next <= last: // joined while its next revision was in flight
			resps = h.build(since(g.pending, w.next), w.flags, last)
		default: // starts after this slice
			continue
		}
		if len(resps) == 0 {
			continue // filtered out: nothing it needs up to last
		}
		if cap(w.ch)-len(w.ch) < len(resps) {
			// All or nothing, so a revision is never half delivered; the
			// space cannot shrink meanwhile: only lock holders send to it.
			overflow = append(overflow, w)
			continue
		}
		for _, r := range resps {
			r.WatchID = w.id
			w.ch <- r
		}
		w.next = last + 1
	}
	return overflow
}

func (h *Hub) build(items []item, flags uint8, header int64) []Response {
	return buildResponses(selectEvents(items, flags), header, h.cfg.MaxResponseBytes, flags&flagFragment != 0)
}

// since returns the items of revision rev and later.
func since(items []item, rev int64) []item {
	for i, it := range items {
		if it.rev >= rev {
			return items[i:]
		}
	}
	return nil
}

// skip records a resync for unlockAndLog.
type skip struct {
	from, to int64
	synced   int
}

// unlockAndLog releases the hub's lock, then logs the resyncs made under it
// and tells Config.OnFellBehind of the watchers that overflowed: no I/O nor
// callback under the lock.
func (h *Hub) unlockAndLog() {
	skipped, behind := h.mu.skipped, h.mu.behind
	h.mu.skipped, h.mu.behind = nil, nil
	h.mu.Unlock()
	for _, s := range skipped {
		h.cfg.Logger.Warn("watch: revisions skipped; synced watchers catch up from history",
			"from", s.from, "to", s.to, "synced_watchers", s.synced)
	}
	for _, b := range behind {
		h.cfg.OnFellBehind(b.id, b.key, b.end)
	}
}
