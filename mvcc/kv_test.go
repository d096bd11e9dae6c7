package mvcc

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func withLease(l int64) func(*pb.PutRequest) { return func(r *pb.PutRequest) { r.Lease = l } }
func withPrevKV() func(*pb.PutRequest)       { return func(r *pb.PutRequest) { r.PrevKv = true } }
func ignoreValue() func(*pb.PutRequest)      { return func(r *pb.PutRequest) { r.IgnoreValue = true } }
func ignoreLease() func(*pb.PutRequest)      { return func(r *pb.PutRequest) { r.IgnoreLease = true } }

func TestEmptyStore(t *testing.T) {
	e := newEnv(t, Options{})
	if e.s.Rev() != 1 || e.s.CompactRev() != 0 || e.s.AppliedIndex() != 0 {
		t.Fatalf("fresh store: rev %d compact %d applied %d, want 1 0 0", e.s.Rev(), e.s.CompactRev(), e.s.AppliedIndex())
	}
	requireEqual(t, "range on an empty store", e.dump(0), &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 1}})
	requireEqual(t, "range at revision 1", e.dump(1), &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 1}})
	revs, err := e.s.History(1, 0)
	if err != nil || len(revs) != 0 {
		t.Fatalf("History of an empty store: %v, %v", revs, err)
	}
}

// TestPutLifecycle: create, mod, version over a key's lives.
func TestPutLifecycle(t *testing.T) {
	e := newEnv(t, Options{})
	requireEqual(t, "first put", e.put("k", "v1"), &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 2}})
	requireEqual(t, "after put", e.get("k", 0), kv("k", "v1", 2, 2, 1, 0))
	e.put("other", "x")
	e.put("k", "v2")
	requireEqual(t, "second put", e.get("k", 0), kv("k", "v2", 2, 4, 2, 0))
	e.put("k", "v2") // same value: still a new revision and version
	requireEqual(t, "same value again", e.get("k", 0), kv("k", "v2", 2, 5, 3, 0))
	requireEqual(t, "delete", e.del("k", "", false), &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: 6}, Deleted: 1})
	if got := e.get("k", 0); got != nil {
		t.Fatalf("deleted key still there: %v", got)
	}
	e.put("k", "v3")
	requireEqual(t, "a new life", e.get("k", 0), kv("k", "v3", 7, 7, 1, 0))
	// Every revision of the key's history reads back.
	for rev, want := range map[int64]*mvccpb.KeyValue{
		1: nil, 2: kv("k", "v1", 2, 2, 1, 0), 3: kv("k", "v1", 2, 2, 1, 0), 4: kv("k", "v2", 2, 4, 2, 0),
		5: kv("k", "v2", 2, 5, 3, 0), 6: nil, 7: kv("k", "v3", 7, 7, 1, 0),
	} {
		got := e.get("k", rev)
		if want == nil {
			if got != nil {
				t.Fatalf("at %d: %v, want nothing", rev, got)
			}
			continue
		}
		requireEqual(t, "history read", got, want)
	}
}

func TestPutOptions(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("k", "v1", withLease(7))
	requireEqual(t, "prev_kv", e.put("k", "v2", withLease(7), withPrevKV()),
		&pb.PutResponse{Header: &pb.ResponseHeader{Revision: 3}, PrevKv: kv("k", "v1", 2, 2, 1, 7)})
	requireEqual(t, "prev_kv of a new key", e.put("new", "x", withPrevKV()), &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 4}})

	e.put("k", "", ignoreValue(), withLease(8))
	requireEqual(t, "ignore_value keeps the value", e.get("k", 0), kv("k", "v2", 2, 5, 3, 8))
	e.put("k", "v3", ignoreLease())
	requireEqual(t, "ignore_lease keeps the lease", e.get("k", 0), kv("k", "v3", 2, 6, 4, 8))
	e.put("k", "v4")
	requireEqual(t, "a put without lease detaches", e.get("k", 0), kv("k", "v4", 2, 7, 5, 0))

	for _, r := range []*pb.PutRequest{
		{Key: []byte("missing"), IgnoreValue: true},
		{Key: []byte("missing"), Value: []byte("v"), IgnoreLease: true},
	} {
		before := e.dump(0)
		b := e.s.NewBatch()
		_, err := b.Put(r)
		requireErr(t, err, ErrKeyNotFound, "missing")
		if b.Rev() != before.Header.Revision {
			t.Fatalf("refused put moved the batch to %d", b.Rev())
		}
		if _, err := b.Commit(e.nextIndex()); err != nil {
			t.Fatalf("a refused request must leave the batch usable: %v", err)
		}
		requireEqual(t, "nothing changed", e.dump(0), before)
	}
}

