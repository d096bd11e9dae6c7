package cairn_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/goleak"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/watch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, dir string) *cairn.DB {
	t.Helper()
	db, err := cairn.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPutGetDeleteTxn(t *testing.T) {
	db := open(t, t.TempDir())
	ctx := ctxT(t)
	p1, err := db.Put(ctx, "config/a", "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(ctx, "config/b", "2"); err != nil {
		t.Fatal(err)
	}
	prev, err := db.Put(ctx, "config/a", "3", cairn.WithPrevKV())
	if err != nil || string(prev.PrevKv.Value) != "1" {
		t.Fatalf("put with prev kv: %v %v", prev, err)
	}
	got, err := db.Get(ctx, "config/", cairn.WithPrefix())
	if err != nil || len(got.Kvs) != 2 || string(got.Kvs[0].Value) != "3" || got.Kvs[0].Version != 2 {
		t.Fatalf("prefix get: %v %v", got, err)
	}
	// A read at the first put's revision sees the old value.
	old, err := db.Get(ctx, "config/a", cairn.WithRev(p1.Header.Revision))
	if err != nil || string(old.Kvs[0].Value) != "1" {
		t.Fatalf("read at revision %d: %v %v", p1.Header.Revision, old, err)
	}
	txn, err := db.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("config/a"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_Value{Value: []byte("3")}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("config/c"), Value: []byte("x")}}}},
	})
	if err != nil || !txn.Succeeded {
		t.Fatalf("txn: %v %v", txn, err)
	}
	del, err := db.Delete(ctx, "config/", cairn.WithPrefix())
	if err != nil || del.Deleted != 3 {
		t.Fatalf("delete prefix: %v %v", del, err)
	}
	if _, err := db.Put(ctx, "", "x"); err == nil {
		t.Fatal("empty key accepted")
	}
}

func TestWatchFromRevisionAndCompaction(t *testing.T) {
	db := open(t, t.TempDir())
	ctx := ctxT(t)
	first, _ := db.Put(ctx, "k", "1")
	db.Put(ctx, "k", "2")
	db.Delete(ctx, "k")
	w, err := db.Watch(ctx, "k", cairn.WithRev(first.Header.Revision))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var events []*mvccpb.Event
	for len(events) < 3 {
		select {
		case r := <-w.C():
			events = append(events, r.Events...)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d of 3 events", len(events))
		}
	}
	if events[0].Type != mvccpb.PUT || string(events[1].Kv.Value) != "2" || events[2].Type != mvccpb.DELETE {
		t.Fatalf("events %v", events)
	}
	last, _ := db.Put(ctx, "k", "3")
	if _, err := db.Compact(ctx, last.Header.Revision); err != nil {
		t.Fatal(err)
	}
	w2, err := db.Watch(ctx, "k", cairn.WithRev(first.Header.Revision))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	for range w2.C() {
	}
	if rev, ok := watch.CompactRevision(w2.Err()); !errors.Is(w2.Err(), watch.ErrCompacted) || !ok || rev != last.Header.Revision {
		t.Fatalf("watch from a compacted revision: err %v (rev %d), want compacted at %d", w2.Err(), rev, last.Header.Revision)
	}
}

func TestLeaseRevokeAndExpiry(t *testing.T) {
	db := open(t, t.TempDir())
	ctx := ctxT(t)
	l, err := db.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	db.Put(ctx, "a", "1", cairn.WithLease(l.ID))
	db.Put(ctx, "b", "1", cairn.WithLease(l.ID))
	ttl, err := db.TimeToLive(ctx, l.ID, true)
	if err != nil || len(ttl.Keys) != 2 || ttl.GrantedTTL != 60 {
		t.Fatalf("time to live: %v %v", ttl, err)
	}
	if _, err := db.Put(ctx, "c", "1", cairn.WithLease(12345)); err == nil {
		t.Fatal("put with an unknown lease accepted")
	}
	if _, err := db.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get(ctx, "\x00", cairn.WithFromKey())
	if err != nil || got.Count != 0 {
		t.Fatalf("keys left after revoke: %v %v", got, err)
	}

	// A 1 s lease expires by itself: the leader proposes its revocation.
	short, _ := db.Grant(ctx, 1)
	put, _ := db.Put(ctx, "ephemeral", "x", cairn.WithLease(short.ID))
	w, _ := db.Watch(ctx, "ephemeral", cairn.WithRev(put.Header.Revision+1))
	defer w.Close()
	select {
	case r := <-w.C():
		if len(r.Events) != 1 || r.Events[0].Type != mvccpb.DELETE {
			t.Fatalf("expiry event %v", r.Events)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lease did not expire")
	}
	if _, err := db.TimeToLive(ctx, short.ID, false); err == nil {
		t.Fatal("expired lease still exists")
	}
}

func TestRestartKeepsDataRevisionsAndLeases(t *testing.T) {
	dir := t.TempDir()
	db, err := cairn.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	l, _ := db.Grant(ctx, 3600)
	var last *pb.PutResponse
	for i := 0; i < 20; i++ {
		last, err = db.Put(ctx, fmt.Sprint("k", i), fmt.Sprint(i), cairn.WithLease(l.ID))
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db = open(t, dir)
	got, err := db.Get(ctx, "k", cairn.WithPrefix())
	if err != nil || got.Count != 20 || got.Header.Revision != last.Header.Revision {
		t.Fatalf("after restart: count %d rev %d (want 20, %d): %v", got.Count, got.Header.Revision, last.Header.Revision, err)
	}
	ttl, err := db.TimeToLive(ctx, l.ID, true)
	if err != nil || len(ttl.Keys) != 20 {
		t.Fatalf("lease after restart: %v %v", ttl, err)
	}
}
