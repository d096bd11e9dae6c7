package cairn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/lease"
	"github.com/cairn-db/cairn/watch"
)

// Config configures a DB: the node (Engine; its StateMachine is set by
// Start) and the state machine (KV).
type Config struct {
	Engine engine.Config
	KV     kv.Options
}

// DB is a cairn node running the key-value state machine.
type DB struct {
	e      *engine.Engine
	sm     *kv.StateMachine
	log    *slog.Logger
	extend time.Duration   // lease extension on promotion: one election timeout
	ctx    context.Context // ends at Close, for work the DB starts itself
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Open starts a one-node cluster with its data in dir.
func Open(dir string) (*DB, error) {
	cfg := engine.DefaultConfig()
	cfg.DataDir = dir
	cfg.ListenPeer = "127.0.0.1:0"
	db, err := Start(Config{Engine: cfg})
	if err != nil {
		return nil, err
	}
	<-db.e.Ready() // a single node elects itself at once
	return db, nil
}

// Start starts a node with cfg and returns once it runs; Ready tells when it
// has caught up with its cluster.
func Start(cfg Config) (*DB, error) {
	var events eventSink
	if cfg.Engine.Reporter != nil {
		events.wire(&cfg.KV.Watch)
	}
	sm := kv.New(cfg.KV)
	cfg.Engine.StateMachine = sm
	e, err := engine.Start(cfg.Engine)
	if err != nil {
		sm.Close()
		return nil, err
	}
	events.e.Store(e)
	c := cfg.Engine
	db := &DB{
		e: e, sm: sm, log: c.Logger,
		extend: time.Duration(c.Raft.ElectionTick*c.Raft.TickMs) * time.Millisecond,
	}
	db.ctx, db.cancel = context.WithCancel(context.Background())
	if db.log == nil {
		db.log = slog.Default()
	}
	db.wg.Add(1)
	go db.runLeases()
	return db, nil
}

// eventSink reports the watch hub's events into the engine's sequence
// (Engine.Report), so that the node's Reporter sees them numbered with the
// engine's own. The hub exists before the engine (the engine opens the
// state machine), so the engine is set once it runs; no watcher exists
// before that.
type eventSink struct{ e atomic.Pointer[engine.Engine] }

// wire sets the hub's callbacks to report, keeping those already set: they
// are called after, with their own copies of the slices.
func (s *eventSink) wire(cfg *watch.Config) {
	behind, compacted := cfg.OnFellBehind, cfg.OnCompacted
	cfg.OnFellBehind = func(id int64, key, end []byte) {
		if e := s.e.Load(); e != nil {
			e.Report(engine.Event{Type: engine.EventWatcherFellBehind, Watcher: id, Key: key, RangeEnd: end})
		}
		if behind != nil {
			behind(id, bytes.Clone(key), bytes.Clone(end))
		}
	}
	cfg.OnCompacted = func(id, rev int64) {
		if e := s.e.Load(); e != nil {
			e.Report(engine.Event{Type: engine.EventWatcherCompacted, Watcher: id, CompactRevision: rev})
		}
		if compacted != nil {
			compacted(id, rev)
		}
	}
}

// Engine is the node underneath, for membership and status.
func (db *DB) Engine() *engine.Engine { return db.e }

// Ready is closed once the node knows a leader and has caught up.
func (db *DB) Ready() <-chan struct{} { return db.e.Ready() }

// Close stops the node; watchers end with watch.ErrStopped.
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		db.cancel()
		db.wg.Wait()
		err = db.e.Stop()
		db.sm.Close() // after the engine: no more Notify
	})
	return err
}

// propose replicates req and returns its response, or its error.
func (db *DB) propose(ctx context.Context, req *pb.InternalRaftRequest) (proto.Message, error) {
	data, err := kv.Encode(req)
	if err != nil {
		return nil, err
	}
	v, err := db.e.Propose(ctx, data)
	if err != nil {
		return nil, err
	}
	r := v.(*kv.Result)
	return r.Response, r.Err
}