func TestDeleteRange(t *testing.T) {
	e := newEnv(t, Options{})
	for _, k := range []string{"a", "b", "b/1", "b/2", "c"} {
		e.put(k, "v-"+k)
	}
	// rev 6 now.
	requireEqual(t, "no match: no new revision", e.del("x", "", true), &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: 6}, PrevKvs: []*mvccpb.KeyValue{}})
	if e.s.Rev() != 6 {
		t.Fatalf("a delete of nothing moved the revision to %d", e.s.Rev())
	}
	requireEqual(t, "prefix delete", e.del("b/", "b0", true), &pb.DeleteRangeResponse{
		Header: &pb.ResponseHeader{Revision: 7}, Deleted: 2,
		PrevKvs: []*mvccpb.KeyValue{kv("b/1", "v-b/1", 4, 4, 1, 0), kv("b/2", "v-b/2", 5, 5, 1, 0)},
	})
	revs, err := e.s.History(7, 0)
	if err != nil {
		t.Fatal(err)
	}
	requireRevisions(t, "one revision, two events", revs, []Revision{{Rev: 7, Events: []*mvccpb.Event{
		{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("b/1"), ModRevision: 7}, PrevKv: kv("b/1", "v-b/1", 4, 4, 1, 0)},
		{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("b/2"), ModRevision: 7}, PrevKv: kv("b/2", "v-b/2", 5, 5, 1, 0)},
	}}})
	requireEqual(t, "from-key delete", e.del("b", "\x00", false), &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: 8}, Deleted: 2})
	requireEqual(t, "left", e.dump(0), &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 8}, Count: 1,
		Kvs: []*mvccpb.KeyValue{kv("a", "v-a", 2, 2, 1, 0)}})
}

