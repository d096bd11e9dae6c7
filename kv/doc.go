// Package kv is cairn's built-in state machine: etcd's v3 key-value model
// (package mvcc), its watches (package watch) and its leases (package
// lease), behind engine.StateMachine.
//
// Every raft entry it applies is one etcdserverpb.InternalRaftRequest: a
// Put, DeleteRange, Txn, Compaction, LeaseGrant or LeaseRevoke, an Alarm
// (NOSPACE refuses the writes that grow storage, CORRUPT every write) or a
// ClusterMemberAttrSet (a member's name and client URLs, as etcd publishes
// them). One Apply
// call, however many entries it carries, is one Pebble batch in the node's
// own Pebble instance, committed with the index of its last entry, so a
// restart resumes exactly after it. The revisions a batch creates are handed
// to the watch hub before Apply returns, so that a writer whose proposal
// returned can watch from the next revision without missing its own write.
//
// Reads do not go through raft: Range serves from the local store; the
// caller (package cairn) decides how fresh it must be.
package kv