// Put sets key to value.
func (db *DB) Put(ctx context.Context, key, value string, opts ...OpOption) (*pb.PutResponse, error) {
	resp, err := db.propose(ctx, &pb.InternalRaftRequest{Put: PutRequest(key, value, opts...)})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.PutResponse), nil
}

// Get reads key, or a range of keys with WithPrefix, WithRange or
// WithFromKey. It is served with the node's default read policy
// (linearizable unless configured otherwise), WithConsistency's, or
// EventualConsistency with WithSerializable.
func (db *DB) Get(ctx context.Context, key string, opts ...OpOption) (*pb.RangeResponse, error) {
	o := buildOp(key, opts)
	return db.RangeWithPolicy(ctx, o.rangeRequest(), o.consistency)
}

// Range serves an etcd range request with the node's default read policy,
// or EventualConsistency if req.Serializable.
func (db *DB) Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	return db.RangeWithPolicy(ctx, req, "")
}

// RangeWithPolicy serves an etcd range request with read policy p, as a
// client asked for it ("": the node's default). req.Serializable wins and
// reads with EventualConsistency, as etcd does. A policy other than the
// default fails with an error wrapping engine.ErrOverrideNotAllowed when
// overrides are off, and an unknown one with engine.ErrUnknownReadPolicy;
// a read no leader answered in time fails with the context's error.
func (db *DB) RangeWithPolicy(ctx context.Context, req *pb.RangeRequest, p engine.ReadPolicy) (*pb.RangeResponse, error) {
	if req.GetSerializable() {
		p = engine.EventualConsistency
	} else {
		var err error
		if p, err = db.e.ResolveReadPolicy(p); err != nil {
			return nil, err
		}
	}
	if err := db.e.ReadBarrier(ctx, p); err != nil {
		return nil, err
	}
	return db.sm.Range(req)
}

// Do replicates an etcd write (one of the requests of an
// etcdserverpb.InternalRaftRequest: Put, DeleteRange, Txn, Compaction,
// LeaseGrant, LeaseRevoke, Alarm, ClusterMemberAttrSet) and returns its
// response, of the matching etcdserverpb type. A LeaseGrant with ID 0 gets
// a random id.
func (db *DB) Do(ctx context.Context, req *pb.InternalRaftRequest) (proto.Message, error) {
	if g := req.GetLeaseGrant(); g != nil && g.GetID() == 0 {
		id, err := newLeaseID()
		if err != nil {
			return nil, err
		}
		req = proto.CloneOf(req)
		req.LeaseGrant.ID = id
	}
	return db.propose(ctx, req)
}

// Delete removes key, or a range of keys.
func (db *DB) Delete(ctx context.Context, key string, opts ...OpOption) (*pb.DeleteRangeResponse, error) {
	resp, err := db.propose(ctx, &pb.InternalRaftRequest{DeleteRange: DeleteRequest(key, opts...)})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.DeleteRangeResponse), nil
}

// Txn applies a transaction atomically, as one revision.
func (db *DB) Txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	resp, err := db.propose(ctx, &pb.InternalRaftRequest{Txn: req})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.TxnResponse), nil
}

// Compact discards the history below rev.
func (db *DB) Compact(ctx context.Context, rev int64) (*pb.CompactionResponse, error) {
	resp, err := db.propose(ctx, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev}})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.CompactionResponse), nil
}

// Watch streams the changes to key (or a range, with WithPrefix, WithRange,
// WithFromKey), from WithRev's revision or from the next one. The stream
// ends when ctx does, on Close, or with an error: errors.Is(err,
// watch.ErrCompacted) means the start revision was compacted away, and
// watch.CompactRevision(err) tells where to resync from.
func (db *DB) Watch(ctx context.Context, key string, opts ...OpOption) (Watcher, error) {
	o := buildOp(key, opts)
	return db.sm.Hub().Watch(ctx, []byte(key), o.watchOptions()...)
}