// TestRange covers every range shape and option, with etcd's answers.
func TestRange(t *testing.T) {
	e := newEnv(t, Options{})
	// rev 2..7: a=3 (version 2), b/1, b/2, b/3, c; created in this order:
	e.put("b/2", "2")     // 2
	e.put("a", "zz")      // 3
	e.put("b/1", "9")     // 4
	e.put("c", "5")       // 5
	e.put("b/3", "1")     // 6
	e.put("a", "0")       // 7: a is version 2, value "0"
	e.put("\x00x", "nul") // 8
	a := kv("a", "0", 3, 7, 2, 0)
	b1, b2, b3 := kv("b/1", "9", 4, 4, 1, 0), kv("b/2", "2", 2, 2, 1, 0), kv("b/3", "1", 6, 6, 1, 0)
	c, nul := kv("c", "5", 5, 5, 1, 0), kv("\x00x", "nul", 8, 8, 1, 0)
	h := &pb.ResponseHeader{Revision: 8}
	kvs := func(k ...*mvccpb.KeyValue) []*mvccpb.KeyValue { return k }
	for _, tc := range []struct {
		name string
		req  *pb.RangeRequest
		want *pb.RangeResponse
	}{
		{"single key", &pb.RangeRequest{Key: []byte("a")}, &pb.RangeResponse{Header: h, Count: 1, Kvs: kvs(a)}},
		{"missing key", &pb.RangeRequest{Key: []byte("zz")}, &pb.RangeResponse{Header: h}},
		{"range", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b/3")}, &pb.RangeResponse{Header: h, Count: 3, Kvs: kvs(a, b1, b2)}},
		{"empty range [k, k)", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("a")}, &pb.RangeResponse{Header: h}},
		{"prefix", &pb.RangeRequest{Key: []byte("b/"), RangeEnd: []byte("b0")}, &pb.RangeResponse{Header: h, Count: 3, Kvs: kvs(b1, b2, b3)}},
		{"from key", &pb.RangeRequest{Key: []byte("b/2"), RangeEnd: []byte{0}}, &pb.RangeResponse{Header: h, Count: 3, Kvs: kvs(b2, b3, c)}},
		{"all", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}, &pb.RangeResponse{Header: h, Count: 6, Kvs: kvs(nul, a, b1, b2, b3, c)}},
		{"limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 2}, &pb.RangeResponse{Header: h, Count: 6, More: true, Kvs: kvs(nul, a)}},
		{"limit = count", &pb.RangeRequest{Key: []byte("b/"), RangeEnd: []byte("b0"), Limit: 3}, &pb.RangeResponse{Header: h, Count: 3, Kvs: kvs(b1, b2, b3)}},
		{"negative limit is no limit", &pb.RangeRequest{Key: []byte("b/"), RangeEnd: []byte("b0"), Limit: -1}, &pb.RangeResponse{Header: h, Count: 3, Kvs: kvs(b1, b2, b3)}},
		{"count only", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true, Limit: 1}, &pb.RangeResponse{Header: h, Count: 6}},
		{"keys only", &pb.RangeRequest{Key: []byte("a"), KeysOnly: true}, &pb.RangeResponse{Header: h, Count: 1, Kvs: kvs(kv("a", "", 3, 7, 2, 0))}},
		{"sort key descend", &pb.RangeRequest{Key: []byte("b/"), RangeEnd: []byte("b0"), SortOrder: pb.RangeRequest_DESCEND}, &pb.RangeResponse{Header: h, Count: 3, Kvs: kvs(b3, b2, b1)}},
		{"sort by value", &pb.RangeRequest{Key: []byte("b/"), RangeEnd: []byte("b0"), SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_VALUE}, &pb.RangeResponse{Header: h, Count: 3, Kvs: kvs(b3, b2, b1)}},
		{"sort by create descend, limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_CREATE, Limit: 2}, &pb.RangeResponse{Header: h, Count: 6, More: true, Kvs: kvs(nul, b3)}},
		{"sort by mod", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_MOD}, &pb.RangeResponse{Header: h, Count: 4, Kvs: kvs(b2, b1, b3, a)}},
		{"sort by version descend", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b/2"), SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_VERSION}, &pb.RangeResponse{Header: h, Count: 2, Kvs: kvs(a, b1)}},
		// etcd's quirk: order NONE with another target means ascending, but
		// only limit+1 keys (in key order) are fetched before sorting.
		{"target without order sorts the first limit+1", &pb.RangeRequest{Key: []byte("b/"), RangeEnd: []byte("b0"), SortTarget: pb.RangeRequest_VALUE, Limit: 1}, &pb.RangeResponse{Header: h, Count: 3, More: true, Kvs: kvs(b2)}},
		{"min mod revision: count unaffected", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MinModRevision: 6}, &pb.RangeResponse{Header: h, Count: 6, Kvs: kvs(nul, a, b3)}},
		{"max mod revision", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MaxModRevision: 4}, &pb.RangeResponse{Header: h, Count: 6, Kvs: kvs(b1, b2)}},
		{"min create revision", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MinCreateRevision: 5}, &pb.RangeResponse{Header: h, Count: 6, Kvs: kvs(nul, b3, c)}},
		{"max create revision with limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MaxCreateRevision: 4, Limit: 2}, &pb.RangeResponse{Header: h, Count: 6, More: true, Kvs: kvs(a, b1)}},
		{"past revision", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 4}, &pb.RangeResponse{Header: h, Count: 3, Kvs: kvs(kv("a", "zz", 3, 3, 1, 0), b1, b2)}},
		{"past revision, one key", &pb.RangeRequest{Key: []byte("a"), Revision: 6}, &pb.RangeResponse{Header: h, Count: 1, Kvs: kvs(kv("a", "zz", 3, 3, 1, 0))}},
		{"past revision, count only", &pb.RangeRequest{Key: []byte("b/"), RangeEnd: []byte("b0"), Revision: 5, CountOnly: true}, &pb.RangeResponse{Header: h, Count: 2}},
		{"revision 1", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 1}, &pb.RangeResponse{Header: h}},
		{"current revision explicitly", &pb.RangeRequest{Key: []byte("c"), Revision: 8}, &pb.RangeResponse{Header: h, Count: 1, Kvs: kvs(c)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireEqual(t, "range", e.rangeReq(tc.req), tc.want)
		})
	}
	_, err := e.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 9})
	requireErr(t, err, ErrFutureRev, "requested 9", "current 8")
	var fe *FutureRevError
	if !errors.As(err, &fe) || fe.Rev != 8 {
		t.Fatalf("FutureRevError: %#v", err)
	}
}

