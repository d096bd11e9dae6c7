package mvcc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// view is a consistent read view: a Pebble snapshot of the committed store
// or an indexed batch, and the revision state that goes with it. Point reads
// at the current revision are Pebble Gets (which stop at the newest level
// holding the key and use bloom filters); everything else goes through one
// iterator, opened on first use. A view over a batch must not be used after
// a later write to the batch.
type view struct {
	r  pebble.Reader
	it *pebble.Iterator // nil until a read needs it
	// rev is the revision the current index reflects; reads at rev are one
	// lookup in the current index, reads below it go to per-key history.
	rev        int64
	compactRev int64
	release    func() // frees r if the view owns it
}

// iter returns the view's iterator over the whole user keyspace.
func (v *view) iter() (*pebble.Iterator, error) {
	if v.it == nil {
		it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: keyspaceStart, UpperBound: keyspaceEnd})
		if err != nil {
			return nil, fmt.Errorf("mvcc: new iterator: %w", err)
		}
		v.it = it
	}
	return v.it, nil
}

func (v *view) close() {
	if v.it != nil {
		_ = v.it.Close() // read errors were reported by the reads
	}
	if v.release != nil {
		v.release()
	}
}

// resolveRev applies etcd's rules to a requested revision: above the view's
// revision is the future, zero means the view's revision, and below the
// compacted revision is gone (the compacted revision itself stays readable).
func (v *view) resolveRev(rev int64) (int64, error) {
	if rev > v.rev {
		return 0, &FutureRevError{Requested: rev, Rev: v.rev}
	}
	if rev <= 0 {
		rev = v.rev
	}
	if rev < v.compactRev {
		return 0, &CompactedError{Requested: rev, CompactRev: v.compactRev}
	}
	return rev, nil
}

// get returns the KeyValue of key at rev (already resolved), or nil if the
// key did not exist then. The result never aliases the caller's key.
func (v *view) get(key []byte, rev int64) (*mvccpb.KeyValue, error) {
	if rev == v.rev {
		return getCurrent(v.r, key)
	}
	it, err := v.iter()
	if err != nil {
		return nil, err
	}
	prefix := keyRevPrefix(key)
	if !it.SeekLT(keyRevKey(key, rev+1, 0)) || !bytes.HasPrefix(it.Key(), prefix) {
		return nil, iterErr(it)
	}
	val, err := it.ValueAndErr()
	if err != nil {
		return nil, fmt.Errorf("mvcc: read %q: %w", it.Key(), err)
	}
	return decodeKV(it.Key(), bytes.Clone(key), val)
}

// getCurrent returns key's current KeyValue from r, or nil: one point
// lookup in the current index.
func getCurrent(r pebble.Reader, key []byte) (*mvccpb.KeyValue, error) {
	k := currentKey(key)
	val, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mvcc: read %q: %w", k, err)
	}
	defer closer.Close()
	kv, err := decodeKV(k, bytes.Clone(key), val)
	if err == nil && kv == nil {
		err = corrupt(k, "tombstone in the current index")
	}
	return kv, err
}

// scan visits, in key order, the keys that existed at rev (already resolved)
// in the user range [key, end) with etcd's conventions: an empty end is the
// single key, "\x00" is every key >= key. It returns how many keys there are
// and decodes the first want of them (all if want < 0) for fn; fn returning
// false stops the scan early, and the count is then partial.
func (v *view) scan(key, end []byte, rev int64, want int, fn func(*mvccpb.KeyValue) bool) (int64, error) {
	if len(end) == 0 {
		kv, err := v.get(key, rev)
		if err != nil || kv == nil {
			return 0, err
		}
		if want != 0 {
			fn(kv)
		}
		return 1, nil
	}
	if rev == v.rev {
		return v.scanCurrent(key, end, want, fn)
	}
	return v.scanAt(key, end, rev, want, fn)
}

// scanCurrent scans the current index: one seek, then one step per key.
func (v *view) scanCurrent(key, end []byte, want int, fn func(*mvccpb.KeyValue) bool) (int64, error) {
	it, err := v.iter()
	if err != nil {
		return 0, err
	}
	lo, hi := currentBounds(key, end)
	var total int64
	for ok := it.SeekGE(lo); ok && bytes.Compare(it.Key(), hi) < 0; ok = it.Next() {
		total++
		if want >= 0 && total > int64(want) {
			continue // counted, not returned
		}
		k := it.Key()
		val, err := it.ValueAndErr()
		if err != nil {
			return 0, fmt.Errorf("mvcc: read %q: %w", k, err)
		}
		kv, err := decodeKV(k, bytes.Clone(k[2:]), val)
		if err != nil {
			return 0, err
		}
		if kv == nil {
			return 0, corrupt(k, "tombstone in the current index")
		}
		if !fn(kv) {
			return total, nil
		}
	}
	return total, iterErr(it)
}

// scanAt scans per-key history at a past revision. Per user key it seeks to
// the key's first entry; if that is after rev the key did not exist yet,
// otherwise a reverse seek lands on the key's last entry at or below rev.
// Then it skips to the next user key: a few seeks per key, however long the
// key's history.
func (v *view) scanAt(key, end []byte, rev int64, want int, fn func(*mvccpb.KeyValue) bool) (int64, error) {
	it, err := v.iter()
	if err != nil {
		return 0, err
	}
	hi := keyRevEnd
	if !isFromKey(end) {
		hi = keyRevPrefix(end)
	}
	var total int64
	ok := it.SeekGE(keyRevPrefix(key))
	for ok && bytes.Compare(it.Key(), hi) < 0 {
		user, main, _, good := parseKeyRevKey(it.Key())
		if !good {
			return 0, corrupt(it.Key(), "malformed per-key history key")
		}
		if main <= rev {
			if !it.SeekLT(keyRevKey(user, rev+1, 0)) {
				if err := iterErr(it); err != nil {
					return 0, err
				}
				return 0, fmt.Errorf("mvcc: per-key history of %q vanished during a scan", user)
			}
			val, err := it.ValueAndErr()
			if err != nil {
				return 0, fmt.Errorf("mvcc: read %q: %w", it.Key(), err)
			}
			if !isTombstone(val) {
				total++
				if want < 0 || total <= int64(want) {
					kv, err := decodeKV(it.Key(), user, val)
					if err != nil {
						return 0, err
					}
					if !fn(kv) {
						return total, nil
					}
				}
			}
		}
		ok = it.SeekGE(keyRevAfter(user))
	}
	return total, iterErr(it)
}

// keysWithLease lists the keys attached to lease, in key order.
func (v *view) keysWithLease(lease int64) ([][]byte, error) {
	it, err := v.iter()
	if err != nil {
		return nil, err
	}
	p := leasePrefix(lease)
	var keys [][]byte
	for ok := it.SeekGE(p); ok && bytes.HasPrefix(it.Key(), p); ok = it.Next() {
		keys = append(keys, bytes.Clone(it.Key()[len(p):]))
	}
	return keys, iterErr(it)
}

func iterErr(it *pebble.Iterator) error {
	if err := it.Error(); err != nil {
		return fmt.Errorf("mvcc: iterate: %w", err)
	}
	return nil
}
