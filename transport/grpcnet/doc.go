// Package grpcnet is the gRPC implementation of transport.Transport: how
// the nodes of a cairn cluster exchange raft messages over the network.
//
// # One port, three connection classes
//
// A node listens on a single TCP port, yet every pair of nodes talks over
// three separate TCP connections, one per transport.Class, so that a
// snapshot filling the bulk connection's windows never sits in front of a
// heartbeat. The dialer writes one class-tag byte right after the TCP
// connect, before the HTTP/2 preface; the listener reads that byte from each
// accepted connection and hands the connection to the grpc.Server of that
// class. Each class therefore has its own server settings and its own client
// settings (flow-control windows, message limits, keepalives, compression),
// taken from transport.ClassOptions:
//
//	peer A                                    peer B, one TCP port
//	control ClientConn --[tag C]-- TCP --\
//	data    ClientConn --[tag D]-- TCP ---+--> demux --> control grpc.Server
//	bulk    ClientConn --[tag B]-- TCP --/          \--> data    grpc.Server
//	                                                 \-> bulk    grpc.Server
//
// # Sending
//
// Send never blocks. Control and Data messages go to a bounded queue per peer
// and class; one goroutine per queue keeps a client stream open to the peer
// and sends everything queued as one batch per gRPC message, which preserves
// the order within a (peer, class). When a queue is full, a peer is unknown
// or its stream is broken, the message is dropped and
// Handler.ReportUnreachable is called, at most once per peer per
// unreachableInterval: raft retransmits, and a dead peer must not make the
// transport spin. A broken stream is reopened with exponential backoff; the
// messages that arrive meanwhile are dropped and reported the same way.
//
// Handler.PeerState follows the streams: a class is reported up when its
// stream to the peer first opens and when it reopens after a failure, and
// down when it fails (the "stream to peer down" and "up" of the logs). Bulk
// keeps no stream open: its state is that of the latest snapshot transfer
// (down when the stream failed, not when the local snapshot store did).
// The peer's own shutdown (RemovePeer, Close) reports nothing.
//
// # Snapshots
//
// Each MsgSnap is sent by its own goroutine, at most Bulk.ConcurrencyLimit at
// a time across all peers, within Bulk.RequestTimeout. The sender opens a Bulk
// stream and sends a header (the MsgSnap and the data size); the receiver
// asks its SnapshotStore for a writer and answers with the number of bytes it
// already holds from an earlier, interrupted transfer. The sender seeks past
// them and streams the rest in chunks, each carrying the CRC-32C of its
// bytes. The receiver writes only verified chunks, commits the snapshot,
// delivers the MsgSnap to its Handler, and answers done. The sender reports
// the outcome with Handler.ReportSnapshot exactly once per MsgSnap. Both ends
// describe a successful transfer (bytes moved, duration) through
// Handler.SnapshotTransferred: the receiver before Deliver, the sender before
// ReportSnapshot.
//
// # Receiving
//
// Every stream starts with a header naming the cluster, the sender and the
// receiver. A stream from another cluster (transport.ErrWrongCluster) or for
// another node (transport.ErrWrongNode) is refused before any message is
// delivered, as is a message on the wrong class: a MsgSnap may only arrive
// through Bulk, after its data is committed.
//
// # Lifecycle
//
// New binds the listener, so Addr works at once; Start serves; Close stops
// the peers' goroutines and connections, then the servers (gracefully, within
// a bound), and waits for every goroutine the transport started.
package grpcnet