// TestTxnBasics: compares, branches, one revision with sub revisions, and
// reads inside a txn seeing its earlier writes.
func TestTxnBasics(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("k", "v1", withLease(5)) // 2
	e.put("other", "o")            // 3
	cmp := func(target pb.Compare_CompareTarget, result pb.Compare_CompareResult, key string, union any) *pb.Compare {
		c := &pb.Compare{Key: []byte(key), Target: target, Result: result}
		switch u := union.(type) {
		case string:
			c.TargetUnion = &pb.Compare_Value{Value: []byte(u)}
		case int64:
			switch target {
			case pb.Compare_VERSION:
				c.TargetUnion = &pb.Compare_Version{Version: u}
			case pb.Compare_CREATE:
				c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: u}
			case pb.Compare_MOD:
				c.TargetUnion = &pb.Compare_ModRevision{ModRevision: u}
			case pb.Compare_LEASE:
				c.TargetUnion = &pb.Compare_Lease{Lease: u}
			}
		}
		return c
	}
	for _, tc := range []struct {
		name string
		cmp  *pb.Compare
		want bool
	}{
		{"value =", cmp(pb.Compare_VALUE, pb.Compare_EQUAL, "k", "v1"), true},
		{"value !=", cmp(pb.Compare_VALUE, pb.Compare_NOT_EQUAL, "k", "v1"), false},
		{"value >", cmp(pb.Compare_VALUE, pb.Compare_GREATER, "k", "v0"), true},
		{"value <", cmp(pb.Compare_VALUE, pb.Compare_LESS, "k", "v0"), false},
		{"value of a missing key never holds", cmp(pb.Compare_VALUE, pb.Compare_NOT_EQUAL, "missing", "x"), false},
		{"version =", cmp(pb.Compare_VERSION, pb.Compare_EQUAL, "k", int64(1)), true},
		{"create =", cmp(pb.Compare_CREATE, pb.Compare_EQUAL, "k", int64(2)), true},
		{"create of a missing key is 0", cmp(pb.Compare_CREATE, pb.Compare_EQUAL, "missing", int64(0)), true},
		{"mod <", cmp(pb.Compare_MOD, pb.Compare_LESS, "k", int64(3)), true},
		{"mod >", cmp(pb.Compare_MOD, pb.Compare_GREATER, "k", int64(3)), false},
		{"lease =", cmp(pb.Compare_LEASE, pb.Compare_EQUAL, "k", int64(5)), true},
		{"lease of a missing key is 0", cmp(pb.Compare_LEASE, pb.Compare_EQUAL, "missing", int64(0)), true},
		{"union not matching the target compares with 0", cmp(pb.Compare_MOD, pb.Compare_GREATER, "k", "x"), true},
		{"range: every key must hold", &pb.Compare{Key: []byte("a"), RangeEnd: []byte("z"), Target: pb.Compare_CREATE, Result: pb.Compare_GREATER, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 2}}, false},
		{"range: holds for all", &pb.Compare{Key: []byte("a"), RangeEnd: []byte{0}, Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Version{Version: 1}}, true},
		{"empty range compares with zero", &pb.Compare{Key: []byte("x"), RangeEnd: []byte("y"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.txn(&pb.TxnRequest{Compare: []*pb.Compare{tc.cmp}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Succeeded != tc.want {
				t.Fatalf("succeeded = %v, want %v", resp.Succeeded, tc.want)
			}
			if resp.Header.Revision != 3 || e.s.Rev() != 3 {
				t.Fatalf("a txn that writes nothing moved the revision: header %d, store %d", resp.Header.Revision, e.s.Rev())
			}
		})
	}

	put := func(k, v string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
	}
	get := func(k string, rev int64) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k), Revision: rev}}}
	}
	del := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k)}}}
	}
	resp, err := e.txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmp(pb.Compare_VALUE, pb.Compare_EQUAL, "k", "v1")},
		Success: []*pb.RequestOp{
			get("k", 0),     // before any write: header is the old revision
			del("nothing"),  // deletes nothing, nothing written yet: old revision
			put("k", "v2"),  // sub 0
			get("k", 0),     // sees the put
			get("k", 3),     // explicitly at the revision before the txn
			put("new", "n"), // sub 1
			del("other"),    // sub 2
			del("nothing"),  // deletes nothing, but the txn has written: new revision
			get("other", 0), // gone
			{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
				// Nested compares read the state before the outer txn:
				// "new" does not exist there.
				Compare: []*pb.Compare{cmp(pb.Compare_CREATE, pb.Compare_EQUAL, "new", int64(0))},
				Success: []*pb.RequestOp{put("nested", "yes")}, // sub 3
				Failure: []*pb.RequestOp{put("nested", "no")},
			}}},
		},
		Failure: []*pb.RequestOp{put("k", "failed")},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := func(rev int64) *pb.ResponseHeader { return &pb.ResponseHeader{Revision: rev} }
	rangeResp := func(rev int64, kvs ...*mvccpb.KeyValue) *pb.ResponseOp {
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Header: h(rev), Kvs: kvs, Count: int64(len(kvs))}}}
	}
	putResp := &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: h(4)}}}
	delResp := func(rev, n int64) *pb.ResponseOp {
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: &pb.DeleteRangeResponse{Header: h(rev), Deleted: n}}}
	}
	requireEqual(t, "txn", resp, &pb.TxnResponse{Header: h(4), Succeeded: true, Responses: []*pb.ResponseOp{
		rangeResp(3, kv("k", "v1", 2, 2, 1, 5)),
		delResp(3, 0),
		putResp,
		rangeResp(4, kv("k", "v2", 2, 4, 2, 0)),
		rangeResp(4, kv("k", "v1", 2, 2, 1, 5)),
		putResp,
		delResp(4, 1),
		delResp(4, 0),
		rangeResp(4),
		// etcd leaves a nested txn's header empty.
		{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: true, Responses: []*pb.ResponseOp{putResp}}}},
	}})
	revs, err := e.s.History(4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 1 || len(revs[0].Events) != 4 {
		t.Fatalf("the txn should be one revision of 4 events: %s", fmtRevs(revs))
	}
	for i, key := range []string{"k", "new", "other", "nested"} {
		if got := string(revs[0].Events[i].Kv.Key); got != key {
			t.Fatalf("event %d is on %q, want %q", i, got, key)
		}
	}

	// A read-only txn, and a txn whose taken branch writes nothing, leave
	// the revision alone.
	resp, err = e.txn(&pb.TxnRequest{Compare: []*pb.Compare{cmp(pb.Compare_VALUE, pb.Compare_EQUAL, "k", "nope")}, Success: []*pb.RequestOp{put("k", "x")}, Failure: []*pb.RequestOp{get("k", 0)}})
	if err != nil || resp.Succeeded || resp.Header.Revision != 4 || e.s.Rev() != 4 {
		t.Fatalf("failure branch with a read: %v %v, store at %d", fmtMsg(resp), err, e.s.Rev())
	}
}

