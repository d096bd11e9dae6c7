// Package lease keeps leases: time-to-live grants that keys attach to and
// that take those keys with them when they end.
//
// A lease's existence is replicated state: grants and revocations are raft
// entries, applied on every node in the same order (Grant, Revoke), and the
// lease records live in the node's Pebble instance, written in the same
// batch as the rest of an apply. Its expiry is not: time is only read on the
// leader. The leader keeps each lease's deadline in memory, renews it on
// keep-alive (Renew), and, when it passes, proposes the revocation through
// raft like any other write (Expired tells which). So every node deletes a
// lease's keys at the same revision, and no follower acts on its own clock.
//
// On becoming leader (Promote) a node gives every lease a fresh deadline of
// its full TTL plus an extension: the old leader's deadlines died with its
// leadership, and expiring leases at once would punish clients for a
// failover. Demote drops the deadlines.
//
// A Lessor is safe for concurrent use: the apply loop grants and revokes,
// while the leader's expiry loop and client keep-alives read and renew.
package lease
