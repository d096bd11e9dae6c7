package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// compactDedup bounds the set of keys one compaction remembers having
// cleaned, so that a hot key is cleaned once rather than once per event.
const compactDedup = 4096

// Compact discards the history below rev. Afterwards reads at revisions >=
// rev return exactly what they returned before, reads below rev and History
// from below rev fail with ErrCompacted, and History from rev still returns
// every event of rev. Compaction creates no revision.
//
// rev above the current revision is ErrFutureRev; rev at or below the
// compacted revision is ErrCompacted (as etcd, which starts at -1, does for
// every rev <= the last one; here a store never compacted is at 0).
func (b *Batch) Compact(rev int64) (*pb.CompactionResponse, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	switch {
	case rev < 0:
		return nil, fmt.Errorf("compact: %w: %d is negative", ErrInvalidRevision, rev)
	case rev > b.st.rev:
		return nil, fmt.Errorf("compact: %w", &FutureRevError{Requested: rev, Rev: b.st.rev})
	case rev <= b.st.compactRev:
		return nil, fmt.Errorf("compact: %w", &CompactedError{Requested: rev, CompactRev: b.st.compactRev})
	}
	if err := b.compact(b.st.compactRev, rev); err != nil {
		// Some deletions may be in the batch already.
		b.err = fmt.Errorf("%w: compact to %d: %w", ErrBatchFailed, rev, err)
		return nil, b.err
	}
	b.st.compactRev = rev
	return &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: b.st.rev}}, nil
}

// compact moves the compaction point from `from` (the previous compacted
// revision) to `to`. The history records in [from, to) name every key that
// changed since the last compaction; those are the only keys whose per-key
// history can hold entries that reads at >= to no longer need (for every
// other key the last compaction left at most one entry at or below from).
// For each such key, the newest entry at or below `to` is kept unless it is
// a tombstone, and everything older goes. Then the history records below
// `to` go, in one range deletion; those at `to` stay for History(to).
//
// Entries of keys whose only change since `from` is at `to` itself are left
// for the next compaction: reads never look below their newest entry at or
// below the revision read, so leftovers are garbage, never wrong answers.
func (b *Batch) compact(from, to int64) error {
	opts := &pebble.IterOptions{LowerBound: keyspaceStart, UpperBound: keyspaceEnd}
	// Both iterators see the batch as it is now and none of the deletions
	// below, which only touch entries they have already passed or will never
	// need.
	hist, err := b.pb.NewIter(opts)
	if err != nil {
		return err
	}
	defer hist.Close()
	revs, err := b.pb.NewIter(opts)
	if err != nil {
		return err
	}
	defer revs.Close()

	end := historyKey(to, 0)
	done := make(map[string]struct{})
	for ok := hist.SeekGE(historyKey(from, 0)); ok && bytes.Compare(hist.Key(), end) < 0; ok = hist.Next() {
		v, err := hist.ValueAndErr()
		if err != nil {
			return err
		}
		key, err := eventKey(hist.Key(), v)
		if err != nil {
			return err
		}
		if _, seen := done[string(key)]; seen {
			continue
		}
		if len(done) >= compactDedup {
			clear(done)
		}
		done[string(key)] = struct{}{}
		if err := b.compactKey(revs, key, to); err != nil {
			return err
		}
	}
	if err := iterErr(hist); err != nil {
		return err
	}
	return b.pb.DeleteRange(historyStart, end, nil)
}

// compactKey deletes the per-key history entries of key that no read at a
// revision >= at can reach.
func (b *Batch) compactKey(it *pebble.Iterator, key []byte, at int64) error {
	prefix := keyRevPrefix(key)
	if !it.SeekLT(keyRevKey(key, at+1, 0)) || !bytes.HasPrefix(it.Key(), prefix) {
		return iterErr(it) // nothing at or below at: cleaned already
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return err
	}
	if isTombstone(v) {
		if err := b.pb.Delete(it.Key(), nil); err != nil {
			return err
		}
	}
	for it.Prev() && bytes.HasPrefix(it.Key(), prefix) {
		if err := b.pb.Delete(it.Key(), nil); err != nil {
			return err
		}
	}
	return iterErr(it)
}

// eventKey returns the user key of a history record without decoding the
// rest of it.
func eventKey(pebbleKey, v []byte) ([]byte, error) {
	if len(v) < 1 {
		return nil, corrupt(pebbleKey, "empty event record")
	}
	klen, n := binary.Uvarint(v[1:])
	if n <= 0 || uint64(len(v)-1-n) < klen {
		return nil, corrupt(pebbleKey, "truncated event key")
	}
	return bytes.Clone(v[1+n : 1+n+int(klen)]), nil
}
