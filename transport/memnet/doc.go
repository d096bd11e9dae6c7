// Package memnet is an in-memory network of transport.Transport endpoints
// that injects faults, for tests.
//
// A test creates one Network, takes one endpoint per node from it and hands
// each endpoint to its node as that node's transport.Transport:
//
//	net := memnet.New(seed)
//	defer net.Close()
//	t1 := net.Transport(1, store1) // Addr() == "mem://1"
//	t1.AddPeer(2, "mem://2")
//	...
//	net.Partition([]uint64{1}, []uint64{2, 3}) // 1 is cut off from 2 and 3
//	net.SetFaults(memnet.Faults{DropRate: 0.1, MaxDelay: 5 * time.Millisecond})
//	net.Heal()
//
// # What the network guarantees
//
// Send never blocks and never calls the sender's Handler on the sender's
// goroutine: raft nodes call Send from their Ready loop, and a Handler that
// forwards into that loop would deadlock if it were called back in place.
// Every message is cloned on Send, so the receiver never shares memory with
// the sender. Each endpoint delivers what it receives on a goroutine of its
// own, one message at a time; a link (from, to) delivers in the order of
// Send unless ReorderRate is set. Extra latency (MinDelay, MaxDelay) delays a
// link like a slow TCP stream would: it does not reorder it.
//
// # The fault model
//
// Faults are of two kinds, and both take effect for messages sent after the
// call that sets them:
//
//   - Cuts: Partition, Isolate and Block decide whether a link exists at all.
//     A message on a cut link is dropped and the sender is told through
//     Handler.ReportUnreachable, as a real transport whose connection is
//     refused would. Heal removes every cut.
//     Every change of a cut is reported to the running endpoints whose
//     links to the peers they know it cuts or restores, through
//     Handler.PeerState (down or up, for every class), as a real
//     transport reports its connections; an endpoint that starts is told
//     of the cuts in place. A Block is reported to the blocked sender only.
//   - Link faults: SetFaults and SetLinkFaults make a link lossy
//     (DropRate: lost silently, as a packet is), duplicating, reordering
//     or slow. Heal leaves them in place.
//
// Messages to a node that is unknown to the sender (AddPeer), not started,
// closed, or whose receive queue (QueueSize messages) is full are dropped and
// reported through ReportUnreachable too. A message that is queued when its
// receiver closes is lost, as it would be on a crash.
//
// A MsgSnap is not queued with the others: its snapshot's data is copied
// from the sender's SnapshotStore to the receiver's on a goroutine of its own
// (as the Bulk connection class streams it), resuming after the bytes an
// earlier broken transfer left behind, and the MsgSnap is delivered only
// after the receiver's writer has been committed. Its outcome is reported to
// the sender exactly once through Handler.ReportSnapshot: true after the
// MsgSnap was delivered, false if it was cut, lost, or any step of the copy
// failed (including a cut or a close during the copy). Snapshots are never
// duplicated nor reordered. A successful transfer is described through
// Handler.SnapshotTransferred to both ends: the receiver's before Deliver,
// the sender's before its ReportSnapshot.
//
// # Determinism
//
// All random decisions come from one generator seeded by New and consumed
// under the network's lock, so a test that sends from one goroutine sees the
// same drops, duplicates and delays on every run with the same seed. The
// interleaving of several senders and the timing of delivery goroutines are
// up to the Go scheduler, as in a real cluster.
//
// # Observing faults
//
// Stats and LinkStats count what happened to every message (sent,
// delivered, and why each lost one was lost), so a test can assert that a
// fault really occurred. Once nothing is in flight,
// Sent+Duplicated == Delivered+Dropped.
package memnet
