package storage

import "go.etcd.io/raft/v3/raftpb"

// entryCache holds the most recent log entries, bounded by count and bytes,
// so that replication to followers that keep up never touches the disk.
// It is not safe for concurrent use; Store guards it with its mutex.
type entryCache struct {
	maxEntries int
	maxBytes   int
	first      uint64 // index of ents[0]
	ents       []*raftpb.Entry
	bytes      int
}

func newEntryCache(maxEntries, maxBytes int) *entryCache {
	return &entryCache{maxEntries: maxEntries, maxBytes: maxBytes}
}

// append adds contiguous entries, dropping any cached suffix they replace.
func (c *entryCache) append(ents []*raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	start := ents[0].GetIndex()
	if len(c.ents) > 0 && (start < c.first || start > c.first+uint64(len(c.ents))) {
		c.clear() // not contiguous with the cache: start over from these
	}
	if len(c.ents) > 0 {
		c.truncateFrom(start)
	}
	if len(c.ents) == 0 {
		c.first = start
	}
	for _, e := range ents {
		c.ents = append(c.ents, e)
		c.bytes += entrySize(e)
	}
	c.evict()
}

// truncateFrom drops cached entries with index >= i.
func (c *entryCache) truncateFrom(i uint64) {
	if len(c.ents) == 0 || i >= c.first+uint64(len(c.ents)) {
		return
	}
	if i <= c.first {
		c.clear()
		return
	}
	keep := int(i - c.first)
	for _, e := range c.ents[keep:] {
		c.bytes -= entrySize(e)
	}
	clear(c.ents[keep:])
	c.ents = c.ents[:keep]
}

// dropBefore drops cached entries with index < i.
func (c *entryCache) dropBefore(i uint64) {
	for len(c.ents) > 0 && c.first < i {
		c.popFront()
	}
}

func (c *entryCache) evict() {
	for len(c.ents) > 1 && (len(c.ents) > c.maxEntries || c.bytes > c.maxBytes) {
		c.popFront()
	}
}

func (c *entryCache) popFront() {
	c.bytes -= entrySize(c.ents[0])
	c.ents[0] = nil
	c.ents = c.ents[1:]
	c.first++
	if len(c.ents) == 0 {
		c.ents = nil
	}
}

func (c *entryCache) clear() {
	c.ents = nil
	c.bytes = 0
	c.first = 0
}

// get returns the cached entry at index i, or nil.
func (c *entryCache) get(i uint64) *raftpb.Entry {
	if len(c.ents) == 0 || i < c.first || i >= c.first+uint64(len(c.ents)) {
		return nil
	}
	return c.ents[i-c.first]
}

// has reports whether [lo, hi) is entirely cached.
func (c *entryCache) has(lo, hi uint64) bool {
	return len(c.ents) > 0 && lo >= c.first && hi <= c.first+uint64(len(c.ents))
}

func entrySize(e *raftpb.Entry) int { return len(e.GetData()) + 24 }
