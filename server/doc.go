// Package server serves a cairn node over the etcd v3 gRPC API, so that
// etcdctl, clientv3 and its concurrency recipes, and etcd's tools work
// against it unchanged.
//
// A Server is made with New(Options), started with Start, and stopped with
// Shutdown; Ready is closed once the member knows its leader, has caught up
// and has published its name and client URL, and Done once it stopped (Err
// says why). It embeds: a program can run a member in-process and reach
// the node underneath through DB.
//
// # Requests
//
// Every member serves every request:
//
//   - Writes (Put, DeleteRange, Txn, Compact, LeaseGrant, LeaseRevoke,
//     Alarm) are proposed to raft from the member that received them; raft
//     forwards them to the leader. A request larger than MaxRequestBytes, or
//     one that would take storage past QuotaBytes (the NOSPACE alarm), is
//     refused before it is proposed.
//   - Range follows the read policy: the member's
//     raft.read_consistency.default_policy, or the one the request names in
//     the gRPC metadata key ReadConsistencyKey; etcd's serializable flag
//     means eventual.
//   - Lease keep-alives and time-to-live need the leader's clock: a follower
//     relays them to the leader's client endpoint.
//   - Watch streams are served by the member's own watch hub (see package
//     watch); a stream that asked for a leader (clientv3.WithRequireLeader)
//     ends with "no leader" when the member loses it.
//   - Cluster changes go through the engine's membership; Maintenance
//     serves status, alarms, hashes, snapshots (backups that `cairn
//     snapshot restore` and RestoreSnapshot load), leadership moves and
//     defragmentation.
//
// Errors carry the codes and messages of etcd's rpctypes, which clientv3
// turns back into its error values.
//
// # Members
//
// A member of a new cluster takes its id from the cluster and member names
// (MemberID). A member started with Join asks the running cluster for the
// id it was added with (cairn member add, etcdctl member add), or adds
// itself. Either way the id is recorded in the data directory
// (member.json), so that the same command line restarts the same member.
// When ready, a member publishes its name and client URL through raft, as
// etcd does; member lists show them.
package server
