package storage

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

var _ raft.Storage = (*Store)(nil)

// Update is one step of the raft log to persist: what a MsgStorageAppend
// carries. Entries replace any entries at the same or later indexes.
type Update struct {
	Entries   []*raftpb.Entry
	HardState *raftpb.HardState // nil: unchanged
	Snapshot  *raftpb.Snapshot  // nil: none; else installs it and empties the log up to it
}

// Write persists updates, in order, as one atomic Pebble batch. With sync it
// returns once the batch, and every write before it, is on stable storage;
// without, once it is in Pebble's write-ahead log buffer (lost on a crash
// until the next synced write or Sync). A batch that installs a snapshot is
// always synced: it removes older snapshot files, which a crash must not
// leave the log pointing to.
//
// The caller is the node's single log writer; the entries must not be
// modified afterwards (the cache keeps them).
func (s *Store) Write(updates []Update, sync bool) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	s.mu.Lock()
	v := view{truncIdx: s.mu.truncIdx, truncTerm: s.mu.truncTerm, last: s.mu.last, lastTerm: s.mu.lastTerm, hs: s.mu.hardState}
	s.mu.Unlock()

	b := s.db.NewBatch()
	defer b.Close()
	var snap *raftpb.Snapshot
	for _, u := range updates {
		if u.Snapshot != nil && u.Snapshot.GetMetadata().GetIndex() > 0 {
			m := proto.CloneOf(u.Snapshot.GetMetadata())
			// The log is emptied in favour of the snapshot: its file must be
			// there and intact first, or the store could not open again.
			if err := s.snaps.verify(m.GetTerm(), m.GetIndex()); err != nil {
				return err
			}
			if err := b.DeleteRange(logKey(0), logUpperBound, nil); err != nil {
				return err
			}
			v.truncIdx, v.truncTerm = m.GetIndex(), m.GetTerm()
			v.last, v.lastTerm = m.GetIndex(), m.GetTerm()
			trunc := &raftpb.Entry{Index: new(m.GetIndex()), Term: new(m.GetTerm())}
			if err := b.Set(truncatedKey, sealProto(trunc), nil); err != nil {
				return err
			}
			meta := &raftpb.Snapshot{Metadata: m}
			if err := b.Set(snapshotKey, sealProto(meta), nil); err != nil {
				return err
			}
			snap = meta
			v.hs = raiseCommit(v.hs, m.GetIndex())
			if err := b.Set(hardStateKey, sealProto(v.hs), nil); err != nil {
				return err
			}
			v.cacheOps = append(v.cacheOps, nil) // nil: the snapshot empties the log
		}
		if ents := u.Entries; len(ents) > 0 {
			for len(ents) > 0 && ents[0].GetIndex() <= v.truncIdx {
				ents = ents[1:] // already covered by a snapshot
			}
			if len(ents) > 0 {
				if err := v.append(b, ents); err != nil {
					return err
				}
			}
		}
		if u.HardState != nil && !isEmptyHardState(u.HardState) {
			v.hs = raiseCommit(proto.CloneOf(u.HardState), v.hs.GetCommit())
			if err := b.Set(hardStateKey, sealProto(v.hs), nil); err != nil {
				return err
			}
		}
	}
	opts := pebble.NoSync
	if sync || snap != nil {
		opts = pebble.Sync
	}
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("storage: write log in %s: %w", s.dbDir, err)
	}

	s.mu.Lock()
	for _, ents := range v.cacheOps {
		if ents == nil {
			s.mu.cache.clear()
		} else {
			s.mu.cache.append(ents)
		}
	}
	if snap != nil {
		s.mu.snapshot = snap
	}
	s.mu.truncIdx, s.mu.truncTerm = v.truncIdx, v.truncTerm
	s.mu.last, s.mu.lastTerm = v.last, v.lastTerm
	s.mu.hardState = v.hs
	s.mu.Unlock()
	if snap != nil {
		return s.snaps.prune(snap.GetMetadata().GetIndex())
	}
	return nil
}

// view is the log's shape as a Write batch changes it.
type view struct {
	truncIdx, truncTerm uint64
	last, lastTerm      uint64
	hs                  *raftpb.HardState
	cacheOps            [][]*raftpb.Entry // appended runs, in order; nil where a snapshot emptied the log
}

func (v *view) append(b *pebble.Batch, ents []*raftpb.Entry) error {
	first := ents[0].GetIndex()
	if first > v.last+1 {
		return fmt.Errorf("storage: append at %d leaves a gap after the last entry %d", first, v.last)
	}
	newLast := ents[len(ents)-1].GetIndex()
	if newLast < v.last {
		if err := b.DeleteRange(logKey(newLast+1), logKey(v.last+1), nil); err != nil {
			return err
		}
	}
	for _, e := range ents {
		p, err := proto.Marshal(e)
		if err != nil {
			return fmt.Errorf("storage: encode entry %d: %w", e.GetIndex(), err)
		}
		if err := b.Set(logKey(e.GetIndex()), seal(p), nil); err != nil {
			return err
		}
	}
	v.last, v.lastTerm = newLast, ents[len(ents)-1].GetTerm()
	v.cacheOps = append(v.cacheOps, ents)
	return nil
}

// raiseCommit returns hs with its commit index at least c. A commit index
// only grows; snapshots and the apply loop may know of a higher one than the
// last HardState written.
func raiseCommit(hs *raftpb.HardState, c uint64) *raftpb.HardState {
	if hs.GetCommit() >= c {
		return hs
	}
	out := proto.CloneOf(hs)
	out.Commit = new(c)
	return out
}

// Sync makes every earlier Write durable.
func (s *Store) Sync() error {
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("storage: sync %s: %w", s.dbDir, err)
	}
	return nil
}

