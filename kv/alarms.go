package kv

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn/mvcc"
)

// Errors Apply returns while an alarm is active. Their texts are etcd's, so
// that the server can hand them to etcd clients unchanged.
var (
	// ErrNoSpace: a NOSPACE alarm is active on some member, and the request
	// would grow the store (a put, a txn that is not read-only, a lease
	// grant), as etcd's applierV3Capped refuses.
	ErrNoSpace = errors.New("etcdserver: mvcc: database space exceeded")
	// ErrCorrupt: a CORRUPT alarm is active on some member; every write is
	// refused, as etcd's applierV3Corrupt does.
	ErrCorrupt = errors.New("etcdserver: corrupt cluster")
)

// alarmPrefix is the table of active alarms in the state machine's keyspace:
// 0x01 'A', the member id (8 bytes big-endian), the alarm type (4 bytes
// big-endian) → nothing. It creates no revision; snapshots carry it.
var alarmPrefix = []byte{0x01, 'A'}

func alarmKey(a alarm) []byte {
	k := binary.BigEndian.AppendUint64(append([]byte(nil), alarmPrefix...), a.member)
	return binary.BigEndian.AppendUint32(k, uint32(a.typ))
}

type alarm struct {
	member uint64
	typ    pb.AlarmType
}

// alarmTable is the active alarms as of the last apply: the apply loop
// writes it, anyone reads it under mu.
type alarmTable struct {
	mu     sync.Mutex
	active map[alarm]struct{}
}

func (t *alarmTable) load(r pebble.Reader) error {
	active := map[alarm]struct{}{}
	err := scanTable(r, alarmPrefix, func(k, _ []byte) error {
		if len(k) != len(alarmPrefix)+8+4 {
			return fmt.Errorf("kv: corrupt alarm: key %x", k)
		}
		a := alarm{
			member: binary.BigEndian.Uint64(k[len(alarmPrefix):]),
			typ:    pb.AlarmType(binary.BigEndian.Uint32(k[len(alarmPrefix)+8:])),
		}
		if !knownAlarm(a.typ) || a.typ == pb.AlarmType_NONE {
			return fmt.Errorf("kv: corrupt alarm: key %x: unknown alarm type %d", k, a.typ)
		}
		active[a] = struct{}{}
		return nil
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.active = active
	t.mu.Unlock()
	return nil
}

func knownAlarm(t pb.AlarmType) bool {
	_, ok := pb.AlarmType_name[int32(t)]
	return ok
}

// get returns the active alarms of type typ (every alarm for NONE), by
// member then type.
func (t *alarmTable) get(typ pb.AlarmType) []*pb.AlarmMember {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*pb.AlarmMember
	for _, a := range slices.SortedFunc(maps.Keys(t.active), func(x, y alarm) int {
		return cmp.Or(cmp.Compare(x.member, y.member), cmp.Compare(x.typ, y.typ))
	}) {
		if typ == pb.AlarmType_NONE || a.typ == typ {
			out = append(out, &pb.AlarmMember{MemberID: a.member, Alarm: a.typ})
		}
	}
	return out
}

// has reports whether an alarm of type typ is active on any member.
func (t *alarmTable) has(typ pb.AlarmType) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for a := range t.active {
		if a.typ == typ {
			return true
		}
	}
	return false
}

// Alarms returns every active alarm, by member id then alarm type, as of
// the last apply. The caller owns the result.
func (sm *StateMachine) Alarms() []*pb.AlarmMember { return sm.alarms.get(pb.AlarmType_NONE) }

// AlarmsOf returns the active alarms of type typ (every one for NONE): the
// answer to an AlarmRequest GET, from local state.
func (sm *StateMachine) AlarmsOf(typ pb.AlarmType) []*pb.AlarmMember { return sm.alarms.get(typ) }

// applyAlarm applies an AlarmRequest as etcd does: GET lists the active
// alarms of the type asked (all for NONE); ACTIVATE raises one and returns
// it (also when it was already active; activating NONE does nothing);
// DEACTIVATE clears one and returns it (nothing if it was not active). An
// unknown action or alarm type, or ACTIVATE for member 0, is refused.
func (sm *StateMachine) applyAlarm(b *mvcc.Batch, req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if !knownAlarm(req.GetAlarm()) {
		return nil, fmt.Errorf("%w: unknown alarm type %d", ErrBadRequest, req.GetAlarm())
	}
	resp := &pb.AlarmResponse{Header: &pb.ResponseHeader{Revision: b.Rev()}}
	a := alarm{member: req.GetMemberID(), typ: req.GetAlarm()}
	t := &sm.alarms
	switch req.GetAction() {
	case pb.AlarmRequest_GET:
		resp.Alarms = t.get(a.typ)
	case pb.AlarmRequest_ACTIVATE:
		if a.typ == pb.AlarmType_NONE {
			break
		}
		if a.member == 0 {
			return nil, fmt.Errorf("%w: alarm %s for member id 0", ErrBadRequest, a.typ)
		}
		t.mu.Lock()
		_, active := t.active[a]
		t.mu.Unlock()
		if !active {
			if err := b.Set(alarmKey(a), nil, nil); err != nil {
				return nil, fmt.Errorf("kv: activate alarm %s of member %x: %w", a.typ, a.member, err)
			}
			t.mu.Lock()
			t.active[a] = struct{}{}
			t.mu.Unlock()
		}
		resp.Alarms = []*pb.AlarmMember{{MemberID: a.member, Alarm: a.typ}}
	case pb.AlarmRequest_DEACTIVATE:
		t.mu.Lock()
		_, active := t.active[a]
		t.mu.Unlock()
		if !active {
			break
		}
		if err := b.Delete(alarmKey(a), nil); err != nil {
			return nil, fmt.Errorf("kv: deactivate alarm %s of member %x: %w", a.typ, a.member, err)
		}
		t.mu.Lock()
		delete(t.active, a)
		t.mu.Unlock()
		resp.Alarms = []*pb.AlarmMember{{MemberID: a.member, Alarm: a.typ}}
	default:
		return nil, fmt.Errorf("%w: unknown alarm action %d", ErrBadRequest, req.GetAction())
	}
	return resp, nil
}

// checkAlarms refuses req if an active alarm forbids it: under CORRUPT
// every key-value and lease write (etcd's applierV3Corrupt), under NOSPACE
// whatever can grow the store (etcd's applierV3Capped: a put, a txn that is
// not read-only, a lease grant). Alarm and member requests always pass, so
// that an alarm can be cleared.
func (sm *StateMachine) checkAlarms(req *pb.InternalRaftRequest) error {
	write := req.Put != nil || req.DeleteRange != nil || req.Txn != nil || req.Compaction != nil ||
		req.LeaseGrant != nil || req.LeaseRevoke != nil
	if !write {
		return nil
	}
	if sm.alarms.has(pb.AlarmType_CORRUPT) {
		return ErrCorrupt
	}
	grows := req.Put != nil || req.LeaseGrant != nil || req.Txn != nil && !txnReadOnly(req.Txn)
	if grows && sm.alarms.has(pb.AlarmType_NOSPACE) {
		return ErrNoSpace
	}
	return nil
}

// txnReadOnly is etcd's IsTxnReadonly: every operation of both branches is
// a range (a delete or a nested txn makes it a write).
func txnReadOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		for _, op := range ops {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}
