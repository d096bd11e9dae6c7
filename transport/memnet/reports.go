package memnet

import (
	"sync"

	"github.com/cairn-db/cairn/transport"
)

// snapReport is one outcome for Handler.ReportSnapshot.
type snapReport struct {
	to uint64
	ok bool
}

// stateReport is one change for Handler.PeerState, of every class.
type stateReport struct {
	peer uint64
	up   bool
}

// reports collects what an endpoint must tell its own Handler about the
// messages it sent. They are handed over by the endpoint's report goroutine,
// never by the goroutine that noticed them: that may be the sender's raft
// loop inside Send, and a Handler that forwards into the raft loop would
// deadlock if called back there.
type reports struct {
	wake chan struct{} // capacity 1: tells the report goroutine to look again

	mu struct {
		sync.Mutex
		open bool
		// unreachable lists peers to report, each once however many
		// messages to it were lost since the last report: raft only needs
		// to know that the peer is unreachable, and a partition would
		// otherwise pile up one report per message.
		unreachable []uint64
		pending     map[uint64]bool // the set of unreachable
		// snaps lists snapshot outcomes, every one of them: raft waits for
		// each.
		snaps []snapReport
		// states lists changes of the links to peers, in order.
		states []stateReport
		// sent lists the snapshot transfers this endpoint sent.
		sent []transport.SnapshotTransfer
	}
}

// reported is what the report goroutine hands to the Handler at once.
type reported struct {
	unreachable []uint64
	snaps       []snapReport
	states      []stateReport
	sent        []transport.SnapshotTransfer
}

func newReports() *reports {
	return &reports{wake: make(chan struct{}, 1)}
}

func (r *reports) signalLocked() {
	select {
	case r.wake <- struct{}{}:
	default: // already woken
	}
}

// unreachable queues a Handler.ReportUnreachable(to). Reports to an
// endpoint that is not started or closed are dropped: nobody listens.
func (r *reports) unreachable(to uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.mu.open || r.mu.pending[to] {
		return
	}
	if r.mu.pending == nil {
		r.mu.pending = make(map[uint64]bool)
	}
	r.mu.pending[to] = true
	r.mu.unreachable = append(r.mu.unreachable, to)
	r.signalLocked()
}

// snapshot queues a Handler.ReportSnapshot(to, ok).
func (r *reports) snapshot(to uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.mu.open {
		return
	}
	r.mu.snaps = append(r.mu.snaps, snapReport{to, ok})
	r.signalLocked()
}

// peerState queues a Handler.PeerState(peer, c, up) for every class c.
func (r *reports) peerState(peer uint64, up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.mu.open {
		return
	}
	r.mu.states = append(r.mu.states, stateReport{peer, up})
	r.signalLocked()
}

// snapshotSent queues a Handler.SnapshotTransferred(x) followed by a
// Handler.ReportSnapshot(x.Peer, true).
func (r *reports) snapshotSent(x transport.SnapshotTransfer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.mu.open {
		return
	}
	r.mu.sent = append(r.mu.sent, x)
	r.mu.snaps = append(r.mu.snaps, snapReport{x.Peer, true})
	r.signalLocked()
}

// take returns and forgets the queued reports.
func (r *reports) take() reported {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := reported{unreachable: r.mu.unreachable, snaps: r.mu.snaps, states: r.mu.states, sent: r.mu.sent}
	r.mu.unreachable, r.mu.snaps, r.mu.states, r.mu.sent = nil, nil, nil, nil
	clear(r.mu.pending)
	return out
}

func (r *reports) setOpen(open bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.open = open
	if !open {
		r.mu.unreachable, r.mu.snaps, r.mu.states, r.mu.sent = nil, nil, nil, nil
		clear(r.mu.pending)
	}
}
