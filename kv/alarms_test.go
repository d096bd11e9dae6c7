package kv

import (
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

func alarmReq(action pb.AlarmRequest_AlarmAction, member uint64, typ pb.AlarmType) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: action, MemberID: member, Alarm: typ}}
}

func alarmList(ms ...any) []*pb.AlarmMember {
	var out []*pb.AlarmMember
	for i := 0; i < len(ms); i += 2 {
		out = append(out, &pb.AlarmMember{MemberID: uint64(ms[i].(int)), Alarm: ms[i+1].(pb.AlarmType)})
	}
	return out
}

func requireAlarms(t *testing.T, what string, got, want []*pb.AlarmMember) {
	t.Helper()
	if !proto.Equal(&pb.AlarmResponse{Alarms: got}, &pb.AlarmResponse{Alarms: want}) {
		t.Fatalf("%s: alarms %v, want %v", what, got, want)
	}
}

const (
	nospace = pb.AlarmType_NOSPACE
	corrupt = pb.AlarmType_CORRUPT
)

// TestAlarmActions: ACTIVATE returns the alarm (also when already active),
// DEACTIVATE the alarm removed (nothing if it was not active), GET the
// active alarms of a type or all of them; no action creates a revision; bad
// requests are refused and change nothing.
func TestAlarmActions(t *testing.T) {
	e := newEnv(t)
	e.put("k", "v")
	rev := e.sm.Store().Rev()
	act := func(action pb.AlarmRequest_AlarmAction, member uint64, typ pb.AlarmType) []*pb.AlarmMember {
		t.Helper()
		resp := e.must(alarmReq(action, member, typ)).(*pb.AlarmResponse)
		if resp.GetHeader().GetRevision() != rev {
			t.Fatalf("alarm response header revision %d, want %d", resp.GetHeader().GetRevision(), rev)
		}
		return resp.Alarms
	}
	requireAlarms(t, "activate", act(pb.AlarmRequest_ACTIVATE, 2, nospace), alarmList(2, nospace))
	requireAlarms(t, "activate again", act(pb.AlarmRequest_ACTIVATE, 2, nospace), alarmList(2, nospace))
	requireAlarms(t, "activate corrupt", act(pb.AlarmRequest_ACTIVATE, 3, corrupt), alarmList(3, corrupt))
	requireAlarms(t, "activate other member", act(pb.AlarmRequest_ACTIVATE, 1, nospace), alarmList(1, nospace))
	requireAlarms(t, "activate NONE", act(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_NONE), nil)
	all := alarmList(1, nospace, 2, nospace, 3, corrupt)
	requireAlarms(t, "get all", act(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE), all)
	requireAlarms(t, "get nospace", act(pb.AlarmRequest_GET, 0, nospace), alarmList(1, nospace, 2, nospace))
	requireAlarms(t, "get corrupt", act(pb.AlarmRequest_GET, 9, corrupt), alarmList(3, corrupt))
	requireAlarms(t, "Alarms", e.sm.Alarms(), all)
	requireAlarms(t, "AlarmsOf", e.sm.AlarmsOf(corrupt), alarmList(3, corrupt))

	for _, bad := range []struct {
		req  *pb.InternalRaftRequest
		want string
	}{
		{alarmReq(pb.AlarmRequest_AlarmAction(7), 1, nospace), "unknown alarm action 7"},
		{alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType(9)), "unknown alarm type 9"},
		{alarmReq(pb.AlarmRequest_ACTIVATE, 0, nospace), "member id 0"},
	} {
		_, err := e.do(bad.req)
		requireErr(t, err, ErrBadRequest, bad.want)
	}
	requireAlarms(t, "after bad requests", e.sm.Alarms(), all)

	requireAlarms(t, "deactivate", act(pb.AlarmRequest_DEACTIVATE, 2, nospace), alarmList(2, nospace))
	requireAlarms(t, "deactivate again", act(pb.AlarmRequest_DEACTIVATE, 2, nospace), nil)
	requireAlarms(t, "deactivate wrong type", act(pb.AlarmRequest_DEACTIVATE, 1, corrupt), nil)
	requireAlarms(t, "after deactivation", e.sm.Alarms(), alarmList(1, nospace, 3, corrupt))
	if r := e.sm.Store().Rev(); r != rev {
		t.Fatalf("alarms moved the revision from %d to %d", rev, r)
	}
}

