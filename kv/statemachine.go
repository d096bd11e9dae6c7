package kv

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/lease"
	"github.com/cairn-db/cairn/mvcc"
	"github.com/cairn-db/cairn/watch"
)

// Errors Apply returns for a request (the entry is still applied: as
// nothing).
var (
	ErrLeaseNotFound = errors.New("kv: requested lease not found")
	ErrBadRequest    = errors.New("kv: malformed request")
)

// Options configure the state machine.
type Options struct {
	MVCC  mvcc.Options
	Watch watch.Config
	Lease lease.Options
}

// StateMachine implements engine.StateMachine and engine.StorageUser.
type StateMachine struct {
	opts   Options
	mu     sync.Mutex // guards the fields below against Close during UseStorage
	db     *pebble.DB
	store  *mvcc.Store
	lessor *lease.Lessor
	hub    *watch.Hub
	// restoring is held for writing while Restore replaces the store, and
	// for reading by Range and the watch hub's calls of History, Rev and
	// CompactRev: they wait for the restored store instead of reading a
	// store that is half restored (ErrRestoreIncomplete, revision 1).
	restoring sync.RWMutex
	released  bool        // the engine closed the storage (ReleaseStorage); guarded by restoring
	members   memberTable // member attributes (members.go)
	alarms    alarmTable  // active alarms (alarms.go)
}

// ErrClosed is returned by reads once the node stopped and its storage is
// closed.
var ErrClosed = errors.New("kv: the node stopped; its storage is closed")

// ReleaseStorage implements engine.StorageUser: reads in progress finish,
// later ones fail with ErrClosed.
func (sm *StateMachine) ReleaseStorage() {
	sm.restoring.Lock()
	sm.released = true
	sm.restoring.Unlock()
}

// reading holds off a restore (and the release of the storage) while a
// read runs; it fails once the storage is released.
func (sm *StateMachine) reading() (done func(), err error) {
	sm.restoring.RLock()
	if sm.released {
		sm.restoring.RUnlock()
		return nil, ErrClosed
	}
	return sm.restoring.RUnlock, nil
}

var (
	_ engine.StateMachine = (*StateMachine)(nil)
	_ engine.StorageUser  = (*StateMachine)(nil)
)

// New returns a state machine; the engine opens it on the node's storage.
func New(opts Options) *StateMachine { return &StateMachine{opts: opts} }

// UseStorage implements engine.StorageUser.
func (sm *StateMachine) UseStorage(db *pebble.DB) error {
	store, err := mvcc.Open(db, sm.opts.MVCC)
	if err != nil {
		return err
	}
	lessor, err := lease.Open(db, sm.opts.Lease)
	if err != nil {
		return err
	}
	if err := sm.members.load(db); err != nil {
		return err
	}
	if err := sm.alarms.load(db); err != nil {
		return err
	}
	// watch.New fills in the defaults of the zero fields.
	hub, err := watch.New(history{s: store, sm: sm}, sm.opts.Watch)
	if err != nil {
		return err
	}
	sm.mu.Lock()
	sm.db, sm.store, sm.lessor, sm.hub = db, store, lessor, hub
	sm.mu.Unlock()
	return nil
}

// Close stops the watch hub: every watcher ends with watch.ErrStopped.
func (sm *StateMachine) Close() {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.hub != nil {
		sm.hub.Stop()
	}
}

// Store is the MVCC store, for reads.
func (sm *StateMachine) Store() *mvcc.Store { return sm.store }

// Range reads from the store, waiting out a snapshot restore in progress
// rather than failing with mvcc.ErrRestoreIncomplete.
func (sm *StateMachine) Range(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	done, err := sm.reading()
	if err != nil {
		return nil, err
	}
	defer done()
	return sm.store.Range(req)
}

// KeysWithLease lists the keys attached to lease id.
func (sm *StateMachine) KeysWithLease(id int64) ([][]byte, error) {
	done, err := sm.reading()
	if err != nil {
		return nil, err
	}
	defer done()
	return sm.store.KeysWithLease(id)
}

// Lessor is the lease table.
func (sm *StateMachine) Lessor() *lease.Lessor { return sm.lessor }

// Hub is the watch hub.
func (sm *StateMachine) Hub() *watch.Hub { return sm.hub }

// AppliedIndex implements engine.StateMachine.
func (sm *StateMachine) AppliedIndex() (uint64, error) { return sm.store.AppliedIndex(), nil }

// Result is what Apply returns for one entry: a response, or the request's
// error (the etcdserverpb response type matches the request's).
type Result struct {
	Response proto.Message
	Err      error
}

// Encode builds the payload of a raft entry for req.
func Encode(req *pb.InternalRaftRequest) ([]byte, error) {
	return proto.Marshal(req)
}

