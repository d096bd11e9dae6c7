package mvcc

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Defaults for Options.
const (
	// DefaultMaxTxnOps is etcd's default --max-txn-ops.
	DefaultMaxTxnOps = 128
	// DefaultMaxKeyBytes bounds keys and range ends. etcd has no separate key
	// limit (only the 1.5 MiB request limit); keys this long are already
	// pathological for an LSM.
	DefaultMaxKeyBytes = 32 << 10
	// DefaultMaxValueBytes is etcd's default --max-request-bytes (1.5 MiB).
	DefaultMaxValueBytes = 3 << 19
)

// Options configures a Store. The zero value means every default.
//
// Requests are validated when they are applied, on every replica, so every
// node of a cluster must run with the same Options: a request refused on
// one node and applied on another would make the replicas diverge. (The
// server may also check requests before proposing them, to fail fast.)
type Options struct {
	// MaxTxnOps bounds the compares and the operations of each branch of a
	// txn, as etcd's --max-txn-ops does (nested txns included, with etcd's
	// accounting).
	MaxTxnOps int
	// MaxKeyBytes bounds every key and range end of a request.
	MaxKeyBytes int
	// MaxValueBytes bounds every value of a put.
	MaxValueBytes int
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxTxnOps < 0 || o.MaxKeyBytes < 0 || o.MaxValueBytes < 0 {
		return o, fmt.Errorf("mvcc: negative limit in options %+v", o)
	}
	if o.MaxTxnOps == 0 {
		o.MaxTxnOps = DefaultMaxTxnOps
	}
	if o.MaxKeyBytes == 0 {
		o.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if o.MaxValueBytes == 0 {
		o.MaxValueBytes = DefaultMaxValueBytes
	}
	return o, nil
}

// Revision is one store revision as a watcher sees it: every event of one
// request, in sub-revision order. Events always carry PrevKv when the key
// existed before the event; a watch that did not ask for it strips it.
type Revision struct {
	Rev    int64
	Events []*mvccpb.Event
}

// Store is the multi-version key-value store. Reads (Range, History,
// KeysWithLease, Snapshot and the revision getters) may be called from any
// goroutine at any time. Writes go through a Batch; batches and Restore are
// the business of one goroutine, the apply loop, one at a time.
type Store struct {
	db   *pebble.DB
	opts Options

	// st is the state of the last Commit or Restore that returned.
	st atomic.Pointer[state]
	// gen is odd while a Commit or Restore is writing to Pebble and even
	// otherwise, and moves on with each. A reader that reads the same even
	// gen before loading st and after taking its Pebble snapshot knows that
	// st describes the snapshot; otherwise it reads the state record from
	// the snapshot. A failed write leaves gen odd until a write succeeds.
	gen atomic.Uint64

	// afterPebbleWrite, if set (by tests), runs in Commit between the Pebble
	// write and the publication of the new state: the window openView's
	// generation check must cover.
	afterPebbleWrite func()

	// mu serialises Commit and Restore; it is never held by readers.
	mu struct {
		sync.Mutex
		// seq counts commits and restores; a batch remembers the seq it
		// started from, and a batch built on an older seq is stale.
		seq uint64
	}
}

// Open returns the store kept in db's user keyspace (keys starting with
// 0x01). The caller owns db and closes it after the last use of the store;
// the store itself holds no resources. A store that was never written is at
// revision 1. A state record that cannot be decoded is an error naming it.
func Open(db *pebble.DB, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("mvcc: open: nil pebble.DB")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	st, err := readState(db)
	if err != nil {
		return nil, fmt.Errorf("mvcc: open: %w", err)
	}
	s := &Store{db: db, opts: o}
	s.st.Store(&st)
	return s, nil
}

// readState reads the state record from r.
func readState(r pebble.Reader) (state, error) {
	v, closer, err := r.Get(stateKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return freshState, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("read %q: %w", stateKey, err)
	}
	defer closer.Close()
	return decodeState(v)
}

// Rev returns the current revision as of the last Commit or Restore.
func (s *Store) Rev() int64 { return s.st.Load().rev }

// CompactRev returns the compacted revision (0 if the store was never
// compacted) as of the last Commit or Restore.
func (s *Store) CompactRev() int64 { return s.st.Load().compactRev }

// AppliedIndex returns the raft index stored with the last Commit or
// Restore. It is 0 while a Restore is incomplete, so that an engine
// restarting after a crash in the middle of one restores again.
func (s *Store) AppliedIndex() uint64 {
	st := s.st.Load()
	if st.restoring {
		return 0
	}
	return st.applied
}

// openView returns a point-in-time view of the committed store: a Pebble
// snapshot and the revision state it holds, so that an answer and its
// header revision always come from the same commit. The state comes from
// memory when no write ran meanwhile (see Store.gen), otherwise from the
// snapshot's state record.
func (s *Store) openView() (*view, error) {
	g := s.gen.Load()
	st := *s.st.Load()
	snap := s.db.NewSnapshot()
	if g%2 == 1 || s.gen.Load() != g {
		var err error
		if st, err = readState(snap); err != nil {
			_ = snap.Close()
			return nil, err
		}
	}
	if st.restoring {
		_ = snap.Close()
		return nil, ErrRestoreIncomplete
	}
	return &view{r: snap, rev: st.rev, compactRev: st.compactRev, release: func() { _ = snap.Close() }}, nil
}

// beginWriteLocked makes gen odd before a write to Pebble; s.mu is held.
func (s *Store) beginWriteLocked() {
	if s.gen.Load()%2 == 0 {
		s.gen.Add(1)
	}
}

// endWriteLocked makes gen even after a successful write; s.mu is held.
func (s *Store) endWriteLocked() { s.gen.Add(1) }

// Range answers req from the committed store, at req.Revision or the current
// revision. It is safe to call from any goroutine.
func (s *Store) Range(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := s.checkRange(req); err != nil {
		return nil, err
	}
	v, err := s.openView()
	if err != nil {
		return nil, err
	}
	defer v.close()
	return v.rangeReq(req)
}

// KeysWithLease returns, in key order, the keys currently attached to lease.
func (s *Store) KeysWithLease(lease int64) ([][]byte, error) {
	v, err := s.openView()
	if err != nil {
		return nil, err
	}
	defer v.close()
	return v.keysWithLease(lease)
}