// TestTxnDuplicateKeys pins etcd's overlap rules.
func TestTxnDuplicateKeys(t *testing.T) {
	put := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
	}
	del := func(k, end string) *pb.RequestOp {
		r := &pb.DeleteRangeRequest{Key: []byte(k)}
		if end != "" {
			r.RangeEnd = []byte(end)
		}
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
	}
	txn := func(then, els []*pb.RequestOp) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: then, Failure: els}}}
	}
	ops := func(o ...*pb.RequestOp) []*pb.RequestOp { return o }
	for _, tc := range []struct {
		name string
		ops  []*pb.RequestOp
		dup  bool
	}{
		{"two puts", ops(put("a"), put("a")), true},
		{"put and point delete", ops(del("a", ""), put("a")), true},
		{"put inside a deleted range", ops(put("b"), del("a", "c")), true},
		{"put at the end of a deleted range", ops(put("c"), del("a", "c")), false},
		{"deletes may overlap", ops(del("a", "c"), del("b", ""), del("a", "z")), false},
		{"nested put under a delete", ops(del("a", ""), txn(ops(put("a")), nil)), true},
		{"nested put and outer put", ops(put("a"), txn(ops(put("a")), nil)), true},
		{"then and else may share a key", ops(txn(ops(put("a")), ops(put("a")))), false},
		{"two nested txns putting one key", ops(txn(ops(put("a")), nil), txn(nil, ops(put("a")))), true},
		{"a later child's delete over an earlier child's put: etcd allows it", ops(txn(ops(put("a")), nil), txn(ops(del("a", "")), nil)), false},
		{"an earlier child's delete over a later child's put", ops(txn(ops(del("a", "")), nil), txn(ops(put("a")), nil)), true},
		{"a from-key delete overlaps nothing (etcd)", ops(del("a", "\x00"), put("b")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			e.put("a", "1")
			_, err := e.txn(&pb.TxnRequest{Success: tc.ops})
			if tc.dup {
				requireErr(t, err, ErrDuplicateKey)
				if e.s.Rev() != 2 {
					t.Fatalf("refused txn moved the revision to %d", e.s.Rev())
				}
				return
			}
			if err != nil {
				t.Fatalf("txn refused: %v", err)
			}
			// The same ops in the failure branch are checked the same way.
			_, err = e.txn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VERSION, Result: pb.Compare_LESS}}, Failure: tc.ops})
			if err != nil {
				t.Fatalf("txn (failure branch) refused: %v", err)
			}
		})
	}
}

