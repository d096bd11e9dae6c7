package grpcnet

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/transport"
)

func TestDeliverInOrderPerClass(t *testing.T) {
	a, b := newNode(t, 1), newNode(t, 2)
	connect(a, b)

	const n = 500
	var control, data []*raftpb.Message
	for i := uint64(1); i <= n; i++ {
		hb := heartbeat(1, 2, i)
		app := appendMsg(1, 2, i, bytes.Repeat([]byte{byte(i)}, int(i)))
		control = append(control, proto.Clone(hb).(*raftpb.Message))
		data = append(data, proto.Clone(app).(*raftpb.Message))
		a.Send([]*raftpb.Message{hb, app})
		if i%50 == 0 {
			// Stay under the Control queue size: this test is about order,
			// not about drops.
			waitFor(t, 10*time.Second, "control deliveries", func() bool {
				return len(b.rec.messages(transport.Control)) >= int(i)
			})
		}
	}
	waitFor(t, 10*time.Second, "all deliveries", func() bool { return b.rec.deliveredCount() == 2*n })
	assertMessages(t, "control", b.rec.messages(transport.Control), control)
	assertMessages(t, "data", b.rec.messages(transport.Data), data)
	if got := a.rec.unreachableCount(2); got != 0 {
		t.Errorf("ReportUnreachable(2) called %d times on a healthy peer", got)
	}
}

func TestDeliverLargeBatch(t *testing.T) {
	a, b := newNode(t, 1), newNode(t, 2)
	connect(a, b)

	// Less than the Data queue size (4096), all in one Send.
	const n = 3000
	var msgs, want []*raftpb.Message
	for i := uint64(1); i <= n; i++ {
		m := appendMsg(1, 2, i, bytes.Repeat([]byte("x"), 100))
		msgs = append(msgs, m)
		want = append(want, proto.Clone(m).(*raftpb.Message))
	}
	a.Send(msgs)
	waitFor(t, 10*time.Second, "the batch", func() bool { return b.rec.deliveredCount() == n })
	assertMessages(t, "data", b.rec.messages(transport.Data), want)
}

