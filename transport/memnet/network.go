package memnet

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/transport"
)

// addrScheme prefixes the address of every endpoint.
const addrScheme = "mem://"

// Network connects the endpoints of one test cluster and decides the fate of
// every message sent between them. All its methods are safe for concurrent
// use.
type Network struct {
	stats statsBook

	mu struct {
		sync.Mutex
		// rng draws every random decision; under mu so that a seed gives
		// one sequence of decisions.
		rng    *rand.Rand
		closed bool
		// nodes holds the open endpoint of each node id; a restarted node
		// replaces its closed one.
		nodes map[uint64]*Transport
		cuts  cuts
		// faults applies to links without an entry in linkFaults.
		faults     Faults
		linkFaults map[link]Faults
		// lastAt is the delivery time of the last in-order message of each
		// link, so that a delayed message is never overtaken by a later one
		// with a shorter delay.
		lastAt map[link]time.Time
		// seq numbers queued envelopes in the order of Send, which is the
		// order of delivery among envelopes due at the same time.
		seq uint64
	}
}

// New returns an empty network whose random decisions derive from seed.
func New(seed uint64) *Network {
	n := &Network{}
	// PCG takes two words of seed; the second is fixed so that one seed
	// names one sequence.
	n.mu.rng = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	n.mu.nodes = make(map[uint64]*Transport)
	n.mu.linkFaults = make(map[link]Faults)
	n.mu.lastAt = make(map[link]time.Time)
	return n
}

// Addr returns the address of node id on any Network: "mem://<id>".
func Addr(id uint64) string {
	return addrScheme + strconv.FormatUint(id, 10)
}

// parseAddr returns the node id of an address made by Addr.
func parseAddr(addr string) (uint64, bool) {
	s, ok := strings.CutPrefix(addr, addrScheme)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(s, 10, 64)
	return id, err == nil
}

// Transport returns a new endpoint for node id, reachable at Addr(id), that
// streams snapshots from and to snaps (nil: the node cannot send nor receive
// snapshots). A node that restarts closes its endpoint and calls Transport
// again; if the previous endpoint of id is still open, Transport closes it
// first, as a crash would. After Close, Transport returns a closed endpoint.
func (n *Network) Transport(id uint64, snaps transport.SnapshotStore) *Transport {
	t := newTransport(n, id, snaps)
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		t.Close()
		return t
	}
	old := n.mu.nodes[id]
	n.mu.nodes[id] = t
	n.forgetLinksLocked(id)
	n.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return t
}

// SetFaults sets the faults of every link, replacing those set by
// SetLinkFaults. It panics if f is invalid (see Faults.Validate): faults are
// fixed by a test's code, and a wrong one is a bug in that test.
func (n *Network) SetFaults(f Faults) {
	mustValidate(f)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.faults = f
	clear(n.mu.linkFaults)
}

// SetLinkFaults sets the faults of the link from one node to another (one
// direction), in place of those set by SetFaults. Faults{} makes that link
// perfect. It panics if f is invalid, as SetFaults does.
func (n *Network) SetLinkFaults(from, to uint64, f Faults) {
	mustValidate(f)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.linkFaults[link{from, to}] = f
}

func mustValidate(f Faults) {
	if err := f.Validate(); err != nil {
		panic(err)
	}
}

func (n *Network) faultsLocked(l link) Faults {
	if f, ok := n.mu.linkFaults[l]; ok {
		return f
	}
	return n.mu.faults
}

// Close closes every endpoint, stopping every goroutine the network started,
// and waits for them. Endpoints asked for afterwards are closed already.
func (n *Network) Close() {
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return
	}
	n.mu.closed = true
	nodes := n.mu.nodes
	n.mu.nodes = make(map[uint64]*Transport)
	n.mu.Unlock()
	for _, t := range nodes {
		t.Close()
	}
}