// TestTxnWritesSameKeyTwice: orders of writes that etcd's overlap rules let
// through are executed in order within one revision.
func TestTxnWritesSameKeyTwice(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("a", "1") // 2
	e.put("b", "1") // 3
	resp, err := e.txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}}},
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Value: []byte("2"), PrevKv: true}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Responses[1].GetResponsePut(); got.PrevKv != nil {
		t.Fatalf("put after the delete saw a previous value: %v", got.PrevKv)
	}
	requireEqual(t, "b starts a new life inside the txn", e.get("b", 0), kv("b", "2", 4, 4, 1, 0))
	revs, _ := e.s.History(4, 0)
	requireRevisions(t, "delete a, delete b, put b", revs, []Revision{{Rev: 4, Events: []*mvccpb.Event{
		{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("a"), ModRevision: 4}, PrevKv: kv("a", "1", 2, 2, 1, 0)},
		{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("b"), ModRevision: 4}, PrevKv: kv("b", "1", 3, 3, 1, 0)},
		{Type: mvccpb.Event_PUT, Kv: kv("b", "2", 4, 4, 1, 0)},
	}}})
	if got := e.get("b", 3); !equalKV(got, kv("b", "1", 3, 3, 1, 0)) {
		t.Fatalf("b at 3: %v", got)
	}
}

func equalKV(a, b *mvccpb.KeyValue) bool {
	if a == nil || b == nil {
		return a == b
	}
	return string(a.Key) == string(b.Key) && string(a.Value) == string(b.Value) &&
		a.CreateRevision == b.CreateRevision && a.ModRevision == b.ModRevision && a.Version == b.Version && a.Lease == b.Lease
}

func TestLeases(t *testing.T) {
	e := newEnv(t, Options{})
	keys := func(lease int64) []string {
		ks, err := e.s.KeysWithLease(lease)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range ks {
			out = append(out, string(k))
		}
		return out
	}
	e.put("b", "1", withLease(1))
	e.put("a", "1", withLease(1))
	e.put("c", "1", withLease(2))
	if got := keys(1); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("lease 1: %q", got)
	}
	e.put("a", "2", ignoreLease()) // keeps lease 1
	e.put("b", "2")                // detaches from 1
	e.put("c", "2", withLease(1))  // moves from 2 to 1
	if got := keys(1); len(got) != 2 || got[0] != "a" || got[1] != "c" {
		t.Fatalf("lease 1 after updates: %q", got)
	}
	if got := keys(2); len(got) != 0 {
		t.Fatalf("lease 2 should be empty: %q", got)
	}
	e.del("c", "", false)
	if got := keys(1); len(got) != 1 || got[0] != "a" {
		t.Fatalf("delete detaches: %q", got)
	}
	e.put("x", "1", withLease(1))
	rev := e.s.Rev()
	var resp *pb.DeleteRangeResponse
	revs := e.apply(e.nextIndex(), func(b *Batch) {
		var err error
		if resp, err = b.RevokeLease(1); err != nil {
			t.Fatal(err)
		}
	})
	requireEqual(t, "revoke", resp, &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: rev + 1}, Deleted: 2})
	if len(revs) != 1 || len(revs[0].Events) != 2 || string(revs[0].Events[0].Kv.Key) != "a" || string(revs[0].Events[1].Kv.Key) != "x" {
		t.Fatalf("revoke should delete a and x in one revision, in key order: %s", fmtRevs(revs))
	}
	if e.get("a", 0) != nil || e.get("x", 0) != nil || len(keys(1)) != 0 {
		t.Fatal("revoked keys still there")
	}
	e.apply(e.nextIndex(), func(b *Batch) {
		resp, err := b.RevokeLease(1)
		if err != nil || resp.Deleted != 0 || resp.Header.Revision != rev+1 {
			t.Fatalf("revoking an empty lease: %v %v", resp, err)
		}
	})
	if e.s.Rev() != rev+1 {
		t.Fatalf("revoking an empty lease moved the revision to %d", e.s.Rev())
	}
}

