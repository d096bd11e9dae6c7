package mvcc

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Batch applies a group of requests (typically the committed raft entries
// of one Ready) and commits them as one atomic Pebble write. Requests see
// the effect of earlier requests of the same batch; nothing is visible to
// Store readers before Commit.
//
// A Batch is used by one goroutine. Only one batch may be in flight: a batch
// created before another batch's (or a Restore's) commit is stale and its
// Commit fails. A request that fails validation or a precondition changes
// nothing and the batch stays usable; a failure half-way through writing a
// request (an I/O error) leaves the batch failed, and only Close works.
//
// Responses and events are new messages owned by the caller; a response and
// an event of the same request may share byte slices, which must not be
// modified in place.
type Batch struct {
	s   *Store
	pb  *pebble.Batch // indexed, so that reads see the batch
	seq uint64        // Store.mu.seq when the batch was created
	st  state         // revision state after the requests applied so far
	// revs are the revisions created by this batch, in order.
	revs []Revision
	err  error // sticky: the batch holds a half-written request
	done bool  // committed or closed
}

// NewBatch starts a batch on top of the committed store.
func (s *Store) NewBatch() *Batch {
	s.mu.Lock()
	seq, st := s.mu.seq, *s.st.Load()
	s.mu.Unlock()
	return &Batch{s: s, pb: s.db.NewIndexedBatch(), seq: seq, st: st}
}

// Rev is the current revision including the requests of this batch.
func (b *Batch) Rev() int64 { return b.st.rev }

// CompactRev is the compacted revision including this batch's compactions.
func (b *Batch) CompactRev() int64 { return b.st.compactRev }

func (b *Batch) usable() error {
	switch {
	case b.done:
		return ErrBatchClosed
	case b.err != nil:
		return b.err
	case b.st.restoring:
		return ErrRestoreIncomplete
	}
	return nil
}

// Commit writes the batch and the applied index in one atomic Pebble write
// without fsync: the raft log is what makes entries durable, and a later
// synced write to the same Pebble makes this one durable too. It returns the
// revisions the batch created, in order, for the watch hub. The batch is
// released whatever the outcome.
func (b *Batch) Commit(appliedIndex uint64) ([]Revision, error) {
	if err := b.usable(); err != nil {
		b.Close()
		return nil, err
	}
	defer b.Close()
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.seq != b.seq {
		return nil, ErrStaleBatch
	}
	if cur := s.st.Load().applied; appliedIndex < cur {
		return nil, fmt.Errorf("%w: %d after %d", ErrAppliedIndexRegress, appliedIndex, cur)
	}
	st := b.st
	st.applied = appliedIndex
	if err := b.pb.Set(stateKey, encodeState(st), nil); err != nil {
		return nil, fmt.Errorf("mvcc: commit: %w", err)
	}
	s.beginWriteLocked()
	if err := b.pb.Commit(pebble.NoSync); err != nil {
		// The generation stays odd: readers take the state from Pebble.
		return nil, fmt.Errorf("mvcc: commit: %w", err)
	}
	if s.afterPebbleWrite != nil {
		s.afterPebbleWrite()
	}
	s.st.Store(&st)
	s.endWriteLocked()
	s.mu.seq++
	return b.revs, nil
}

// Close releases the batch without committing it. It may be called more than
// once, and after Commit.
func (b *Batch) Close() {
	if b.done {
		return
	}
	b.done = true
	_ = b.pb.Close() // only reports misuse of a committing batch
}

// Range answers req from the store as this batch has left it.
func (b *Batch) Range(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if err := b.s.checkRange(req); err != nil {
		return nil, err
	}
	v := b.openView(b.st.rev)
	defer v.close()
	return v.rangeReq(req)
}

// KeysWithLease returns, in key order, the keys attached to lease as this
// batch has left the store.
func (b *Batch) KeysWithLease(lease int64) ([][]byte, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	v := b.openView(b.st.rev)
	defer v.close()
	return v.keysWithLease(lease)
}

// openView opens a view of the batch, whose current index reflects
// revision rev.
func (b *Batch) openView(rev int64) *view {
	return &view{r: b.pb, rev: rev, compactRev: b.st.compactRev}
}

// current returns the current KeyValue of key as the batch has left it, or
// nil: one point lookup.
func (b *Batch) current(key []byte) (*mvccpb.KeyValue, error) { return getCurrent(b.pb, key) }

// apply runs one request. f gets a writer for the request's revision; if f
// fails after writing, the batch is failed, because Pebble batches cannot
// roll back. If the request changed anything it becomes a revision.
func (b *Batch) apply(f func(w *writer) error) error {
	if err := b.usable(); err != nil {
		return err
	}
	w := &writer{b: b, rev: b.st.rev + 1}
	if err := f(w); err != nil {
		if w.dirty {
			b.err = fmt.Errorf("%w: %w", ErrBatchFailed, err)
			return b.err
		}
		return err
	}
	if len(w.events) > 0 {
		b.st.rev = w.rev
		b.revs = append(b.revs, Revision{Rev: w.rev, Events: w.events})
	}
	return nil
}
