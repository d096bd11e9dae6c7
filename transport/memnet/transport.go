package memnet

import (
	"fmt"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/transport"
)

var _ transport.Transport = (*Transport)(nil)

// Transport is one node's endpoint on a Network. It implements
// transport.Transport; all its methods are safe for concurrent use.
//
// Once started it owns two goroutines: one delivers received messages to
// the Handler, one reports the fate of sent messages to it. Snapshot
// transfers run on goroutines of their own, counted by both endpoints so
// that closing either waits for them.
type Transport struct {
	id    uint64
	net   *Network
	snaps transport.SnapshotStore

	inbox   *inbox
	reports *reports
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup

	mu struct {
		sync.Mutex
		handler transport.Handler // set once by Start
		started bool
		closed  bool
		peers   map[uint64]string // raft id -> address, set by AddPeer
	}
}

func newTransport(n *Network, id uint64, snaps transport.SnapshotStore) *Transport {
	t := &Transport{
		id:      id,
		net:     n,
		snaps:   snaps,
		inbox:   newInbox(),
		reports: newReports(),
		done:    make(chan struct{}),
	}
	t.mu.peers = make(map[uint64]string)
	return t
}

// ID returns the raft id of the endpoint's node.
func (t *Transport) ID() uint64 { return t.id }

// Addr returns "mem://<id>".
func (t *Transport) Addr() string { return Addr(t.id) }

// Start begins delivering received messages to h and reporting to h the
// fate of sent messages. Messages sent to the endpoint before Start are
// dropped as unreachable, as they would be by a node that is not listening
// yet.
func (t *Transport) Start(h transport.Handler) error {
	if h == nil {
		return fmt.Errorf("memnet: start transport %d: nil handler", t.id)
	}
	if err := t.start(h); err != nil {
		return err
	}
	t.net.reportCuts(t) // takes the network's lock, which comes before t.mu
	return nil
}

func (t *Transport) start(h transport.Handler) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return fmt.Errorf("memnet: start transport %d: %w", t.id, transport.ErrClosed)
	}
	if t.mu.started {
		return fmt.Errorf("memnet: start transport %d: already started", t.id)
	}
	t.mu.handler = h
	t.mu.started = true
	t.inbox.open()
	t.reports.setOpen(true)
	t.wg.Add(2)
	go t.deliverLoop(h)
	go t.reportLoop(h)
	return nil
}

// AddPeer makes raft node id reachable at addr, which is Addr(id) unless the
// test means to misroute it.
func (t *Transport) AddPeer(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.peers[id] = addr
}

// RemovePeer forgets peer id: messages to it are dropped as unreachable.
// Messages already on their way are still delivered.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mu.peers, id)
}

func (t *Transport) peerAddr(id uint64) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	addr, ok := t.mu.peers[id]
	return addr, ok
}

// running reports whether the endpoint is started and not closed.
func (t *Transport) running() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.started && !t.mu.closed
}

// track counts one more goroutine working for a running endpoint, so that
// Close waits for it; it reports false, counting nothing, if the endpoint is
// not running. Counting under mu orders every Add before Close's Wait.
func (t *Transport) track() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.mu.started || t.mu.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

// Send clones msgs and routes the clones; the caller keeps msgs and may
// reuse them. It never blocks and never calls the Handler: losses are
// reported later by the endpoint's own goroutine. Send on an endpoint that
// is not started or is closed drops everything. Nil messages are ignored.
func (t *Transport) Send(msgs []*raftpb.Message) {
	clones := make([]*raftpb.Message, 0, len(msgs))
	for _, m := range msgs {
		if m != nil {
			clones = append(clones, cloneMessage(m))
		}
	}
	if len(clones) > 0 {
		t.net.send(t, clones)
	}
}

func cloneMessage(m *raftpb.Message) *raftpb.Message {
	return proto.Clone(m).(*raftpb.Message)
}

// Close stops the endpoint: messages queued for it are dropped (the senders
// hear ReportUnreachable, or ReportSnapshot false), its snapshot transfers
// fail, and its goroutines are waited for. No Handler method is called once
// Close has returned. Close must not be called from a Handler method, whose
// return it would wait for. Calling it again does nothing.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil
	}
	t.mu.closed = true
	t.mu.Unlock()

	close(t.done)
	t.net.unregister(t)
	t.reports.setOpen(false)
	for _, e := range t.inbox.close() {
		t.net.dropQueued(e, t)
	}
	t.wg.Wait()
	return nil
}

// dropQueued accounts for envelope e, which its receiver to closed before
// delivering.
func (n *Network) dropQueued(e envelope, to *Transport) {
	n.stats.update(link{e.from.id, to.id}, func(s *Stats) {
		s.drop(dropUnreachable)
		if e.snap {
			s.SnapshotsFailed++
		}
	})
	if e.snap {
		e.from.reports.snapshot(to.id, false)
	} else {
		e.from.reports.unreachable(to.id)
	}
}

// deliverLoop hands due envelopes to h, one at a time and in (at, seq)
// order, until Close.
func (t *Transport) deliverLoop(h transport.Handler) {
	defer t.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		e, ok, wait := t.inbox.next(time.Now())
		if ok {
			t.deliver(h, e)
			continue
		}
		var tick <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-t.done:
			return
		case <-t.inbox.wake:
		case <-tick:
		}
	}
}

func (t *Transport) deliver(h transport.Handler, e envelope) {
	l := link{e.from.id, t.id}
	// Counted before Deliver so that a test that saw the message in its
	// Handler also sees it in Stats.
	t.net.stats.update(l, func(s *Stats) { s.Delivered++ })
	if e.xfer != nil {
		h.SnapshotTransferred(*e.xfer)
	}
	h.Deliver(e.m)
	if e.snap {
		t.net.stats.update(l, func(s *Stats) { s.SnapshotsOK++ })
		if e.xfer != nil {
			sent := *e.xfer
			sent.Peer, sent.Received = t.id, false
			e.from.reports.snapshotSent(sent)
		} else {
			e.from.reports.snapshot(t.id, true)
		}
	}
}

// reportLoop hands queued reports to h until Close.
func (t *Transport) reportLoop(h transport.Handler) {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case <-t.reports.wake:
		}
		r := t.reports.take()
		for _, s := range r.states {
			for _, c := range transport.Classes {
				h.PeerState(s.peer, c, s.up)
			}
		}
		for _, id := range r.unreachable {
			h.ReportUnreachable(id)
		}
		for _, x := range r.sent {
			h.SnapshotTransferred(x)
		}
		for _, s := range r.snaps {
			h.ReportSnapshot(s.to, s.ok)
		}
	}
}
