package memnet

import "sync"

// Stats counts what happened to messages. Every message passed to Send is
// counted once in Sent and, once it is no longer in flight, once in
// Delivered or once in Dropped; a duplicate is counted once in Duplicated and
// then once in Delivered or Dropped. So when nothing is in flight,
// Sent+Duplicated == Delivered+Dropped.
type Stats struct {
	Sent       uint64 // messages passed to Send, MsgSnap included
	Delivered  uint64 // calls to Handler.Deliver, duplicates included
	Duplicated uint64 // extra copies queued by DuplicateRate
	Reordered  uint64 // messages held back by ReorderRate
	Delayed    uint64 // messages given extra latency by MinDelay/MaxDelay

	// Dropped is the sum of the five reasons below.
	Dropped     uint64
	Lost        uint64 // dropped by DropRate
	Cut         uint64 // dropped by a partition, isolation or block
	Unreachable uint64 // sender or receiver unknown, not started or closed
	Overflow    uint64 // receiver's queue full
	Failed      uint64 // MsgSnap whose snapshot could not be copied

	SnapshotsOK     uint64 // MsgSnap delivered and reported with ok
	SnapshotsFailed uint64 // MsgSnap reported as failed, whatever the reason
}

// dropReason says why a message was not delivered.
type dropReason int

const (
	dropLost dropReason = iota
	dropCut
	dropUnreachable
	dropOverflow
	dropFailed
)

func (s *Stats) drop(r dropReason) {
	s.Dropped++
	switch r {
	case dropLost:
		s.Lost++
	case dropCut:
		s.Cut++
	case dropUnreachable:
		s.Unreachable++
	case dropOverflow:
		s.Overflow++
	case dropFailed:
		s.Failed++
	}
}

// statsBook keeps the totals and the counters of each link. It has its own
// lock so that delivery goroutines never wait for the network's.
type statsBook struct {
	mu    sync.Mutex
	total Stats
	links map[link]*Stats
}

// update applies f to the totals and to the counters of link l.
func (b *statsBook) update(l link, f func(*Stats)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.links == nil {
		b.links = make(map[link]*Stats)
	}
	ls := b.links[l]
	if ls == nil {
		ls = new(Stats)
		b.links[l] = ls
	}
	f(&b.total)
	f(ls)
}

// Stats returns the counters of the whole network.
func (n *Network) Stats() Stats {
	n.stats.mu.Lock()
	defer n.stats.mu.Unlock()
	return n.stats.total
}

// LinkStats returns the counters of the messages sent by one node to
// another (addressed by raft id, m.To).
func (n *Network) LinkStats(from, to uint64) Stats {
	n.stats.mu.Lock()
	defer n.stats.mu.Unlock()
	if s := n.stats.links[link{from, to}]; s != nil {
		return *s
	}
	return Stats{}
}
