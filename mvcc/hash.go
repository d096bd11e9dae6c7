package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
)

// HashKV is etcd's HashKV: a CRC-32C of the key-value history up to rev
// (0: the current revision), so that members can check that they hold the
// same data. It covers, in per-key history order (user key, then revision):
//
//   - for every key, its value as of the compacted revision, if it was live
//     then (what compaction keeps, etcd's "keep" set);
//   - every change of every key with compactRev < revision <= rev.
//
// Entries compaction left behind as garbage are not covered, so the hash
// depends only on the history itself: every member at the same revision and
// compacted revision returns the same hash, however it got there (applying
// the log or installing a snapshot).
//
// It returns the current and compacted revisions of the view it hashed. rev
// below the compacted revision is ErrCompacted, rev above the current one
// ErrFutureRev, a negative rev ErrInvalidRevision. It reads one consistent
// view and may be called from any goroutine; it reads the whole per-key
// history, so it costs a scan of the store.
func (s *Store) HashKV(rev int64) (hash uint32, currentRev, compactRev int64, err error) {
	if rev < 0 {
		return 0, 0, 0, fmt.Errorf("hashkv: %w: %d is negative", ErrInvalidRevision, rev)
	}
	v, err := s.openView()
	if err != nil {
		return 0, 0, 0, err
	}
	defer v.close()
	currentRev, compactRev = v.rev, v.compactRev
	switch {
	case rev == 0:
		rev = currentRev
	case rev > currentRev:
		return 0, currentRev, compactRev, fmt.Errorf("hashkv: %w", &FutureRevError{Requested: rev, Rev: currentRev})
	case rev < compactRev:
		return 0, currentRev, compactRev, fmt.Errorf("hashkv: %w", &CompactedError{Requested: rev, CompactRev: compactRev})
	}
	it, err := v.iter()
	if err != nil {
		return 0, currentRev, compactRev, err
	}
	h := crc32.New(crcTable)
	h.Write(keyRevStart) // the table hashed, as etcd starts with its bucket name
	var (
		group   []byte // per-key prefix (escaped key + terminator) of the current key
		keptK   []byte // newest entry of the current key at or below compactRev
		keptV   []byte
		hasKept bool
	)
	flushKept := func() {
		if hasKept && !isTombstone(keptV) {
			hashRecord(h, keptK, keptV)
		}
		hasKept = false
	}
	ok := it.SeekGE(keyRevStart)
	for ok && bytes.Compare(it.Key(), keyRevEnd) < 0 {
		k := it.Key()
		if len(k) < 2+2+16 {
			return 0, currentRev, compactRev, corrupt(k, "malformed per-key history key")
		}
		prefix := k[:len(k)-16]
		if !bytes.Equal(prefix, group) {
			flushKept()
			group = append(group[:0], prefix...)
		}
		main := int64(binary.BigEndian.Uint64(k[len(k)-16:]))
		if main > rev {
			// Nothing of this key beyond here counts: on to the next key.
			flushKept()
			ok = it.SeekGE(append(bytes.Clone(prefix[:len(prefix)-1]), escAfter))
			continue
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return 0, currentRev, compactRev, fmt.Errorf("mvcc: read %q: %w", k, err)
		}
		if main <= compactRev {
			keptK, keptV, hasKept = append(keptK[:0], k...), append(keptV[:0], val...), true
		} else {
			flushKept()
			hashRecord(h, k, val)
		}
		ok = it.Next()
	}
	if err := iterErr(it); err != nil {
		return 0, currentRev, compactRev, err
	}
	flushKept()
	return h.Sum32(), currentRev, compactRev, nil
}

// Hash is a CRC-32C of the whole state machine keyspace (every table of
// this package, and those other packages keep there: leases, member
// attributes, alarms), in key order, with the state record reduced to the
// current and compacted revisions: the applied raft index is this node's
// bookkeeping and is left out, so two members that applied the same entries
// match. Unlike HashKV it also covers compaction's leftovers, which are the
// same on members that applied the same entries, and on one that installed
// a snapshot of them. It reads one consistent view and may be called from
// any goroutine.
func (s *Store) Hash() (uint32, error) {
	snap := s.db.NewSnapshot()
	defer func() { _ = snap.Close() }()
	st, err := readState(snap)
	if err != nil {
		return 0, fmt.Errorf("mvcc: hash: %w", err)
	}
	if st.restoring {
		return 0, ErrRestoreIncomplete
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: keyspaceStart, UpperBound: keyspaceEnd})
	if err != nil {
		return 0, fmt.Errorf("mvcc: hash: %w", err)
	}
	defer it.Close()
	h := crc32.New(crcTable)
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if bytes.Equal(k, stateKey) {
			var revs [16]byte
			binary.BigEndian.PutUint64(revs[:], uint64(st.rev))
			binary.BigEndian.PutUint64(revs[8:], uint64(st.compactRev))
			hashRecord(h, k, revs[:])
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, fmt.Errorf("mvcc: hash: read %q: %w", k, err)
		}
		hashRecord(h, k, v)
	}
	if err := iterErr(it); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

// hashRecord adds one length-framed key and value to h.
func hashRecord(h hash.Hash32, k, v []byte) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
	h.Write(k)
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
	h.Write(v)
}