func txnReq(succeed bool, success, failure []*pb.RequestOp) *pb.InternalRaftRequest {
	// A compare on the version of "k": it exists (version >= 1) in these
	// tests, so "> 0" succeeds and "< 0" fails.
	result := pb.Compare_GREATER
	if !succeed {
		result = pb.Compare_LESS
	}
	return &pb.InternalRaftRequest{Txn: &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_VERSION, Result: result, TargetUnion: &pb.Compare_Version{Version: 0}}},
		Success: success, Failure: failure,
	}}
}

func opPut(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func opGet(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
}

func opDel(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k)}}}
}

func opTxn(ops ...*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: ops}}}
}

// TestNoSpaceRefusesGrowth: under NOSPACE, exactly what etcd's capped
// applier refuses is refused with ErrNoSpace and changes nothing (a put, a
// txn that is not read-only, whichever branch holds the write, a lease
// grant); deletes, read-only txns, compaction and lease revocation work;
// after deactivation everything works again.
func TestNoSpaceRefusesGrowth(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 5; i++ {
		e.put(fmt.Sprintf("k%d", i), "v")
	}
	e.put("k", "v")
	e.must(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 1, TTL: 60}})
	e.must(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 2, TTL: 60}})
	e.must(alarmReq(pb.AlarmRequest_ACTIVATE, 3, nospace))

	refused := map[string]*pb.InternalRaftRequest{
		"put":                        {Put: &pb.PutRequest{Key: []byte("new"), Value: []byte("x")}},
		"put over an existing key":   {Put: &pb.PutRequest{Key: []byte("k0"), Value: []byte("x")}},
		"txn put on the path taken":  txnReq(true, []*pb.RequestOp{opPut("new", "x")}, nil),
		"txn put on the other path":  txnReq(true, []*pb.RequestOp{opGet("k")}, []*pb.RequestOp{opPut("new", "x")}),
		"txn put in failure taken":   txnReq(false, nil, []*pb.RequestOp{opPut("new", "x")}),
		"txn delete (not read-only)": txnReq(true, []*pb.RequestOp{opDel("k1")}, nil),
		"nested txn":                 txnReq(true, []*pb.RequestOp{opTxn(opGet("k"))}, nil),
		"lease grant":                {LeaseGrant: &pb.LeaseGrantRequest{ID: 3, TTL: 60}},
	}
	rev := e.sm.Store().Rev()
	for name, req := range refused {
		_, err := e.do(req)
		if !errors.Is(err, ErrNoSpace) || err.Error() != "etcdserver: mvcc: database space exceeded" {
			t.Fatalf("%s under NOSPACE: %v, want ErrNoSpace with etcd's text", name, err)
		}
	}
	if r := e.sm.Store().Rev(); r != rev {
		t.Fatalf("refused requests moved the revision from %d to %d", rev, r)
	}
	if e.get("new") != "" || e.get("k0") != "v" || e.sm.Lessor().Exists(3) {
		t.Fatal("a refused request changed the store")
	}

	// Reads through raft, deletes, compaction and revocation work.
	tr := e.must(txnReq(true, []*pb.RequestOp{opGet("k")}, []*pb.RequestOp{opGet("k0")})).(*pb.TxnResponse)
	if !tr.Succeeded || len(tr.Responses) != 1 {
		t.Fatalf("read-only txn: %v", tr)
	}
	dr := e.must(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k1")}}).(*pb.DeleteRangeResponse)
	if dr.Deleted != 1 || dr.Header.Revision != rev+1 {
		t.Fatalf("delete under NOSPACE: %v", dr)
	}
	e.must(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev}})
	e.must(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 1}})
	if e.sm.Lessor().Exists(1) {
		t.Fatal("lease 1 survived its revocation")
	}

	// Deactivated: writes work again.
	e.must(alarmReq(pb.AlarmRequest_DEACTIVATE, 3, nospace))
	e.put("new", "x")
	e.must(txnReq(true, []*pb.RequestOp{opPut("t", "x")}, nil))
	e.must(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 3, TTL: 60}})
	if e.get("new") != "x" || e.get("t") != "x" || !e.sm.Lessor().Exists(3) {
		t.Fatal("writes after deactivation did not apply")
	}
}

