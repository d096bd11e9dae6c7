package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/lease"
	"github.com/cairn-db/cairn/watch"
)

// ErrLost: the lease under a Mutex ended (it expired, or was revoked)
// before the Mutex was acquired.
var ErrLost = errors.New("lock: lease lost")

// Session is a lease kept alive in the background. A Mutex held through a
// session stays held for as long as the lease lives: if the holder dies,
// or cannot reach the cluster for longer than the TTL, the lease expires,
// its key goes, and the next waiter gets the lock.
type Session struct {
	kv     cairn.KV
	id     int64
	ttl    time.Duration
	cancel context.CancelFunc
	done   chan struct{} // closed when renewals stop
	mu     sync.Mutex
	err    error // why renewals stopped, guarded by mu
}

// NewSession grants a lease of ttl seconds and renews it every ttl/3 until
// Close, Orphan, or the lease is found gone.
func NewSession(ctx context.Context, db cairn.KV, ttl int64) (*Session, error) {
	g, err := db.Grant(ctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("lock: grant: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	s := &Session{kv: db, id: g.ID, ttl: time.Duration(g.TTL) * time.Second, cancel: cancel, done: make(chan struct{})}
	go s.renew(rctx)
	return s, nil
}

// Lease is the session's lease id.
func (s *Session) Lease() int64 { return s.id }

// Done is closed when the session stops renewing its lease: after Close or
// Orphan, or once the lease is gone (Err then says why).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why renewals stopped on their own, nil otherwise.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops renewing and revokes the lease, which releases every lock
// held through it.
func (s *Session) Close(ctx context.Context) error {
	s.Orphan()
	if _, err := s.kv.Revoke(ctx, s.id); err != nil && !leaseGone(err) {
		return fmt.Errorf("lock: revoke: %w", err)
	}
	return nil
}

// Orphan stops renewing without revoking, as a holder that crashed or lost
// the network would: the lease expires after its TTL.
func (s *Session) Orphan() {
	s.cancel()
	<-s.done
}

func (s *Session) renew(ctx context.Context) {
	defer close(s.done)
	every := s.ttl / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		_, err := s.kv.KeepAlive(rctx, s.id)
		cancel()
		switch {
		case err == nil:
			renewed = time.Now()
		case ctx.Err() != nil:
			return
		case leaseGone(err) || time.Since(renewed) > s.ttl:
			s.mu.Lock()
			s.err = fmt.Errorf("%w: %w", ErrLost, err)
			s.mu.Unlock()
			return
		}
	}
}

// leaseGone tells "no such lease" embedded and remote.
func leaseGone(err error) bool {
	return errors.Is(err, lease.ErrNotFound) || errors.Is(err, kv.ErrLeaseNotFound) ||
		errors.Is(err, rpctypes.ErrLeaseNotFound)
}

// Mutex is a distributed lock, etcd's recipe on cairn.KV: each contender
// creates a key under the lock's prefix, attached to its lease, in a
// transaction that only creates it if it does not exist; the lock belongs
// to the key with the lowest create revision, and every other contender
// watches the key created just before its own until that one is deleted.
// Contenders are served in order of arrival, and each watches one key, so
// a release wakes one waiter, not all.
//
// A Mutex is not safe for concurrent use; use one per goroutine.
type Mutex struct {
	kv    cairn.KV
	pfx   string
	lease int64
	key   string // the contender's key, once Lock created it
	rev   int64  // its create revision
}

// NewMutex is the lock name for a holder with lease id (Session.Lease).
func NewMutex(db cairn.KV, name string, lease int64) *Mutex {
	return &Mutex{kv: db, pfx: "locks/" + name + "/", lease: lease}
}

// Key is the contender's key, and Rev its create revision: a fencing token
// that grows with every acquisition.
func (m *Mutex) Key() string { return m.key }
func (m *Mutex) Rev() int64  { return m.rev }

// Lock waits for the lock. If ctx ends first, it withdraws and returns the
// context's error; if the lease ends first, ErrLost.
func (m *Mutex) Lock(ctx context.Context) error {
	key := fmt.Sprintf("%s%016x", m.pfx, m.lease)
	owner := rangeOp(cairn.RangeRequest(m.pfx, cairn.WithPrefix(), cairn.WithLimit(1),
		cairn.WithSort(pb.RangeRequest_CREATE, pb.RangeRequest_ASCEND)))
	resp, err := m.kv.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{createRev(key, 0)},
		Success: []*pb.RequestOp{putOp(cairn.PutRequest(key, "", cairn.WithLease(m.lease))), owner},
		Failure: []*pb.RequestOp{rangeOp(cairn.RangeRequest(key)), owner},
	})
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	m.key, m.rev = key, resp.Header.Revision
	if !resp.Succeeded { // this lease already contends
		m.rev = resp.Responses[0].GetResponseRange().Kvs[0].CreateRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) == 1 && kvs[0].CreateRevision == m.rev {
		return nil
	}
	if err := m.waitTurn(ctx); err != nil {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		m.Unlock(uctx)
		return err
	}
	// The lease may have expired while we waited: then the key went with it.
	held, err := m.Held(ctx)
	if err != nil {
		return err
	}
	if !held {
		m.key = ""
		return ErrLost
	}
	return nil
}

