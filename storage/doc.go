// Package storage keeps a node's raft state on disk: the log, the HardState,
// the node's identity and its snapshots.
//
// # Layout
//
// A node's data directory holds one Pebble instance (db/) and a directory of
// snapshot files (snap/):
//
//	<data-dir>/LOCK       held while a process uses the directory
//	<data-dir>/db/        Pebble: raft log, HardState, metadata, state machine data
//	<data-dir>/snap/      <term>-<index>.snap, and .part files of transfers in progress
//
// Keys that begin with 0x00 belong to this package; a state machine that keeps
// its data in the same Pebble instance (see Store.DB) uses any other prefix.
// Sharing one instance means sharing one write-ahead log: a synced write
// makes every earlier write durable too, so the log and the state machine
// need one fsync between them, not two.
//
// Every value written here carries a CRC-32C of its bytes, and a log entry's
// key is checked against the index inside it. Open reads the whole log
// (bounded by snapshots and compaction) and stops with an error naming the
// directory and the index of the first bad record: a corrupt log is never
// skipped.
//
// # Reads and writes
//
// Store implements raft.Storage for the raft goroutine, while one writer
// goroutine calls Write, and a snapshotter calls SetSnapshot and Compact. A
// mutex guards the in-memory view (first and last index, HardState, the
// latest snapshot, a bounded cache of recent entries); disk I/O happens
// outside it. Memory does not grow with the length of the log: entries older
// than the cache are read back from Pebble.
//
// # Snapshot files
//
// A snapshot file holds the raft snapshot metadata, an opaque context the
// engine uses for membership, and the state machine's data, followed by a
// trailer with the data length and a CRC-32C of everything before it.
// Files are written under a temporary name, fsynced and renamed, so a crash
// never leaves a half-written snapshot that looks complete. Store implements
// transport.SnapshotStore: a transfer writes into a .part file and resumes
// from its length after an interruption; Commit verifies the checksum before
// the file becomes a snapshot.
package storage
