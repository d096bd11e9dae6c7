package memnet

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"

	"github.com/cairn-db/cairn/internal/transporttest"
	"github.com/cairn-db/cairn/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait of every test, so that a bug shows as a
// failure instead of a hung test binary.
const waitTimeout = 10 * time.Second

// eventually fails t unless cond becomes true within waitTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// quiesce waits until no message is in flight.
func quiesce(t *testing.T, n *Network) Stats {
	t.Helper()
	var s Stats
	eventually(t, "quiescence", func() bool {
		s = n.Stats()
		return s.Sent+s.Duplicated == s.Delivered+s.Dropped
	})
	return s
}

// recorder is a transport.Handler that remembers everything.
type recorder struct {
	transporttest.Observer // PeerState, SnapshotTransferred

	// onDeliver, if set, runs in Deliver before the message is recorded.
	onDeliver func(m *raftpb.Message)

	mu          sync.Mutex
	msgs        []*raftpb.Message
	at          []time.Time
	unreachable map[uint64]int
	snaps       []snapReport
}

// peerState is one Handler.PeerState call.
type peerState = transporttest.PeerState

func (r *recorder) Deliver(m *raftpb.Message) {
	if r.onDeliver != nil {
		r.onDeliver(m)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	r.at = append(r.at, time.Now())
}

func (r *recorder) ReportUnreachable(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unreachable == nil {
		r.unreachable = make(map[uint64]int)
	}
	r.unreachable[id]++
}

func (r *recorder) ReportSnapshot(id uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, snapReport{id, ok})
}

func (r *recorder) messages() []*raftpb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*raftpb.Message(nil), r.msgs...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *recorder) unreachableCount(id uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[id]
}

func (r *recorder) snapReports() []snapReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]snapReport(nil), r.snaps...)
}

// indexes returns the Index of every delivered message, in delivery order.
func (r *recorder) indexes() []uint64 {
	var out []uint64
	for _, m := range r.messages() {
		out = append(out, m.GetIndex())
	}
	return out
}

// cluster is a started network of nodes that all know each other.
type cluster struct {
	net   *Network
	ts    map[uint64]*Transport
	recs  map[uint64]*recorder
	ids   []uint64
	snaps map[uint64]*memStore
}

// newCluster starts nodes ids on a network seeded with seed; every node has
// a memStore. The network is closed when the test ends.
func newCluster(t *testing.T, seed uint64, ids ...uint64) *cluster {
	t.Helper()
	c := &cluster{
		net:   New(seed),
		ts:    make(map[uint64]*Transport),
		recs:  make(map[uint64]*recorder),
		ids:   ids,
		snaps: make(map[uint64]*memStore),
	}
	t.Cleanup(c.net.Close)
	for _, id := range ids {
		c.snaps[id] = newMemStore()
		c.start(t, id, c.snaps[id])
	}
	return c
}

// start (re)starts node id with a fresh endpoint and recorder.
func (c *cluster) start(t *testing.T, id uint64, store transport.SnapshotStore) *Transport {
	t.Helper()
	tr := c.net.Transport(id, store)
	if got, want := tr.Addr(), fmt.Sprintf("mem://%d", id); got != want {
		t.Fatalf("Addr() = %q, want %q", got, want)
	}
	for _, p := range c.ids {
		tr.AddPeer(p, Addr(p))
	}
	rec := &recorder{}
	if err := tr.Start(rec); err != nil {
		t.Fatalf("Start(%d): %v", id, err)
	}
	c.ts[id], c.recs[id] = tr, rec
	return tr
}

// msg returns a message of type typ from one node to another.
func msg(typ raftpb.MessageType, from, to, index uint64) *raftpb.Message {
	return &raftpb.Message{
		Type:  typ.Enum(),
		From:  new(from),
		To:    new(to),
		Term:  new(uint64(1)),
		Index: new(index),
	}
}

// app returns a MsgApp carrying one entry whose data names index.
func app(from, to, index uint64) *raftpb.Message {
	m := msg(raftpb.MsgApp, from, to, index)
	m.Entries = []*raftpb.Entry{{
		Term:  new(uint64(1)),
		Index: new(index + 1),
		Data:  fmt.Appendf(nil, "entry-%d", index),
	}}
	return m
}

// sendApps sends count MsgApps with indexes 0..count-1 from one node to
// another, one Send per message as a raft loop would.
func (c *cluster) sendApps(from, to uint64, count int) {
	for i := range count {
		c.ts[from].Send([]*raftpb.Message{app(from, to, uint64(i))})
	}
}
