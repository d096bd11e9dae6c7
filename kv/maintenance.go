package kv

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// HashKV answers etcd's HashKV from the local store (see mvcc.Store.HashKV):
// the hash of the key-value history up to rev (0: the current revision),
// the compacted revision, the revision hashed, and the current revision in
// the header. It waits out a snapshot restore in progress.
func (sm *StateMachine) HashKV(rev int64) (*pb.HashKVResponse, error) {
	done, err := sm.reading()
	if err != nil {
		return nil, err
	}
	defer done()
	h, cur, compact, err := sm.store.HashKV(rev)
	if err != nil {
		return nil, err
	}
	if rev == 0 {
		rev = cur
	}
	return &pb.HashKVResponse{
		Header: &pb.ResponseHeader{Revision: cur}, Hash: h, CompactRevision: compact, HashRevision: rev,
	}, nil
}

// Hash answers etcd's Hash: a hash of the whole state machine keyspace but
// this node's applied index (see mvcc.Store.Hash), so that members that
// applied the same entries match. It waits out a snapshot restore.
func (sm *StateMachine) Hash() (*pb.HashResponse, error) {
	done, err := sm.reading()
	if err != nil {
		return nil, err
	}
	defer done()
	rev := sm.store.Rev()
	h, err := sm.store.Hash()
	if err != nil {
		return nil, err
	}
	return &pb.HashResponse{Header: &pb.ResponseHeader{Revision: rev}, Hash: h}, nil
}

// Every key of the node's Pebble instance (raft log and state machine)
// lies in [pebbleStart, pebbleEnd).
var (
	pebbleStart = []byte{}
	pebbleEnd   = []byte{0xff}
)

// Size reports the node's Pebble instance: total is every byte it holds on
// disk (the raft log's and the state machine's, live or awaiting
// compaction: etcd's dbSize), inUse an estimate of the live part (the
// tables holding the keyspace and the live write-ahead log: etcd's
// dbSizeInUse). inUse never exceeds total. Defragment brings total down
// towards inUse. Once the node stopped both are 0.
func (sm *StateMachine) Size() (total, inUse int64) {
	done, err := sm.reading()
	if err != nil {
		return 0, 0
	}
	defer done()
	m := sm.db.Metrics()
	total = int64(m.DiskSpaceUsage())
	tables, err := sm.db.EstimateDiskUsage(pebbleStart, pebbleEnd)
	if err != nil {
		return total, total
	}
	return total, min(total, int64(tables+m.WAL.Size))
}

// Defragment compacts the node's whole Pebble instance (raft log and state
// machine), which rewrites the live data and drops what deletions,
// overwrites and compactions left behind: etcd's defragment. It runs
// alongside reads and writes, and returns when the compaction is done or
// ctx ends. Once the node stopped it fails with ErrClosed.
func (sm *StateMachine) Defragment(ctx context.Context) error {
	done, err := sm.reading()
	if err != nil {
		return err
	}
	defer done()
	if err := sm.db.Compact(ctx, pebbleStart, pebbleEnd, true); err != nil {
		return fmt.Errorf("kv: defragment: %w", err)
	}
	return nil
}
