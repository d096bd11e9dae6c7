// Package mvcc is cairn's multi-version key-value store: etcd v3's data
// model (revisions, Range, Put, DeleteRange, Txn, Compact, leases attached
// to keys) kept in Pebble. It knows nothing of raft: the state machine
// decodes committed entries into etcd requests and applies them through a
// Batch, the watch hub consumes the Revisions a commit returns and replays
// History, and the lease manager attaches keys with puts and deletes them
// with RevokeLease.
//
// # Revisions
//
// The store has one revision counter. An empty store is at revision 1, as
// in etcd. Every request that changes something creates exactly one new
// revision: a put, a delete range that deletes at least one key, a txn that
// writes at least once (however many writes: each gets the next sub
// revision, 0, 1, …, in execution order), a lease revoke that deletes at
// least one key. A request that changes nothing (a delete of no key, a
// read-only txn, a compaction) does not move the revision.
//
// Each key carries etcd's fields: create_revision (the revision that created
// this life of the key), mod_revision (the last change), version (1 on
// creation, +1 per put, and the key's life ends with a delete, after which a
// put starts a new life at version 1) and lease (0 for none).
//
// Compact(rev) forgets the history below rev: reads at revisions >= rev keep
// returning exactly what they did, reads below fail with ErrCompacted.
//
// # Layout in Pebble
//
// The Pebble instance is shared with the raft log, which owns the keys
// starting with 0x00. This package uses the keys starting with 0x01, then a
// table tag:
//
//	0x01 'k' key                   current index: key → KeyValue (live keys only)
//	0x01 'r' esc(key) 00 01 M S    per-key history: → KeyValue, or tombstone
//	0x01 'h' M S                   history: revision → event (type, KeyValue, PrevKv)
//	0x01 'l' L key                 lease index: lease L has key attached
//	0x01 'm' 's'                   state: revision, compacted revision,
//	                               applied raft index (with a CRC)
//
// Package kv keeps its own tables beside these, written through the batch
// (Batch.Set) so that they commit with the revision they belong to, and
// carried by snapshots like the rest of 0x01: 'L' leases, 'M' member
// attributes, 'A' alarms.
//
// M and S are the main and sub revision, 8 bytes big-endian, so that Pebble
// orders them numerically; esc(key) escapes 0x00 as 00 ff and the
// terminator 00 01 ends it, so that a key's entries are contiguous and keys
// keep their natural order (a user range is a Pebble range in every table).
//
// Each change writes three records, each serving one kind of read with no
// scan beyond what the read returns:
//
//   - a read at the current revision is one lookup (a range, one seek and a
//     step per key) in the current index;
//   - a read at a past revision R seeks, per key, to the key's newest
//     per-key history entry at or below R;
//   - watch replay reads the history in revision order; an event carries
//     the previous KeyValue, so replay needs no other lookup and PrevKv
//     survives compaction.
//
// The lease index makes "keys attached to lease L" a prefix scan. The state
// record is written in the same Pebble batch as the data of every commit,
// so after a crash the applied index and the data always agree: a restart
// never re-applies an entry nor skips one.
//
// Compaction to rev removes the history records below rev and, for the
// keys changed since the previous compaction, every per-key entry older
// than the newest one at or below rev, and that one too if it is a
// tombstone. The history records of revision rev itself stay, so History
// from the compacted revision is complete (a watcher told to resync from
// the compacted revision can).
//
// Nothing is indexed in memory: memory does not grow with the number of
// keys or of revisions.
//
// # Reads, writes and concurrency
//
// Store.Range, Store.History, Store.KeysWithLease and Store.Snapshot may be
// called from any goroutine. Each reads one Pebble snapshot together with
// the revision state of that same commit (from memory when no commit ran
// meanwhile, else from the snapshot's state record), so an answer and its
// header revision always agree, and a reader never sees half a batch.
//
// Writes go through a Batch, used by one goroutine, one batch at a time
// (the apply loop): NewBatch, any number of Put, DeleteRange, Txn, Compact,
// RevokeLease and Range (which sees the batch), then Commit(appliedIndex),
// one atomic Pebble write without fsync (the raft log is the durability;
// Pebble's shared WAL makes the batch durable with the next synced write).
// Commit returns the revisions created, for the watch hub.
//
// Bad input is refused before anything is read or written, with an error
// that matches one of the sentinel errors (errors.Is) and names what was
// wrong; a txn whose preconditions fail is refused whole. etcd's checks and
// messages are followed; where etcd accepts what the issue calls bad input
// (negative revision, range_end before key, oversized keys, unknown compare
// enums) this package refuses it.
//
// # Snapshots
//
// Store.Snapshot captures the keyspace at a point in time (a Pebble
// snapshot); Snapshot.WriteTo streams every table as it is, with a
// checksum. Store.Restore wipes the keyspace, loads a stream and records the
// applied index; an interrupted restore leaves the store refusing service
// with ErrRestoreIncomplete (and AppliedIndex 0) until a restore completes.
package mvcc
