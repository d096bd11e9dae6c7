// Package transport carries raft messages between the nodes of a cluster.
//
// A Transport moves raftpb.Message values from the local raft node to its
// peers and hands the messages it receives to a Handler. Messages travel on
// one of three connection classes, each with its own connection per peer and
// its own settings, so that bulk traffic never delays consensus traffic:
//
//   - Control: votes, pre-votes, heartbeats, timeout-now and their responses.
//     Small and latency-sensitive: an election depends on them.
//   - Data: append entries and their responses, forwarded proposals and
//     read-index traffic. Streamed and batched for throughput.
//   - Bulk: snapshots, streamed in checksummed chunks that a broken transfer
//     resumes instead of restarting.
//
// Send never blocks the caller: each peer and class has a bounded queue, and a
// message that does not fit is dropped and reported through
// Handler.ReportUnreachable, which is how the raft library expects a lossy
// network to behave (it retries). A snapshot's outcome is always reported
// through Handler.ReportSnapshot. The state of the connections is reported
// through Handler.PeerState, and successful snapshot transfers through
// Handler.SnapshotTransferred, for observation.
//
// Two implementations exist: grpcnet, for real clusters, and memnet, an
// in-memory network for tests that also injects faults (partitions, drops,
// delays, duplicates, reordering). Neither calls the Handler after Close.
package transport

import (
	"errors"
	"io"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Class is the connection class a message travels on.
type Class int

const (
	// Control carries elections and heartbeats.
	Control Class = iota
	// Data carries log replication.
	Data
	// Bulk carries snapshots.
	Bulk
)

// Classes lists every connection class, in order.
var Classes = [...]Class{Control, Data, Bulk}

func (c Class) String() string {
	switch c {
	case Control:
		return "control"
	case Data:
		return "data"
	case Bulk:
		return "bulk"
	}
	return "unknown"
}

// ClassOf returns the connection class that m travels on.
func ClassOf(m *raftpb.Message) Class {
	switch m.GetType() {
	case raftpb.MsgSnap:
		return Bulk
	case raftpb.MsgVote, raftpb.MsgVoteResp, raftpb.MsgPreVote, raftpb.MsgPreVoteResp,
		raftpb.MsgHeartbeat, raftpb.MsgHeartbeatResp, raftpb.MsgTimeoutNow,
		raftpb.MsgTransferLeader, raftpb.MsgForgetLeader:
		return Control
	default:
		return Data
	}
}

// Errors a Transport returns.
var (
	ErrClosed        = errors.New("transport: closed")
	ErrUnknownPeer   = errors.New("transport: unknown peer")
	ErrWrongCluster  = errors.New("transport: message from another cluster")
	ErrWrongNode     = errors.New("transport: message addressed to another node")
	ErrSnapshotCheck = errors.New("transport: snapshot chunk checksum mismatch")
)

// Handler receives what peers send. The engine implements it.
//
// Its methods may be called concurrently from many goroutines and must not
// block for long: they hand work to the raft node and return. A transport
// never calls them from inside Send, so a Handler may take locks that the
// caller of Send holds.
type Handler interface {
	// Deliver hands a message received from a peer to the local raft node.
	// For a MsgSnap, Deliver is called only after the snapshot's data has been
	// received completely and committed to the SnapshotStore.
	Deliver(m *raftpb.Message)
	// ReportUnreachable tells the raft node that a message to peer id was
	// lost (queue full, connection down).
	ReportUnreachable(id uint64)
	// ReportSnapshot tells the raft node whether the snapshot it sent to peer
	// id was delivered (ok) or failed and must be retried.
	ReportSnapshot(id uint64, ok bool)
	// PeerState tells that the connection of class c to peer id went down
	// (up false: it failed, or could not be established) or came up. It is
	// for observation (status, events); raft learns of lost messages through
	// ReportUnreachable. Reports of one peer and class come in order, on
	// changes; a transport may also report a connection's first success
	// (up), and repeat a state. A transport without connections reports
	// what stands for them (memnet: the cuts of its links).
	PeerState(id uint64, c Class, up bool)
	// SnapshotTransferred describes a snapshot transfer that succeeded, on
	// both sides: on the sender before its ReportSnapshot(true), on the
	// receiver before the MsgSnap is delivered. It is for observation.
	SnapshotTransferred(x SnapshotTransfer)
}

// SnapshotTransfer describes one successful snapshot transfer.
type SnapshotTransfer struct {
	// Peer is the receiver when Received is false, else the sender.
	Peer     uint64
	Received bool
	// Term and Index name the snapshot.
	Term, Index uint64
	// Bytes is what this transfer moved: the snapshot file's bytes, less
	// those an interrupted earlier transfer had delivered already.
	Bytes int64
	// Duration is the transfer's, from opening the stream to its end.
	Duration time.Duration
}

// SnapshotStore gives the transport access to snapshot data on disk, so that
// snapshots are streamed from and to files instead of being held in memory.
// The storage package implements it.
type SnapshotStore interface {
	// OpenSnapshot opens the data of the snapshot with the given term and
	// index, as the sender streams it. The caller closes the reader.
	OpenSnapshot(term, index uint64) (SnapshotReader, error)
	// ReceiveSnapshot prepares to receive the snapshot with the given term,
	// index and total size. When an earlier transfer of the same snapshot was
	// interrupted, the returned writer is positioned after the bytes already
	// received and Offset reports how many there are; the sender resumes from
	// there.
	ReceiveSnapshot(term, index uint64, size int64) (SnapshotWriter, error)
}

// SnapshotReader reads a snapshot's data.
type SnapshotReader interface {
	io.ReadSeeker
	io.Closer
	// Size is the total size of the data in bytes.
	Size() int64
}

// SnapshotWriter receives a snapshot's data.
type SnapshotWriter interface {
	io.Writer
	// Offset is the number of bytes already received and kept.
	Offset() int64
	// Commit verifies the received data as a whole (the file checksum) and
	// makes the snapshot available to the node. Nothing is installed when it
	// fails.
	Commit() error
	// Close releases the writer; it is called after Commit too. After a
	// failed or abandoned transfer the bytes received so far are kept so
	// that the next attempt resumes.
	Close() error
}

// Transport sends raft messages to peers and receives theirs.
type Transport interface {
	// Start begins receiving messages and hands them to h. It is called
	// once; only Addr, AddPeer and RemovePeer may come before it.
	Start(h Handler) error
	// Addr is the address peers reach this node at.
	Addr() string
	// AddPeer makes peer id reachable at addr; calling it again with another
	// address updates it.
	AddPeer(id uint64, addr string)
	// RemovePeer forgets peer id and closes its connections.
	RemovePeer(id uint64)
	// Send queues msgs for delivery. It never blocks; see the package doc for
	// what happens to messages that cannot be queued. Send takes ownership of
	// the messages.
	Send(msgs []*raftpb.Message)
	// Close stops every connection and goroutine the transport started. It
	// is idempotent.
	Close() error
}