func TestBatch(t *testing.T) {
	e := newEnv(t, Options{})
	b := e.s.NewBatch()
	if _, err := b.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("w"), PrevKv: true}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Range(&pb.RangeRequest{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	requireEqual(t, "the batch sees itself", got, &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 3}, Count: 1, Kvs: []*mvccpb.KeyValue{kv("k", "w", 2, 3, 2, 0)}})
	requireEqual(t, "the store does not see the batch", e.dump(0), &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 1}})

	// A second batch is stale once the first commits.
	other := e.s.NewBatch()
	revs, err := b.Commit(10)
	if err != nil || len(revs) != 2 || revs[0].Rev != 2 || revs[1].Rev != 3 {
		t.Fatalf("Commit: %s %v", fmtRevs(revs), err)
	}
	if _, err := other.Commit(11); !errors.Is(err, ErrStaleBatch) {
		t.Fatalf("stale batch committed: %v", err)
	}
	if _, err := b.Put(&pb.PutRequest{Key: []byte("k")}); !errors.Is(err, ErrBatchClosed) {
		t.Fatalf("put on a committed batch: %v", err)
	}
	if e.s.Rev() != 3 || e.s.AppliedIndex() != 10 {
		t.Fatalf("after commit: rev %d applied %d", e.s.Rev(), e.s.AppliedIndex())
	}

	// An abandoned batch leaves nothing.
	b = e.s.NewBatch()
	if _, err := b.Put(&pb.PutRequest{Key: []byte("gone"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b.Close()
	if e.get("gone", 0) != nil || e.s.Rev() != 3 {
		t.Fatal("closed batch leaked")
	}

	// The applied index never goes back; an empty batch still records it.
	if _, err := e.s.NewBatch().Commit(9); !errors.Is(err, ErrAppliedIndexRegress) {
		t.Fatalf("applied index going back: %v", err)
	}
	if _, err := e.s.NewBatch().Commit(12); err != nil || e.s.AppliedIndex() != 12 || e.s.Rev() != 3 {
		t.Fatalf("empty batch: %v, applied %d rev %d", err, e.s.AppliedIndex(), e.s.Rev())
	}
}

// TestFailedBatch: a request that fails after writing to the Pebble batch
// (only an I/O error can do that) fails the batch: nothing more is applied
// and nothing is committed.
func TestFailedBatch(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("k", "v")
	before := e.dump(0)
	b := e.s.NewBatch()
	defer b.Close()
	injected := errors.New("injected I/O error")
	err := b.apply(func(w *writer) error {
		if _, err := w.put([]byte("half"), []byte("written"), 0, nil); err != nil {
			return err
		}
		return injected
	})
	requireErr(t, err, ErrBatchFailed, "injected")
	if !errors.Is(err, injected) {
		t.Fatalf("the cause is lost: %v", err)
	}
	if _, err := b.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("w")}); !errors.Is(err, ErrBatchFailed) {
		t.Fatalf("put on a failed batch: %v", err)
	}
	if _, err := b.Commit(e.nextIndex()); !errors.Is(err, ErrBatchFailed) {
		t.Fatalf("commit of a failed batch: %v", err)
	}
	requireEqual(t, "nothing committed", e.dump(0), before)
	if e.s.AppliedIndex() != 1 {
		t.Fatalf("applied index moved to %d", e.s.AppliedIndex())
	}
}
