package cairn_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/lease"
	"github.com/cairn-db/cairn/mvcc"
	"github.com/cairn-db/cairn/watch"
)

// startKVDB starts a one-node DB in dir with the given state machine
// options (Open with options), and closes it at the end of the test.
func startKVDB(t *testing.T, dir string, o kv.Options) *cairn.DB {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.DataDir = dir
	cfg.ListenPeer = "127.0.0.1:0"
	db, err := cairn.Start(cairn.Config{Engine: cfg, KV: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	select {
	case <-db.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("one-node DB not ready")
	}
	return db
}

// dbState is everything a refused request must leave as it was.
type dbState struct {
	rev    int64
	kvs    *pb.RangeResponse
	past   *pb.RangeResponse // every key at an older revision
	leases []int64
	keys   map[int64][]string // per lease, its keys
}

func readDBState(t *testing.T, ctx context.Context, db *cairn.DB, pastRev int64) dbState {
	t.Helper()
	all, err := db.Get(ctx, "\x00", cairn.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	past, err := db.Get(ctx, "\x00", cairn.WithFromKey(), cairn.WithRev(pastRev))
	if err != nil {
		t.Fatal(err)
	}
	st := dbState{rev: all.Header.Revision, kvs: all, past: past, keys: map[int64][]string{}}
	ls, err := db.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls.Leases {
		st.leases = append(st.leases, l.ID)
		ttl, err := db.TimeToLive(ctx, l.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ttl.Keys {
			st.keys[l.ID] = append(st.keys[l.ID], string(k))
		}
	}
	slices.Sort(st.leases)
	return st
}

func (a dbState) equal(b dbState) bool {
	if a.rev != b.rev || !proto.Equal(a.kvs, b.kvs) || !proto.Equal(a.past, b.past) || !slices.Equal(a.leases, b.leases) {
		return false
	}
	for id, keys := range a.keys {
		if !slices.Equal(keys, b.keys[id]) {
			return false
		}
	}
	return len(a.keys) == len(b.keys)
}

func txnPut(key, value string, lease int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte(value), Lease: lease}}}
}

func txnDelete(key, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end)}}}
}

func txnRange(key, end string, rev int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte(end), Revision: rev}}}
}

func txnNested(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}

