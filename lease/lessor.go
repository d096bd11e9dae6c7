package lease

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Errors callers test for.
var (
	ErrNotFound     = errors.New("lease: lease not found")
	ErrExists       = errors.New("lease: lease already exists")
	ErrNotLeader    = errors.New("lease: not the leader; keep-alives and expiry are the leader's")
	ErrTTLTooLarge  = errors.New("lease: TTL is too large")
	ErrInvalidID    = errors.New("lease: invalid lease id")
	errCorruptLease = errors.New("lease: corrupt lease record")
)

// MaxTTL is the largest TTL in seconds a lease may have (etcd's limit).
const MaxTTL = 9_000_000_000

// keyPrefix is the table of lease records in the node's Pebble keyspace
// (0x00 is the raft log's; 0x01 is the state machine's, whose tag 'L' is
// this table).
var keyPrefix = []byte{0x01, 'L'}

func recordKey(id int64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), keyPrefix...), uint64(id))
}

// Writer is the batch an apply writes to: a *pebble.Batch satisfies it.
type Writer interface {
	Set(key, value []byte, _ *pebble.WriteOptions) error
	Delete(key []byte, _ *pebble.WriteOptions) error
}

// Lease is one lease as callers see it.
type Lease struct {
	ID int64
	// TTL is the granted time to live, in seconds.
	TTL int64
	// Remaining is the time left before expiry. It is exact on the leader;
	// elsewhere it is the TTL (followers do not track time).
	Remaining time.Duration
}

type lease struct {
	ttl      int64
	deadline time.Time // zero unless this node is the leader
}

// Lessor holds the leases of one node. See the package doc.
type Lessor struct {
	now       func() time.Time
	minTTL    int64
	mu        sync.Mutex
	leases    map[int64]*lease
	primary   bool
	revoking  map[int64]time.Time // expired leases whose revocation was handed out, and when
	retryWait time.Duration
}

// Options tune a Lessor.
type Options struct {
	// MinTTL raises shorter TTLs to it, in seconds, so that a lease survives
	// a leader election (etcd uses 1.5 × election timeout). Default 1.
	MinTTL int64
	// RetryRevoke is how long an expired lease whose revocation was handed out
	// waits before Expired returns it again (the proposal may have been
	// lost). Default 3 s.
	RetryRevoke time.Duration
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Open loads the lease records from db.
func Open(db pebble.Reader, opts Options) (*Lessor, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MinTTL <= 0 {
		opts.MinTTL = 1
	}
	if opts.RetryRevoke <= 0 {
		opts.RetryRevoke = 3 * time.Second
	}
	l := &Lessor{now: opts.Now, minTTL: opts.MinTTL, retryWait: opts.RetryRevoke,
		leases: map[int64]*lease{}, revoking: map[int64]time.Time{}}
	if err := l.load(db); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Lessor) load(db pebble.Reader) error {
	upper := append(append([]byte(nil), keyPrefix[:1]...), keyPrefix[1]+1)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: keyPrefix, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("lease: read leases: %w", err)
	}
	defer it.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases = map[int64]*lease{}
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(keyPrefix)+8 || len(v) != 8 {
			return fmt.Errorf("%w: key %x", errCorruptLease, k)
		}
		id := int64(binary.BigEndian.Uint64(k[len(keyPrefix):]))
		l.leases[id] = &lease{ttl: int64(binary.BigEndian.Uint64(v))}
	}
	return it.Error()
}

// Reload replaces the leases with those in db, after a snapshot restore.
// Deadlines restart if this node leads.
func (l *Lessor) Reload(db pebble.Reader) error {
	if err := l.load(db); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.primary {
		now := l.now()
		for _, ls := range l.leases {
			ls.deadline = now.Add(ttlDuration(ls.ttl))
		}
	}
	return nil
}