// WatchRequest starts a watch from an etcd watch request.
func (db *DB) WatchRequest(ctx context.Context, req *pb.WatchCreateRequest) (*watch.Watcher, error) {
	return db.sm.Hub().Watch(ctx, req.GetKey(), WatchOptions(req)...)
}

// WatchStats reports the watch hub's state: watchers synced and catching
// up, and how often a slow one was taken off the live path.
func (db *DB) WatchStats() watch.Stats { return db.sm.Hub().Stats() }

// Grant creates a lease of ttl seconds.
func (db *DB) Grant(ctx context.Context, ttl int64) (*pb.LeaseGrantResponse, error) {
	resp, err := db.Do(ctx, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{TTL: ttl}})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.LeaseGrantResponse), nil
}

// Revoke ends lease id and deletes its keys, in one revision.
func (db *DB) Revoke(ctx context.Context, id int64) (*pb.LeaseRevokeResponse, error) {
	resp, err := db.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.LeaseRevokeResponse), nil
}

// ErrNotLeader is returned by KeepAlive on a node that does not lead: the
// leader keeps time for leases (the etcd server of package server forwards).
var ErrNotLeader = lease.ErrNotLeader

// KeepAlive renews lease id once. It must run on the leader.
func (db *DB) KeepAlive(ctx context.Context, id int64) (*pb.LeaseKeepAliveResponse, error) {
	ttl, err := db.sm.Lessor().Renew(id)
	if err != nil {
		return nil, err
	}
	return &pb.LeaseKeepAliveResponse{Header: db.header(), ID: id, TTL: ttl}, nil
}

// TimeToLive tells lease id's granted and remaining TTL, and with keys its
// attached keys.
func (db *DB) TimeToLive(ctx context.Context, id int64, keys bool) (*pb.LeaseTimeToLiveResponse, error) {
	l, err := db.sm.Lessor().Lookup(id)
	if err != nil {
		return nil, err
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: db.header(), ID: id, TTL: int64(l.Remaining.Seconds()), GrantedTTL: l.TTL}
	if keys {
		if resp.Keys, err = db.sm.KeysWithLease(id); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// Leases lists every lease.
func (db *DB) Leases(ctx context.Context) (*pb.LeaseLeasesResponse, error) {
	resp := &pb.LeaseLeasesResponse{Header: db.header()}
	for _, l := range db.sm.Lessor().List() {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: l.ID})
	}
	return resp, nil
}

func (db *DB) header() *pb.ResponseHeader {
	return &pb.ResponseHeader{Revision: db.sm.Store().Rev()}
}

// newLeaseID picks a random positive id: the grant's proposer chooses it, so
// that every node applies the same one.
func newLeaseID() (int64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("cairn: lease id: %w", err)
	}
	return int64(binary.BigEndian.Uint64(b[:]) >> 1), nil
}

// runLeases keeps lease time on the leader: it starts the leases' deadlines
// when this node becomes leader and proposes the revocation of those that
// expire. Followers only apply revocations.
func (db *DB) runLeases() {
	defer db.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	leading := false
	for {
		leader, _, changed := db.e.Leader()
		if now := leader == db.e.ID(); now != leading {
			leading = now
			if leading {
				db.sm.Lessor().Promote(db.extend)
			} else {
				db.sm.Lessor().Demote()
			}
		}
		select {
		case <-changed:
			continue
		case <-tick.C:
		case <-db.ctx.Done():
			return
		}
		for _, id := range db.sm.Lessor().Expired(64) {
			ctx, cancel := context.WithTimeout(db.ctx, 5*time.Second)
			_, err := db.Revoke(ctx, id)
			cancel()
			if err != nil && !errors.Is(err, kv.ErrLeaseNotFound) {
				db.log.Warn("revoking an expired lease", "lease", id, "err", err)
			}
		}
	}
}

// Revision is the store's current revision.
func (db *DB) Revision() int64 { return db.sm.Store().Rev() }