// TestDBBadInputChangesNothing sends every kind of bad request through the
// DB (so through raft: each refused write is a committed entry applied as
// nothing) and checks that each fails with its sentinel error and a message
// that says what was wrong, and that nothing was applied: same revision,
// same data now and at a past revision, same leases and lease keys, and a
// watcher on every key sees no event. The next good write then gets the
// very next revision.
func TestDBBadInputChangesNothing(t *testing.T) {
	db := open(t, t.TempDir())
	ctx := ctxT(t)

	// Some state to protect: keys with and without a lease, history, and a
	// compaction.
	l, err := db.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	first, err := db.Put(ctx, "a", "1", cairn.WithLease(l.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"b", "c", "a", "d"} {
		if _, err := db.Put(ctx, k, "2"); err != nil {
			t.Fatal(err)
		}
	}
	compacted := first.Header.Revision + 2
	if _, err := db.Compact(ctx, compacted); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(ctx, "e", "3", cairn.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	dead, err := db.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Revoke(ctx, dead.ID); err != nil {
		t.Fatal(err)
	}
	before := readDBState(t, ctx, db, compacted)
	rev := before.rev
	w, err := db.Watch(ctx, "\x00", cairn.WithFromKey(), cairn.WithRev(rev+1))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	longKey := strings.Repeat("k", mvcc.DefaultMaxKeyBytes+1)
	tooMany := &pb.TxnRequest{}
	for i := range mvcc.DefaultMaxTxnOps + 1 {
		tooMany.Success = append(tooMany.Success, txnPut("many/"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "v", 0))
	}
	tooManyCompares := &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0)}}
	for range mvcc.DefaultMaxTxnOps + 1 {
		tooManyCompares.Compare = append(tooManyCompares.Compare, &pb.Compare{Key: []byte("a"), Target: pb.Compare_VERSION, Result: pb.Compare_GREATER})
	}
	// A nested txn may use only what its parent's largest list leaves over.
	tooManyNested := &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("n0", "v", 0), txnNested(&pb.TxnRequest{Success: tooMany.Success[:mvcc.DefaultMaxTxnOps-1]})}}

	cases := []struct {
		name string
		do   func() error
		want error
		text string // a fragment the message must hold
	}{
		{"put empty key", func() error { _, err := db.Put(ctx, "", "v"); return err }, mvcc.ErrEmptyKey, "key is not provided"},
		{"put key over the limit", func() error { _, err := db.Put(ctx, longKey, "v"); return err }, mvcc.ErrKeyTooLarge, "too large"},
		{"delete empty key", func() error { _, err := db.Delete(ctx, ""); return err }, mvcc.ErrEmptyKey, "key is not provided"},
		{"delete key over the limit", func() error { _, err := db.Delete(ctx, longKey); return err }, mvcc.ErrKeyTooLarge, "too large"},
		{"get key over the limit", func() error { _, err := db.Get(ctx, longKey); return err }, mvcc.ErrKeyTooLarge, "too large"},
		{"get range end over the limit", func() error { _, err := db.Get(ctx, "a", cairn.WithRange("b"+longKey)); return err }, mvcc.ErrKeyTooLarge, "too large"},
		{"get range end before key", func() error { _, err := db.Get(ctx, "c", cairn.WithRange("b")); return err }, mvcc.ErrInvalidRange, "before key"},
		{"delete range end before key", func() error { _, err := db.Delete(ctx, "c", cairn.WithRange("a")); return err }, mvcc.ErrInvalidRange, "before key"},
		{"get negative revision", func() error { _, err := db.Get(ctx, "a", cairn.WithRev(-1)); return err }, mvcc.ErrInvalidRevision, "negative"},
		{"get future revision", func() error { _, err := db.Get(ctx, "a", cairn.WithRev(rev+1)); return err }, mvcc.ErrFutureRev, "future"},
		{"get compacted revision", func() error { _, err := db.Get(ctx, "a", cairn.WithRev(compacted-1)); return err }, mvcc.ErrCompacted, "compacted"},
		{"put unknown lease", func() error { _, err := db.Put(ctx, "a", "v", cairn.WithLease(424242)); return err }, kv.ErrLeaseNotFound, "lease not found"},
		{"put revoked lease", func() error { _, err := db.Put(ctx, "z", "v", cairn.WithLease(dead.ID)); return err }, kv.ErrLeaseNotFound, "lease not found"},
		{"put ignore_value with a value", func() error { _, err := db.Put(ctx, "a", "v", cairn.WithIgnoreValue()); return err }, mvcc.ErrValueProvided, "value is provided"},
		{"put ignore_lease with a lease", func() error {
			_, err := db.Put(ctx, "a", "v", cairn.WithIgnoreLease(), cairn.WithLease(l.ID))
			return err
		}, mvcc.ErrLeaseProvided, "lease is provided"},
		{"put ignore_value on a missing key", func() error { _, err := db.Put(ctx, "missing", "", cairn.WithIgnoreValue()); return err }, mvcc.ErrKeyNotFound, "key not found"},
		{"txn unknown lease after a good put", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0), txnPut("y", "1", 424242)}})
			return err
		}, kv.ErrLeaseNotFound, "lease not found"},
		{"txn unknown lease in a nested txn", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0),
				txnNested(&pb.TxnRequest{Success: []*pb.RequestOp{txnPut("y", "1", dead.ID)}})}})
			return err
		}, kv.ErrLeaseNotFound, "lease not found"},
		{"txn too many ops", func() error { _, err := db.Txn(ctx, tooMany); return err }, mvcc.ErrTooManyOps, "too many operations"},
		{"txn too many compares", func() error { _, err := db.Txn(ctx, tooManyCompares); return err }, mvcc.ErrTooManyOps, "too many operations"},
		{"txn too many ops in a nested txn", func() error { _, err := db.Txn(ctx, tooManyNested); return err }, mvcc.ErrTooManyOps, "too many operations"},
		{"txn duplicate put", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0), txnPut("x", "2", 0)}})
			return err
		}, mvcc.ErrDuplicateKey, "duplicate key"},
		{"txn put and delete of one key", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Failure: []*pb.RequestOp{txnDelete("a", "c"), txnPut("b", "2", 0)},
				Compare: []*pb.Compare{{Key: []byte("nope"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL}}})
			return err
		}, mvcc.ErrDuplicateKey, "duplicate key"},
		{"txn duplicate put in a nested txn", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0),
				txnNested(&pb.TxnRequest{Failure: []*pb.RequestOp{txnPut("x", "2", 0)}})}})
			return err
		}, mvcc.ErrDuplicateKey, "duplicate key"},
		{"txn empty key", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0), txnPut("", "1", 0)}})
			return err
		}, mvcc.ErrEmptyKey, "key is not provided"},
		{"txn compare with an empty key", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{{Target: pb.Compare_VERSION}}, Success: []*pb.RequestOp{txnPut("x", "1", 0)}})
			return err
		}, mvcc.ErrEmptyKey, "key is not provided"},
		{"txn range end before key", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0), txnDelete("d", "c")}})
			return err
		}, mvcc.ErrInvalidRange, "before key"},
		{"txn negative range revision", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0), txnRange("a", "", -1)}})
			return err
		}, mvcc.ErrInvalidRevision, "negative"},
		{"txn range at a future revision after a put", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0), txnRange("a", "", rev+1)}})
			return err
		}, mvcc.ErrFutureRev, "future"},
		{"txn range at a compacted revision after a put", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0), txnRange("a", "", compacted-1)}})
			return err
		}, mvcc.ErrCompacted, "compacted"},
		{"txn ignore_value on a key it deleted", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnDelete("b", "\x00"),
				{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("c"), IgnoreValue: true}}}}})
			return err
		}, mvcc.ErrKeyNotFound, "key not found"},
		{"txn empty operation", func() error {
			_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("x", "1", 0), {}}})
			return err
		}, mvcc.ErrKeyNotFound, "empty operation"},
		{"compact future revision", func() error { _, err := db.Compact(ctx, rev+1); return err }, mvcc.ErrFutureRev, "future"},
		{"compact at the compacted revision", func() error { _, err := db.Compact(ctx, compacted); return err }, mvcc.ErrCompacted, "compacted"},
		{"compact below the compacted revision", func() error { _, err := db.Compact(ctx, compacted-1); return err }, mvcc.ErrCompacted, "compacted"},
		{"compact negative revision", func() error { _, err := db.Compact(ctx, -1); return err }, mvcc.ErrInvalidRevision, "negative"},
		{"revoke unknown lease", func() error { _, err := db.Revoke(ctx, 424242); return err }, kv.ErrLeaseNotFound, "lease not found"},
		{"grant TTL over the limit", func() error { _, err := db.Grant(ctx, lease.MaxTTL+1); return err }, lease.ErrTTLTooLarge, "too large"},
		{"keep alive unknown lease", func() error { _, err := db.KeepAlive(ctx, 424242); return err }, lease.ErrNotFound, "not found"},
		{"time to live unknown lease", func() error { _, err := db.TimeToLive(ctx, dead.ID, true); return err }, lease.ErrNotFound, "not found"},
		{"watch negative revision", func() error { _, err := db.Watch(ctx, "a", cairn.WithRev(-1)); return err }, watch.ErrInvalidRevision, "negative"},
		{"watch empty key", func() error { _, err := db.Watch(ctx, ""); return err }, watch.ErrEmptyKey, "empty key"},
		{"watch range end before key", func() error { _, err := db.Watch(ctx, "c", cairn.WithRange("b")); return err }, watch.ErrInvalidRange, "not after key"},
	}
	for _, c := range cases {
		err := c.do()
		switch {
		case err == nil:
			t.Errorf("%s: accepted", c.name)
		case !errors.Is(err, c.want):
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		case !strings.Contains(err.Error(), c.text):
			t.Errorf("%s: error %q does not say %q", c.name, err, c.text)
		}
		if after := readDBState(t, ctx, db, compacted); !after.equal(before) {
			t.Fatalf("%s changed the state:\nbefore rev %d %v leases %v %v\nafter  rev %d %v leases %v %v", c.name,
				before.rev, before.kvs.Kvs, before.leases, before.keys, after.rev, after.kvs.Kvs, after.leases, after.keys)
		}
	}

	// No event, no revision: a bookmark vouches for the unchanged revision
	// with nothing before it, and the next good write takes rev+1.
	w.RequestProgress()
	select {
	case r := <-w.C():
		if !r.ProgressNotify || len(r.Events) != 0 || r.Revision != rev {
			t.Fatalf("watcher got %+v after the refused requests, want a bookmark at %d", r, rev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no progress notification")
	}
	put, err := db.Put(ctx, "after", "1")
	if err != nil || put.Header.Revision != rev+1 {
		t.Fatalf("good write after the refused ones: %v %v, want revision %d", put, err, rev+1)
	}
	select {
	case r := <-w.C():
		if len(r.Events) != 1 || string(r.Events[0].Kv.Key) != "after" || r.Events[0].Kv.ModRevision != rev+1 {
			t.Fatalf("first event %v, want the put of %q at %d", r.Events, "after", rev+1)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the good write")
	}
}

// TestDBLimitsAreExact checks each limit at its boundary: a key of exactly
// MaxKeyBytes and a value of exactly MaxValueBytes are stored, one byte more
// is refused with nothing applied, and a txn of exactly MaxTxnOps
// operations applies as one revision.
func TestDBLimitsAreExact(t *testing.T) {
	const maxValue = 4096
	db := startKVDB(t, t.TempDir(), kv.Options{MVCC: mvcc.Options{MaxValueBytes: maxValue}})
	ctx := ctxT(t)

	key := strings.Repeat("k", mvcc.DefaultMaxKeyBytes)
	if _, err := db.Put(ctx, key, "v"); err != nil {
		t.Fatalf("key of exactly %d bytes: %v", len(key), err)
	}
	if _, err := db.Put(ctx, "v", strings.Repeat("v", maxValue)); err != nil {
		t.Fatalf("value of exactly %d bytes: %v", maxValue, err)
	}
	before := readDBState(t, ctx, db, 1)
	if _, err := db.Put(ctx, "v", strings.Repeat("v", maxValue+1)); !errors.Is(err, mvcc.ErrValueTooLarge) {
		t.Fatalf("value of %d bytes: %v, want %v", maxValue+1, err, mvcc.ErrValueTooLarge)
	}
	_, err := db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{txnPut("w", "1", 0), txnPut("v", strings.Repeat("v", maxValue+1), 0)}})
	if !errors.Is(err, mvcc.ErrValueTooLarge) {
		t.Fatalf("txn with a value of %d bytes: %v, want %v", maxValue+1, err, mvcc.ErrValueTooLarge)
	}
	if after := readDBState(t, ctx, db, 1); !after.equal(before) {
		t.Fatal("a refused oversized value changed the state")
	}

	full := &pb.TxnRequest{}
	for i := range mvcc.DefaultMaxTxnOps {
		full.Success = append(full.Success, txnPut(strings.Repeat("t", i+1), "v", 0))
	}
	resp, err := db.Txn(ctx, full)
	if err != nil || resp.Header.Revision != before.rev+1 {
		t.Fatalf("txn of exactly %d puts: %v %v, want revision %d", mvcc.DefaultMaxTxnOps, resp, err, before.rev+1)
	}
	got, err := db.Get(ctx, "t", cairn.WithPrefix())
	if err != nil || got.Count != mvcc.DefaultMaxTxnOps || got.Kvs[0].ModRevision != before.rev+1 || got.Kvs[len(got.Kvs)-1].ModRevision != before.rev+1 {
		t.Fatalf("after the full txn: %v %v", got, err)
	}
}

// TestDBValueOverTheDefaultLimit: with the defaults a value over
// MaxValueBytes cannot even be proposed (the proposal limit is the same
// 1.5 MiB, as etcd's request limit); either way it is a clear error and
// nothing is applied.
func TestDBValueOverTheDefaultLimit(t *testing.T) {
	db := open(t, t.TempDir())
	ctx := ctxT(t)
	if _, err := db.Put(ctx, "a", "1"); err != nil {
		t.Fatal(err)
	}
	before := readDBState(t, ctx, db, 1)
	_, err := db.Put(ctx, "a", strings.Repeat("v", mvcc.DefaultMaxValueBytes+1))
	if !errors.Is(err, mvcc.ErrValueTooLarge) && !errors.Is(err, engine.ErrTooLarge) {
		t.Fatalf("value of %d bytes: %v, want %v or %v", mvcc.DefaultMaxValueBytes+1, err, mvcc.ErrValueTooLarge, engine.ErrTooLarge)
	}
	if after := readDBState(t, ctx, db, 1); !after.equal(before) {
		t.Fatal("a refused oversized value changed the state")
	}
}