// Grant creates lease id with ttl seconds, writing it to w. It runs in the
// apply loop: the id was chosen by the proposer.
func (l *Lessor) Grant(w Writer, id, ttl int64) (Lease, error) {
	if id <= 0 {
		return Lease{}, fmt.Errorf("%w: %d", ErrInvalidID, id)
	}
	if ttl > MaxTTL {
		return Lease{}, fmt.Errorf("%w: %d s (at most %d)", ErrTTLTooLarge, ttl, int64(MaxTTL))
	}
	ttl = max(ttl, l.minTTL)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.leases[id]; ok {
		return Lease{}, fmt.Errorf("%w: %d", ErrExists, id)
	}
	if err := w.Set(recordKey(id), binary.BigEndian.AppendUint64(nil, uint64(ttl)), nil); err != nil {
		return Lease{}, fmt.Errorf("lease: grant %d: %w", id, err)
	}
	ls := &lease{ttl: ttl}
	if l.primary {
		ls.deadline = l.now().Add(ttlDuration(ttl))
	}
	l.leases[id] = ls
	return l.viewLocked(id, ls), nil
}

// Revoke removes lease id, writing the removal to w. The caller deletes the
// keys attached to it in the same batch (one revision).
func (l *Lessor) Revoke(w Writer, id int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.leases[id]; !ok {
		return fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err := w.Delete(recordKey(id), nil); err != nil {
		return fmt.Errorf("lease: revoke %d: %w", id, err)
	}
	delete(l.leases, id)
	delete(l.revoking, id)
	return nil
}

// Exists reports whether lease id exists (as of the last apply).
func (l *Lessor) Exists(id int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.leases[id]
	return ok
}

// Renew restarts lease id's deadline (a keep-alive) and returns its TTL. Only
// the leader renews.
func (l *Lessor) Renew(id int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return 0, ErrNotLeader
	}
	ls, ok := l.leases[id]
	if !ok {
		return 0, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if _, expired := l.revoking[id]; expired {
		return 0, fmt.Errorf("%w: %d (expired)", ErrNotFound, id)
	}
	ls.deadline = l.now().Add(ttlDuration(ls.ttl))
	return ls.ttl, nil
}

// Lookup returns lease id.
func (l *Lessor) Lookup(id int64) (Lease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls, ok := l.leases[id]
	if !ok {
		return Lease{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return l.viewLocked(id, ls), nil
}

// List returns every lease, by id.
func (l *Lessor) List() []Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Lease, 0, len(l.leases))
	for id, ls := range l.leases {
		out = append(out, l.viewLocked(id, ls))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (l *Lessor) viewLocked(id int64, ls *lease) Lease {
	v := Lease{ID: id, TTL: ls.ttl, Remaining: ttlDuration(ls.ttl)}
	if l.primary {
		v.Remaining = max(ls.deadline.Sub(l.now()), 0)
	}
	return v
}

// Promote makes this node the one that keeps time: every lease gets a
// deadline of its full TTL plus extend from now.
func (l *Lessor) Promote(extend time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.primary = true
	now := l.now()
	for _, ls := range l.leases {
		ls.deadline = now.Add(ttlDuration(ls.ttl) + extend)
	}
	clear(l.revoking)
}

// Demote stops keeping time (this node is no longer the leader).
func (l *Lessor) Demote() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.primary = false
	for _, ls := range l.leases {
		ls.deadline = time.Time{}
	}
	clear(l.revoking)
}

// Expired returns the leases whose deadline has passed and whose revocation
// the caller should now propose, at most limit of them. A lease handed out
// is not handed out again for RetryRevoke, unless it is still there then
// (the proposal was lost). Only the leader has expired leases.
func (l *Lessor) Expired(limit int) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return nil
	}
	now := l.now()
	var out []int64
	for id, ls := range l.leases {
		if len(out) >= limit {
			break
		}
		if now.Before(ls.deadline) {
			continue
		}
		if at, ok := l.revoking[id]; ok && now.Sub(at) < l.retryWait {
			continue
		}
		l.revoking[id] = now
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func ttlDuration(ttl int64) time.Duration {
	if ttl > math.MaxInt64/int64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ttl) * time.Second
}