// Apply implements engine.StateMachine.
func (sm *StateMachine) Apply(entries []engine.Entry) ([]any, error) {
	b := sm.store.NewBatch()
	defer b.Close()
	out := make([]any, len(entries))
	for i, e := range entries {
		req := &pb.InternalRaftRequest{}
		if err := proto.Unmarshal(e.Data, req); err != nil {
			out[i] = &Result{Err: fmt.Errorf("%w: entry %d: %v", ErrBadRequest, e.Index, err)}
			continue
		}
		resp, err := sm.apply(b, req)
		out[i] = &Result{Response: resp, Err: err}
	}
	revs, err := b.Commit(entries[len(entries)-1].Index)
	if err != nil {
		return nil, fmt.Errorf("kv: commit entries %d-%d: %w", entries[0].Index, entries[len(entries)-1].Index, err)
	}
	if len(revs) > 0 {
		if err := sm.hub.Notify(toWatch(revs)); err != nil {
			return nil, fmt.Errorf("kv: notify watchers: %w", err)
		}
	}
	return out, nil
}

func (sm *StateMachine) apply(b *mvcc.Batch, req *pb.InternalRaftRequest) (proto.Message, error) {
	if err := sm.checkAlarms(req); err != nil {
		return nil, err
	}
	switch {
	case req.Put != nil:
		if err := sm.checkLease(req.Put.GetLease()); err != nil {
			return nil, err
		}
		return b.Put(req.Put)
	case req.DeleteRange != nil:
		return b.DeleteRange(req.DeleteRange)
	case req.Txn != nil:
		// Leases are checked on the path the compares choose, as etcd does.
		return b.TxnChecked(req.Txn, func(p *pb.PutRequest) error { return sm.checkLease(p.GetLease()) })
	case req.Compaction != nil:
		return b.Compact(req.Compaction.GetRevision())
	case req.LeaseGrant != nil:
		l, err := sm.lessor.Grant(b, req.LeaseGrant.GetID(), req.LeaseGrant.GetTTL())
		if err != nil {
			return nil, err
		}
		return &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: b.Rev()}, ID: l.ID, TTL: l.TTL}, nil
	case req.LeaseRevoke != nil:
		id := req.LeaseRevoke.GetID()
		if !sm.lessor.Exists(id) {
			return nil, fmt.Errorf("%w: %d", ErrLeaseNotFound, id)
		}
		// The keys go first, in one revision; then the lease record, in the
		// same batch.
		if _, err := b.RevokeLease(id); err != nil {
			return nil, err
		}
		if err := sm.lessor.Revoke(b, id); err != nil {
			return nil, err
		}
		return &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: b.Rev()}}, nil
	case req.Alarm != nil:
		return sm.applyAlarm(b, req.Alarm)
	case req.ClusterMemberAttrSet != nil:
		// etcd answers this request with no response.
		return nil, sm.applyMemberAttrs(b, req.ClusterMemberAttrSet)
	}
	return nil, fmt.Errorf("%w: no supported operation", ErrBadRequest)
}

func (sm *StateMachine) checkLease(id int64) error {
	if id != 0 && !sm.lessor.Exists(id) {
		return fmt.Errorf("%w: %d", ErrLeaseNotFound, id)
	}
	return nil
}

// Snapshot implements engine.StateMachine: the whole state machine keyspace
// (data, history, leases, member attributes, alarms) as of the last apply.
func (sm *StateMachine) Snapshot() (engine.Snapshot, error) {
	return sm.store.Snapshot()
}

// Restore implements engine.StateMachine.
func (sm *StateMachine) Restore(r io.Reader, index uint64) error {
	sm.restoring.Lock()
	err := sm.store.Restore(r, index)
	if err == nil {
		err = sm.lessor.Reload(sm.db)
	}
	if err == nil {
		err = sm.members.load(sm.db)
	}
	if err == nil {
		err = sm.alarms.load(sm.db)
	}
	sm.restoring.Unlock()
	if err != nil {
		return err
	}
	// Watchers that needed history the snapshot replaced are told so.
	return sm.hub.Resync(sm.store.Rev())
}

// history adapts the store to watch.History.
type history struct {
	s  *mvcc.Store
	sm *StateMachine // for its restoring lock
}

func (h history) Rev() int64 {
	h.sm.restoring.RLock()
	defer h.sm.restoring.RUnlock()
	return h.s.Rev()
}

func (h history) CompactRev() int64 {
	h.sm.restoring.RLock()
	defer h.sm.restoring.RUnlock()
	return h.s.CompactRev()
}

func (h history) History(from int64, maxEvents int) ([]watch.Revision, error) {
	done, err := h.sm.reading()
	if err != nil {
		return nil, err
	}
	defer done()
	revs, err := h.s.History(from, maxEvents)
	if err != nil {
		var ce *mvcc.CompactedError
		if errors.As(err, &ce) {
			return nil, &watch.CompactedError{CompactRev: h.s.CompactRev()}
		}
		return nil, err
	}
	return toWatch(revs), nil
}

func toWatch(revs []mvcc.Revision) []watch.Revision {
	out := make([]watch.Revision, len(revs))
	for i, r := range revs {
		out[i] = watch.Revision{Rev: r.Rev, Events: r.Events}
	}
	return out
}