// unregister forgets t if it is still the endpoint of its node.
func (n *Network) unregister(t *Transport) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.nodes[t.id] == t {
		delete(n.mu.nodes, t.id)
		n.forgetLinksLocked(t.id)
	}
}

// forgetLinksLocked forgets the delivery order of the links of node id: a
// new endpoint is a new connection, and its messages must not wait behind
// delayed ones of its predecessor, which its receivers may drop anyway.
func (n *Network) forgetLinksLocked(id uint64) {
	for l := range n.mu.lastAt {
		if l.from == id || l.to == id {
			delete(n.mu.lastAt, l)
		}
	}
}

// send routes msgs, cloned already, from endpoint from. It never blocks: it
// queues each message on its receiver's inbox, or starts a snapshot
// transfer, or drops it.
func (n *Network) send(from *Transport, msgs []*raftpb.Message) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	for _, m := range msgs {
		n.routeLocked(from, m, now)
	}
}

// routeLocked decides the fate of one message. Cuts are checked first, so
// that a test counting cut messages does not depend on whether the other
// side happens to be up.
func (n *Network) routeLocked(from *Transport, m *raftpb.Message, now time.Time) {
	to := m.GetTo()
	l := link{from.id, to}
	snap := transport.ClassOf(m) == transport.Bulk
	n.stats.update(l, func(s *Stats) { s.Sent++ })

	drop := func(r dropReason) {
		n.stats.update(l, func(s *Stats) {
			s.drop(r)
			if snap {
				s.SnapshotsFailed++
			}
		})
		switch {
		case snap:
			from.reports.snapshot(to, false)
		case r != dropLost:
			from.reports.unreachable(to)
		}
	}

	if !from.running() {
		drop(dropUnreachable)
		return
	}
	if n.mu.cuts.cut(from.id, to) {
		drop(dropCut)
		return
	}
	dst := n.resolveLocked(from, to)
	if dst == nil {
		drop(dropUnreachable)
		return
	}
	fate := n.faultsLocked(l).draw(n.mu.rng)
	if fate.lost {
		drop(dropLost)
		return
	}
	if snap {
		n.startTransferLocked(from, dst, m, fate.delay)
		return
	}

	at := now.Add(fate.delay)
	if last := n.mu.lastAt[l]; at.Before(last) {
		at = last
	}
	if fate.hold > 0 {
		// Held back out of link order: lastAt is left alone so that later
		// messages may pass this one.
		at = at.Add(fate.hold)
	} else {
		n.mu.lastAt[l] = at
	}
	if !n.queueLocked(dst, envelope{m: m, from: from, at: at}, drop) {
		return
	}
	n.stats.update(l, func(s *Stats) {
		if fate.delay > 0 {
			s.Delayed++
		}
		if fate.hold > 0 {
			s.Reordered++
		}
	})
	if fate.duplicate {
		n.stats.update(l, func(s *Stats) { s.Duplicated++ })
		n.queueLocked(dst, envelope{m: cloneMessage(m), from: from, at: at}, drop)
	}
}

// queueLocked pushes e on dst's inbox, numbering it, and drops it with drop
// if it does not fit.
func (n *Network) queueLocked(dst *Transport, e envelope, drop func(dropReason)) bool {
	n.mu.seq++
	e.seq = n.mu.seq
	switch dst.inbox.push(e) {
	case pushed:
		return true
	case pushFull:
		drop(dropOverflow)
	default:
		drop(dropUnreachable)
	}
	return false
}

// resolveLocked returns the endpoint that from reaches when it sends to raft
// node to: the one at the address from knows for to. It returns nil when
// from has no address for to, when nobody is at that address, or when the
// node there is not to (a real transport would reject the message as
// addressed to another node).
func (n *Network) resolveLocked(from *Transport, to uint64) *Transport {
	addr, ok := from.peerAddr(to)
	if !ok {
		return nil
	}
	id, ok := parseAddr(addr)
	if !ok || id != to {
		return nil
	}
	return n.mu.nodes[id]
}
