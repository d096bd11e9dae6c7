package watch

import "time"

// progressLoop sends the periodic progress notifications until Stop.
func (h *Hub) progressLoop(every time.Duration) {
	defer h.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stopc:
			return
		case <-t.C:
			h.progressTick()
		}
	}
}

// progressTick sends a progress notification to every synced watcher that
// asked for them. Catching-up watchers are skipped, as in etcd: their next
// responses carry newer revisions anyway, and a bookmark must not overtake
// the events it vouches for.
func (h *Hub) progressTick() {
	h.mu.Lock()
	defer h.unlockAndLog()
	for w := range h.mu.progress {
		if !w.syncing {
			h.sendProgressLocked(w)
		}
	}
}
