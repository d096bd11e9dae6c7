package watch

import (
	"sort"
	"sync"
)

// chunkCache lets watchers catching up over the same revisions — typically
// all the watchers of a hot key, sent off the live path by the same Notify
// and released by their readers at the same pace — share History reads
// instead of making one each: it keeps the last few full chunks read, serves
// a read from any revision inside one of them, and makes a read that finds a
// read in flight that may cover it wait for that one first.
//
// Only full chunks (EventQueueSize events or more) are shared: those are a
// fixed stretch of history, the same whenever they are read. A short chunk
// runs to the store's revision at the time of the read, which may be older
// than what the later reader needs. Memory: chunkCacheSize chunks.
type chunkCache struct {
	mu       sync.Mutex
	entries  [chunkCacheSize][]Revision // each empty or a full chunk
	next     int                        // round-robin victim
	inflight map[int64]*chunkRead       // by the revision each read starts from
}

const chunkCacheSize = 4

// chunkRead is a History read in flight; done is closed when it is over
// (and its chunk cached, if full).
type chunkRead struct {
	done chan struct{}
}

// getLocked returns the revisions from `from` to the end of a cached chunk
// that holds from.
func (c *chunkCache) getLocked(from int64) ([]Revision, bool) {
	for _, revs := range c.entries {
		if len(revs) == 0 || from < revs[0].Rev || from > revs[len(revs)-1].Rev {
			continue
		}
		i := sort.Search(len(revs), func(i int) bool { return revs[i].Rev >= from })
		return revs[i:], true
	}
	return nil, false
}

// readChunk returns History(from, EventQueueSize), or a stretch of history
// from `from` that another read got. complete reports that the result runs
// to the store's revision at the time of this call or later (History
// returned fewer than EventQueueSize events); otherwise more may follow it.
func (h *Hub) readChunk(from int64) (revs []Revision, complete bool, err error) {
	c := &h.chunks
	waited := false
	for {
		c.mu.Lock()
		if revs, ok := c.getLocked(from); ok {
			c.mu.Unlock()
			// A shared chunk is not served for a compacted revision: the
			// watcher must get the compaction error History gives.
			if from > h.hist.CompactRev() {
				return revs, false, nil
			}
			return h.readHistory(from)
		}
		if call := c.coveringLocked(from); call != nil && !waited {
			// A read from at or before `from` is in flight: its chunk may
			// hold from. Wait for it once (History returns, so no need to
			// watch for Stop here), then look again.
			c.mu.Unlock()
			<-call.done
			waited = true
			continue
		}
		call := &chunkRead{done: make(chan struct{})}
		if c.inflight == nil {
			c.inflight = map[int64]*chunkRead{}
		}
		c.inflight[from] = call
		c.mu.Unlock()
		return h.readChunkShared(from, call)
	}
}

// coveringLocked returns the read in flight that starts closest at or
// before from, if any.
func (c *chunkCache) coveringLocked(from int64) *chunkRead {
	var best *chunkRead
	bestFrom := int64(-1)
	for f, call := range c.inflight {
		if f <= from && f > bestFrom {
			best, bestFrom = call, f
		}
	}
	return best
}

// readChunkShared makes the read others may wait for.
func (h *Hub) readChunkShared(from int64, call *chunkRead) ([]Revision, bool, error) {
	revs, complete, err := h.readHistory(from)
	c := &h.chunks
	c.mu.Lock()
	delete(c.inflight, from)
	if err == nil && !complete {
		c.entries[c.next] = revs
		c.next = (c.next + 1) % chunkCacheSize
	}
	c.mu.Unlock()
	close(call.done)
	return revs, complete, err
}

func (h *Hub) readHistory(from int64) ([]Revision, bool, error) {
	revs, err := h.hist.History(from, h.cfg.EventQueueSize)
	if err != nil {
		return nil, false, err
	}
	n := 0
	for _, r := range revs {
		n += len(r.Events)
	}
	return revs, n < h.cfg.EventQueueSize, nil
}
