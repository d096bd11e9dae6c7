package memnet

import (
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/transport"
)

// allClasses is one PeerState report of every class.
func allClasses(peer uint64, up bool) []peerState {
	var out []peerState
	for _, c := range transport.Classes {
		out = append(out, peerState{Peer: peer, Class: c, Up: up})
	}
	return out
}

func waitStates(t *testing.T, r *recorder, want []peerState) {
	t.Helper()
	eventually(t, "PeerState reports", func() bool { return len(r.PeerStates()) >= len(want) })
	if got := r.PeerStates(); !slices.Equal(got, want) {
		t.Fatalf("PeerState reports = %v, want %v", got, want)
	}
}

// TestPeerStateFollowsCuts: isolating, partitioning, blocking and healing
// are reported to each endpoint whose links change, once per change, for
// every class; an endpoint that starts while cut is told at once.
func TestPeerStateFollowsCuts(t *testing.T) {
	c := newCluster(t, 1, 1, 2, 3)
	c.net.Isolate(3)
	waitStates(t, c.recs[1], allClasses(3, false))
	waitStates(t, c.recs[2], allClasses(3, false))
	// Node 3's reports: down for 1 and 2, in either order.
	eventually(t, "node 3's reports", func() bool { return len(c.recs[3].PeerStates()) == 6 })
	for _, s := range c.recs[3].PeerStates() {
		if s.Up || (s.Peer != 1 && s.Peer != 2) {
			t.Fatalf("node 3 got %v, want down for 1 and 2", s)
		}
	}
	c.net.Isolate(3) // no change: nothing reported
	c.net.Heal()
	waitStates(t, c.recs[1], append(allClasses(3, false), allClasses(3, true)...))

	// Block is one direction: only the sender hears of it.
	c.net.Block(1, 2)
	c.net.Heal()
	waitStates(t, c.recs[1], slices.Concat(allClasses(3, false), allClasses(3, true), allClasses(2, false), allClasses(2, true)))
	if got := c.recs[2].PeerStates(); len(got) != 6 {
		t.Fatalf("node 2 heard %v, want only the isolation of 3 and its end", got)
	}

	// A node that starts while partitioned away is told.
	c.net.Partition([]uint64{1}, []uint64{2, 3})
	c.ts[1].Close()
	c.start(t, 1, c.snaps[1])
	eventually(t, "restarted node's reports", func() bool { return len(c.recs[1].PeerStates()) == 6 })
	for _, s := range c.recs[1].PeerStates() {
		if s.Up {
			t.Fatalf("restarted node 1 got %v, want down for 2 and 3", s)
		}
	}
}

// TestSnapshotTransferredReported: a successful transfer is described to
// both ends, the receiver before Deliver, with the bytes moved.
func TestSnapshotTransferredReported(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	data := snapData(100<<10 + 3)
	c.snaps[1].put(snapTerm, snapIndex, data)
	transfersAtDeliver := make(chan int, 1)
	c.recs[2].onDeliver = func(m *raftpb.Message) { transfersAtDeliver <- len(c.recs[2].SnapshotTransfers()) }

	c.ts[1].Send([]*raftpb.Message{snapMsg(1, 2)})
	c.waitSnapReports(t, 1, 1)
	if n := <-transfersAtDeliver; n != 1 {
		t.Fatalf("receiver had %d SnapshotTransferred before Deliver, want 1", n)
	}
	recv := c.recs[2].SnapshotTransfers()[0]
	sent := c.recs[1].SnapshotTransfers()
	if len(sent) != 1 {
		t.Fatalf("sender got %d SnapshotTransferred, want 1", len(sent))
	}
	want := transport.SnapshotTransfer{Peer: 1, Received: true, Term: snapTerm, Index: snapIndex, Bytes: int64(len(data))}
	if got := recv; got.Duration <= 0 || func() bool { got.Duration = 0; return got != want }() {
		t.Fatalf("receiver's transfer = %+v, want %+v and a duration", recv, want)
	}
	want.Peer, want.Received = 2, false
	if got := sent[0]; got.Duration <= 0 || func() bool { got.Duration = 0; return got != want }() {
		t.Fatalf("sender's transfer = %+v, want %+v and a duration", sent[0], want)
	}
}
