package memnet

import (
	"container/heap"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/transport"
)

// QueueSize is the number of messages an endpoint holds for delivery
// (delayed ones included) before it drops what arrives, like the per-peer
// queue of the gRPC transport's Data class.
const QueueSize = 4096

// envelope is a message on its way to a receiver.
type envelope struct {
	m    *raftpb.Message
	from *Transport // the sending endpoint, which hears about the outcome
	at   time.Time  // not delivered before
	seq  uint64     // orders envelopes due at the same time: the order of Send
	snap bool       // a MsgSnap whose data is committed; its outcome is reported
	// xfer describes the transfer of a snap, as the receiver sees it.
	xfer *transport.SnapshotTransfer
}

// envelopes is a min-heap by (at, seq).
type envelopes []envelope

func (h envelopes) Len() int { return len(h) }
func (h envelopes) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h envelopes) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *envelopes) Push(x any)   { *h = append(*h, x.(envelope)) }
func (h *envelopes) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = envelope{} // let the message be collected
	*h = old[:len(old)-1]
	return e
}

// inbox holds the envelopes an endpoint has yet to deliver. It is open
// between Start and Close; pushes outside that are refused.
type inbox struct {
	wake chan struct{} // capacity 1: tells the delivery goroutine to look again

	mu struct {
		sync.Mutex
		open bool
		q    envelopes
	}
}

func newInbox() *inbox {
	return &inbox{wake: make(chan struct{}, 1)}
}

type pushResult int

const (
	pushed pushResult = iota
	pushClosed
	pushFull
)

// push queues e. It never blocks.
func (b *inbox) push(e envelope) pushResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.mu.open {
		return pushClosed
	}
	if len(b.mu.q) >= QueueSize {
		return pushFull
	}
	heap.Push(&b.mu.q, e)
	select {
	case b.wake <- struct{}{}:
	default: // already woken
	}
	return pushed
}

// next returns the earliest envelope due at now. When none is, it returns
// how long until one is, or 0 when the inbox is empty or closed.
func (b *inbox) next(now time.Time) (e envelope, ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.mu.open || len(b.mu.q) == 0 {
		return envelope{}, false, 0
	}
	if d := b.mu.q[0].at.Sub(now); d > 0 {
		return envelope{}, false, d
	}
	return heap.Pop(&b.mu.q).(envelope), true, 0
}

func (b *inbox) open() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.open = true
}

// close refuses further pushes and returns what was still queued, in
// delivery order, for the caller to account for.
func (b *inbox) close() []envelope {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.open = false
	q := b.mu.q
	b.mu.q = nil
	out := make([]envelope, 0, len(q))
	for len(q) > 0 {
		out = append(out, heap.Pop(&q).(envelope))
	}
	return out
}
