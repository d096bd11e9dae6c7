// Package client is cairn's Go client: the cairn.KV interface over the
// network, so that a program moves between an embedded database and a
// remote cluster by changing the line that opens one:
//
//	var kv cairn.KV
//	kv, err = cairn.Open("data")                                // embedded
//	kv, err = client.Connect("10.0.0.1:2379", "10.0.0.2:2379") // remote
//
// It is a thin layer over go.etcd.io/etcd/client/v3 (clientv3), which does
// the hard parts: balancing requests over the endpoints, retrying requests
// that are safe to retry, and resuming watches on another member when the
// one serving them fails. Client.Etcd returns the clientv3 client for
// everything else clientv3 offers (the concurrency package's mutexes and
// elections, member management, maintenance).
//
// # Requests
//
// Put, Get and Delete send the etcd requests that cairn.PutRequest,
// cairn.RangeRequest and cairn.DeleteRequest build from the same options the
// embedded database takes, so they mean the same thing both ways; Txn
// sends its *etcdserverpb.TxnRequest as is. Requests wait for a
// connection to some member (bounded by their context and
// Config.RequestTimeout). Reads and lease calls that fail because their
// member is unavailable are retried by clientv3, on another member; writes
// (Put, Delete, Txn, Compact) are not, since they may have been applied: a
// write in flight when its member stops, or during an election, fails with
// an error the caller decides about (a transaction with a create or mod
// revision compare makes a retry safe).
//
// # Errors
//
// A request that the cluster refuses fails with the error clientv3
// returns, unwrapped: an rpctypes.EtcdError from
// go.etcd.io/etcd/api/v3/v3rpc/rpctypes, which compares with == and
// errors.Is against the rpctypes sentinels. A request whose context ends
// fails with the context's error. Where the embedded database returns one
// of cairn's sentinel errors, the client returns its etcd counterpart:
//
//	embedded (cairn's packages)              remote (rpctypes)
//	mvcc.ErrCompacted                        ErrCompacted
//	mvcc.ErrFutureRev                        ErrFutureRev
//	mvcc.ErrEmptyKey, watch.ErrEmptyKey      ErrEmptyKey
//	mvcc.ErrValueProvided                    ErrValueProvided
//	mvcc.ErrLeaseProvided                    ErrLeaseProvided
//	mvcc.ErrTooManyOps                       ErrTooManyOps
//	mvcc.ErrDuplicateKey                     ErrDuplicateKey
//	lease.ErrNotFound, kv.ErrLeaseNotFound   ErrLeaseNotFound
//	lease.ErrExists                          ErrLeaseExist
//	lease.ErrTTLTooLarge                     ErrLeaseTTLTooLarge
//	kv.ErrNoSpace                            ErrNoSpace
//	engine.ErrTooLarge                       ErrRequestTooLarge
//	engine.ErrProposalTimeout                ErrTimeout
//	engine.ErrProposalDropped                ErrTimeoutDueToLeaderFail
//	engine.ErrStopped                        ErrStopped
//	lease.ErrNotLeader                       ErrNotLeader (a server forwards
//	                                         keep-alives to the leader, so
//	                                         remote callers rarely see it)
//
// Invalid requests (a bad range, a negative revision, a malformed compare)
// fail with a gRPC InvalidArgument status carrying cairn's own message.
//
// # Watches
//
// Watch returns a cairn.Watcher with the embedded watcher's contract, built
// on clientv3's Watcher: responses in revision order, each revision once,
// resumed on another member after a failure from the last revision
// delivered. It returns once the server has created the watch, so a write
// made after Watch returns is seen by a watch without WithRev, and a
// request the server refuses fails Watch itself, as it does embedded.
// When the watch ends, Err tells why, as embedded: an error wrapping
// watch.ErrCompacted — a *watch.CompactedError, so watch.CompactRevision
// tells where to resync from — after the server's last response with
// Canceled and CompactRevision; watch.ErrClosed after Close (ErrClosed,
// which matches watch.ErrClosed, after the Client's Close); the context's
// error when the context ended; the rpctypes error that made the server
// refuse it; or ErrCanceled if the server canceled it for another reason
// (clientv3 does not pass such reasons on; cairn's server only sends them
// for watchers its hub ended abnormally). Responses never have Fragment set:
// clientv3 joins the fragments of a revision before delivering it.
//
// A watch served by a member that is cut off from the leader receives
// nothing until the partition heals. With a context made with
// clientv3.WithRequireLeader, requests and watches that reach a member
// without a leader fail with rpctypes.ErrNoLeader instead of waiting;
// cairn's server checks when a request or watch stream starts, and does
// not (yet) end a stream already open on a member that loses its leader.
package client