// TestCorruptRefusesEveryWrite: under CORRUPT every key-value and lease
// request is refused with ErrCorrupt (it wins over NOSPACE); alarms still
// apply, so it can be cleared.
func TestCorruptRefusesEveryWrite(t *testing.T) {
	e := newEnv(t)
	e.put("k", "v")
	e.must(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 1, TTL: 60}})
	e.must(alarmReq(pb.AlarmRequest_ACTIVATE, 1, nospace))
	e.must(alarmReq(pb.AlarmRequest_ACTIVATE, 2, corrupt))
	rev := e.sm.Store().Rev()
	for name, req := range map[string]*pb.InternalRaftRequest{
		"put":           {Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("x")}},
		"delete":        {DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k")}},
		"read-only txn": txnReq(true, []*pb.RequestOp{opGet("k")}, nil),
		"compaction":    {Compaction: &pb.CompactionRequest{Revision: rev}},
		"lease grant":   {LeaseGrant: &pb.LeaseGrantRequest{ID: 2, TTL: 60}},
		"lease revoke":  {LeaseRevoke: &pb.LeaseRevokeRequest{ID: 1}},
	} {
		_, err := e.do(req)
		if !errors.Is(err, ErrCorrupt) || err.Error() != "etcdserver: corrupt cluster" {
			t.Fatalf("%s under CORRUPT: %v, want ErrCorrupt with etcd's text", name, err)
		}
	}
	if e.sm.Store().Rev() != rev || e.get("k") != "v" || !e.sm.Lessor().Exists(1) || e.sm.Store().CompactRev() != 0 {
		t.Fatal("a refused request changed the store")
	}
	e.must(attrSet(1, "n1", "http://n1:2379")) // not a key-value write
	e.must(alarmReq(pb.AlarmRequest_DEACTIVATE, 2, corrupt))
	_, err := e.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("x")}})
	requireErr(t, err, ErrNoSpace) // NOSPACE is still active
	e.must(alarmReq(pb.AlarmRequest_DEACTIVATE, 1, nospace))
	e.put("k", "x")
}

// TestAlarmsSurviveRestartAndSnapshot: the alarm table is on disk and in
// snapshots, and so is its effect.
func TestAlarmsSurviveRestartAndSnapshot(t *testing.T) {
	e := newEnv(t)
	e.put("k", "v")
	e.must(alarmReq(pb.AlarmRequest_ACTIVATE, 1, nospace))
	e.must(alarmReq(pb.AlarmRequest_ACTIVATE, 2, corrupt))
	want := alarmList(1, nospace, 2, corrupt)
	e.restart()
	requireAlarms(t, "after restart", e.sm.Alarms(), want)
	_, err := e.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("x")}})
	requireErr(t, err, ErrCorrupt)

	dst := newEnv(t)
	dst.must(alarmReq(pb.AlarmRequest_ACTIVATE, 7, nospace)) // replaced by the snapshot
	e.must(alarmReq(pb.AlarmRequest_DEACTIVATE, 2, corrupt))
	e.snapshotInto(dst, 50)
	requireAlarms(t, "after restore", dst.sm.Alarms(), alarmList(1, nospace))
	_, err = dst.do(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("x")}})
	requireErr(t, err, ErrNoSpace)
	dst.restart()
	requireAlarms(t, "after restore and restart", dst.sm.Alarms(), alarmList(1, nospace))
}