func assertMessages(t *testing.T, what string, got, want []*raftpb.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d messages, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("%s: message %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestRefusesOtherCluster(t *testing.T) {
	a, b := newNode(t, 1, withCluster(1)), newNode(t, 2, withCluster(2))
	connect(a, b)

	// Both sides refuse the other's streams and say why; the sender drops
	// and reports what it cannot send.
	deadline := time.Now().Add(5 * time.Second)
	for {
		a.Send([]*raftpb.Message{heartbeat(1, 2, 1), appendMsg(1, 2, 1, []byte("x"))})
		time.Sleep(10 * time.Millisecond)
		if a.rec.unreachableCount(2) > 0 &&
			a.logs.contains(transport.ErrWrongCluster.Error()) && b.logs.contains(transport.ErrWrongCluster.Error()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("refusal not logged on both sides, or not reported as unreachable")
		}
	}
	if n := b.rec.deliveredCount(); n != 0 {
		t.Fatalf("node of cluster 2 delivered %d messages of cluster 1", n)
	}
}

func TestRefusesOtherNode(t *testing.T) {
	a, b := newNode(t, 1), newNode(t, 2)
	// a believes node 3 lives at b's address.
	a.AddPeer(3, b.Addr())

	deadline := time.Now().Add(5 * time.Second)
	for !b.logs.contains(transport.ErrWrongNode.Error()) || !a.logs.contains(transport.ErrWrongNode.Error()) {
		if time.Now().After(deadline) {
			t.Fatal("no side logged ErrWrongNode")
		}
		a.Send([]*raftpb.Message{heartbeat(1, 3, 1), appendMsg(1, 3, 1, []byte("x"))})
		time.Sleep(10 * time.Millisecond)
	}
	if n := b.rec.deliveredCount(); n != 0 {
		t.Fatalf("node 2 delivered %d messages addressed to node 3", n)
	}
}

func TestErrorsCrossTheWire(t *testing.T) {
	for _, sentinel := range remoteSentinels {
		err := fromStatus(toStatus(fmt.Errorf("context: %w", sentinel)))
		if !errors.Is(err, sentinel) {
			t.Errorf("%v does not survive the wire: %v", sentinel, err)
		}
	}
}

func TestSendToUnknownPeer(t *testing.T) {
	a := newNode(t, 1)
	a.Send([]*raftpb.Message{heartbeat(1, 9, 1), snapMsg(1, 9, 2, 10)})
	if got := a.rec.unreachableCount(9); got != 1 {
		t.Errorf("ReportUnreachable(9) called %d times, want 1", got)
	}
	if got := a.rec.snapshotReports(); len(got) != 1 || got[0] != (snapshotReport{9, false}) {
		t.Errorf("snapshot reports %v, want [{9 false}]", got)
	}
}

func TestSendToRemovedPeer(t *testing.T) {
	a, b := newNode(t, 1), newNode(t, 2)
	connect(a, b)
	a.Send([]*raftpb.Message{heartbeat(1, 2, 1)})
	waitFor(t, 5*time.Second, "first heartbeat", func() bool { return b.rec.deliveredCount() == 1 })

	a.RemovePeer(2)
	a.Send([]*raftpb.Message{heartbeat(1, 2, 2)})
	if got := a.rec.unreachableCount(2); got != 1 {
		t.Errorf("ReportUnreachable(2) called %d times after RemovePeer, want 1", got)
	}
	time.Sleep(50 * time.Millisecond)
	if got := b.rec.deliveredCount(); got != 1 {
		t.Errorf("removed peer received %d messages, want 1", got)
	}
}

func TestSendToDeadPeerNeverBlocks(t *testing.T) {
	// An address nobody listens on any more.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	a := newNode(t, 1)
	a.AddPeer(2, dead)
	start := time.Now()
	const n = 100_000
	batch := make([]*raftpb.Message, 0, 100)
	for i := uint64(1); i <= n; i++ {
		if i%2 == 0 {
			batch = append(batch, heartbeat(1, 2, i))
		} else {
			batch = append(batch, appendMsg(1, 2, i, []byte("payload")))
		}
		if len(batch) == cap(batch) {
			a.Send(batch)
			batch = make([]*raftpb.Message, 0, 100)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("sending %d messages to a dead peer took %v", n, d)
	}
	waitFor(t, 5*time.Second, "ReportUnreachable(2)", func() bool { return a.rec.unreachableCount(2) > 0 })
	// Reports are rate-limited: a dead peer does not flood the raft node.
	time.Sleep(300 * time.Millisecond)
	elapsed := time.Since(start)
	if got, limit := a.rec.unreachableCount(2), int(elapsed/unreachableInterval)+2; got > limit {
		t.Errorf("ReportUnreachable(2) called %d times in %v, want at most %d", got, elapsed, limit)
	}
}

func TestSendAfterClose(t *testing.T) {
	a, b := newNode(t, 1), newNode(t, 2)
	connect(a, b)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	a.Send([]*raftpb.Message{heartbeat(1, 2, 1), snapMsg(1, 2, 2, 10)})
	a.AddPeer(3, b.Addr())
	a.RemovePeer(2)
	if got := a.rec.unreachableCount(2); got != 0 {
		t.Errorf("Send after Close reported unreachable %d times", got)
	}
	if got := a.rec.snapshotReports(); len(got) != 0 {
		t.Errorf("Send after Close reported snapshots %v", got)
	}
	if err := a.Start(a.rec); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

func TestStartTwice(t *testing.T) {
	a := newNode(t, 1)
	if err := a.Start(a.rec); err == nil {
		t.Fatal("second Start succeeded")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := New(Options{ListenAddr: "127.0.0.1:0"}); err == nil {
		t.Error("New accepted NodeID 0")
	}
	bad := transport.DefaultNetworkOptions()
	bad.Data.QueueSize = 0
	if _, err := New(Options{NodeID: 1, ListenAddr: "127.0.0.1:0", Network: bad}); err == nil {
		t.Error("New accepted network.data.queue_size = 0")
	}
	bad = transport.DefaultNetworkOptions()
	bad.Bulk.MaxMessageSize = 1024
	if _, err := New(Options{NodeID: 1, ListenAddr: "127.0.0.1:0", Network: bad}); err == nil {
		t.Error("New accepted network.bulk.max_message_size = 1024")
	}
	if _, err := New(Options{NodeID: 1, ListenAddr: "256.0.0.1:0"}); err == nil {
		t.Error("New accepted an impossible listen address")
	}
}

func TestClassesUseDistinctConnections(t *testing.T) {
	a, b := newNode(t, 1), newNode(t, 2)
	connect(a, b)
	a.store.put(t, 2, 10, bytes.Repeat([]byte("s"), 1000))

	a.Send([]*raftpb.Message{heartbeat(1, 2, 1), appendMsg(1, 2, 1, []byte("x")), snapMsg(1, 2, 2, 10)})
	waitFor(t, 10*time.Second, "three deliveries", func() bool { return b.rec.deliveredCount() == 3 })
	waitFor(t, 10*time.Second, "snapshot report", func() bool { return len(a.rec.snapshotReports()) == 1 })

	// b accepted one TCP connection per class from a; a accepted one per
	// class from b too, since b's streams open as soon as a is its peer.
	for _, c := range transport.Classes {
		if got := b.demux.accepted[c].Load(); got != 1 {
			t.Errorf("node 2 accepted %d %s connections, want 1", got, c)
		}
	}
	// A plain HTTP/2 client (no class tag) is refused.
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("a connection without class tag was served")
	}
}

// TestPeerStateReported: each streamed class reports up when its stream
// first opens, down when the peer goes away (even with nothing to send),
// and up when it is back.
func TestPeerStateReported(t *testing.T) {
	a, b := newNode(t, 1), newNode(t, 2)
	connect(a, b)
	addr := b.Addr()
	has := func(want ...peerState) func() bool {
		return func() bool {
			got := a.rec.PeerStates()
			for _, w := range want {
				if !slices.Contains(got, w) {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 5*time.Second, "control and data up", has(peerState{Peer: 2, Class: transport.Control, Up: true}, peerState{Peer: 2, Class: transport.Data, Up: true}))

	// Idle streams notice a dead peer too: nothing is sent.
	b.Close()
	waitFor(t, 10*time.Second, "control and data down", has(peerState{Peer: 2, Class: transport.Control, Up: false}, peerState{Peer: 2, Class: transport.Data, Up: false}))

	// The same node back at the same address.
	b2 := newNode(t, 2, func(o *Options) { o.ListenAddr = addr })
	b2.AddPeer(1, a.Addr())
	waitFor(t, 10*time.Second, "control and data up again", func() bool {
		n := 0
		for _, s := range a.rec.PeerStates() {
			if s.Up && s.Class != transport.Bulk {
				n++
			}
		}
		return n == 4
	})
	// Each class reports alternating states, starting up.
	for _, c := range []transport.Class{transport.Control, transport.Data} {
		var seq []bool
		for _, s := range a.rec.PeerStates() {
			if s.Class == c {
				seq = append(seq, s.Up)
			}
		}
		if !slices.Equal(seq, []bool{true, false, true}) {
			t.Errorf("%s reports %v, want [true false true]", c, seq)
		}
	}
}

// TestBulkStateFollowsTransfers: Bulk keeps no stream open; a snapshot
// that cannot reach its peer reports the class down.
func TestBulkStateFollowsTransfers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	a := newNode(t, 1)
	a.AddPeer(2, dead)
	a.store.put(t, 3, 100, []byte("snapshot data"))
	a.Send([]*raftpb.Message{snapMsg(1, 2, 3, 100)})
	waitFor(t, 10*time.Second, "snapshot report", func() bool { return len(a.rec.snapshotReports()) == 1 })
	if got := a.rec.snapshotReports()[0]; got.ok {
		t.Fatal("snapshot to a dead address reported sent")
	}
	if !slices.Contains(a.rec.PeerStates(), peerState{Peer: 2, Class: transport.Bulk, Up: false}) {
		t.Fatalf("PeerState reports %v lack bulk down", a.rec.PeerStates())
	}
	if n := len(a.rec.SnapshotTransfers()); n != 0 {
		t.Fatalf("%d transfers described for a failed snapshot", n)
	}
}