// waitTurn waits until no key created before ours is left.
func (m *Mutex) waitTurn(ctx context.Context) error {
	for {
		r, err := m.kv.Get(ctx, m.pfx, cairn.WithPrefix(), cairn.WithMaxCreateRev(m.rev-1),
			cairn.WithSort(pb.RangeRequest_CREATE, pb.RangeRequest_DESCEND), cairn.WithLimit(1))
		if err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if len(r.Kvs) == 0 {
			return nil
		}
		if err := waitDelete(ctx, m.kv, string(r.Kvs[0].Key), r.Header.Revision); err != nil {
			return err
		}
	}
}

// waitDelete waits until key, which existed at rev, is deleted.
func waitDelete(ctx context.Context, db cairn.KV, key string, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := db.Watch(wctx, key, cairn.WithRev(rev+1), cairn.WithFilterPut())
	if err != nil {
		return fmt.Errorf("lock: watch %s: %w", key, err)
	}
	defer w.Close()
	for r := range w.C() {
		for _, ev := range r.Events {
			if ev.Type == mvccpb.DELETE {
				return nil
			}
		}
	}
	if errors.Is(w.Err(), watch.ErrCompacted) {
		return nil // the caller looks again
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("lock: watch %s: %w", key, w.Err())
}

// Held tells whether the lock is still held: the holder's key still exists
// with the revision it was acquired at.
func (m *Mutex) Held(ctx context.Context) (bool, error) {
	if m.key == "" {
		return false, nil
	}
	r, err := m.kv.Get(ctx, m.key)
	if err != nil {
		return false, fmt.Errorf("lock: %w", err)
	}
	return len(r.Kvs) == 1 && r.Kvs[0].CreateRevision == m.rev, nil
}

// IfHeld is the comparison that makes a transaction apply only while the
// lock is held: writes guarded by it are fenced against a holder that lost
// the lock without knowing it.
func (m *Mutex) IfHeld() *pb.Compare { return createRev(m.key, m.rev) }

// Unlock releases the lock (or withdraws from waiting for it).
func (m *Mutex) Unlock(ctx context.Context) error {
	if m.key == "" {
		return nil
	}
	if _, err := m.kv.Delete(ctx, m.key); err != nil {
		return fmt.Errorf("lock: unlock: %w", err)
	}
	m.key = ""
	return nil
}

func createRev(key string, rev int64) *pb.Compare {
	return &pb.Compare{
		Key: []byte(key), Target: pb.Compare_CREATE, Result: pb.Compare_EQUAL,
		TargetUnion: &pb.Compare_CreateRevision{CreateRevision: rev},
	}
}

func putOp(r *pb.PutRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: r}}
}

func rangeOp(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}