// Compact removes the entries up to and including index, keeping index's
// term for raft's log matching. The caller makes sure a snapshot covers
// index. Compacting at or below the current point is a no-op.
func (s *Store) Compact(index uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	truncIdx, last := s.mu.truncIdx, s.mu.last
	s.mu.Unlock()
	if index <= truncIdx {
		return nil
	}
	if index > last {
		return fmt.Errorf("storage: compact to %d beyond the last entry %d", index, last)
	}
	term, err := s.Term(index)
	if err != nil {
		return fmt.Errorf("storage: compact to %d: %w", index, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(logKey(truncIdx+1), logKey(index+1), nil); err != nil {
		return err
	}
	if err := b.Set(truncatedKey, sealProto(&raftpb.Entry{Index: new(index), Term: new(term)}), nil); err != nil {
		return err
	}
	// Readers learn of the compaction before the entries vanish, so that a
	// read racing with it reports ErrCompacted rather than a missing entry.
	s.mu.Lock()
	prevIdx, prevTerm := s.mu.truncIdx, s.mu.truncTerm
	s.mu.truncIdx, s.mu.truncTerm = index, term
	s.mu.cache.dropBefore(index + 1)
	s.mu.Unlock()
	if err := b.Commit(pebble.NoSync); err != nil {
		s.mu.Lock()
		s.mu.truncIdx, s.mu.truncTerm = prevIdx, prevTerm // the entries are still there
		s.mu.Unlock()
		return fmt.Errorf("storage: compact %s to %d: %w", s.dbDir, index, err)
	}
	return nil
}

// InitialState implements raft.Storage.
func (s *Store) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.mu.snapshot.GetMetadata().GetConfState()
	if cs == nil {
		cs = &raftpb.ConfState{}
	}
	return proto.CloneOf(s.mu.hardState), proto.CloneOf(cs), nil
}

// HardState returns the last HardState written.
func (s *Store) HardState() *raftpb.HardState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.CloneOf(s.mu.hardState)
}

// FirstIndex implements raft.Storage.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.truncIdx + 1, nil
}

// LastIndex implements raft.Storage.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.last, nil
}

// Snapshot implements raft.Storage: the metadata of the latest snapshot.
// Its data is streamed from the snapshot file by the transport.
func (s *Store) Snapshot() (*raftpb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.CloneOf(s.mu.snapshot), nil
}

// Term implements raft.Storage.
func (s *Store) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	switch {
	case i == s.mu.truncIdx:
		t := s.mu.truncTerm
		s.mu.Unlock()
		return t, nil
	case i < s.mu.truncIdx:
		s.mu.Unlock()
		return 0, raft.ErrCompacted
	case i > s.mu.last:
		s.mu.Unlock()
		return 0, raft.ErrUnavailable
	}
	if e := s.mu.cache.get(i); e != nil {
		s.mu.Unlock()
		return e.GetTerm(), nil
	}
	s.mu.Unlock()
	ents, err := s.readEntries(i, i+1, 0)
	if err != nil {
		return 0, err
	}
	return ents[0].GetTerm(), nil
}

// Entries implements raft.Storage.
func (s *Store) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	s.mu.Lock()
	if lo <= s.mu.truncIdx {
		s.mu.Unlock()
		return nil, raft.ErrCompacted
	}
	if hi > s.mu.last+1 || lo > hi {
		s.mu.Unlock()
		return nil, raft.ErrUnavailable
	}
	if lo == hi {
		s.mu.Unlock()
		return nil, nil
	}
	if s.mu.cache.has(lo, hi) {
		out := make([]*raftpb.Entry, 0, min(hi-lo, 256))
		var size uint64
		for i := lo; i < hi; i++ {
			e := s.mu.cache.get(i)
			size += uint64(proto.Size(e))
			if len(out) > 0 && size > maxSize {
				break
			}
			out = append(out, e)
		}
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()
	return s.readEntries(lo, hi, maxSize)
}

// readEntries reads [lo, hi) from Pebble, stopping after maxSize bytes
// (always returning at least one entry).
func (s *Store) readEntries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKey(lo), UpperBound: logKey(hi)})
	if err != nil {
		return nil, fmt.Errorf("storage: read log %s: %w", s.dbDir, err)
	}
	defer it.Close()
	var out []*raftpb.Entry
	var size uint64
	next := lo
	for valid := it.First(); valid; valid = it.Next() {
		idx, _ := logKeyIndex(it.Key())
		if idx != next {
			break
		}
		e, err := decodeEntry(idx, it.Value())
		if err != nil {
			return nil, fmt.Errorf("%w: %s: log entry %d: %v", ErrCorrupt, s.dbDir, idx, err)
		}
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			return out, nil
		}
		out = append(out, e)
		next++
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("storage: read log %s at %d: %w", s.dbDir, next, err)
	}
	if next < hi {
		// A compaction may have removed the entries while we read.
		s.mu.Lock()
		compacted := next <= s.mu.truncIdx
		s.mu.Unlock()
		if compacted {
			return nil, raft.ErrCompacted
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: %s: log entry %d: %v", ErrCorrupt, s.dbDir, next, errUnknownEntry)
		}
	}
	return out, nil
}

// Status describes the log for Status reports.
type Status struct {
	FirstIndex, LastIndex uint64
	SnapshotIndex         uint64
	Commit                uint64
}

// Status returns the log's current bounds.
func (s *Store) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{
		FirstIndex:    s.mu.truncIdx + 1,
		LastIndex:     s.mu.last,
		SnapshotIndex: s.mu.snapshot.GetMetadata().GetIndex(),
		Commit:        s.mu.hardState.GetCommit(),
	}
}
