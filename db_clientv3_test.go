package cairn_test

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/kv"
)

// TestDBEmptyKeyWithPrefixOrFromKeyMeansEveryKey: the options are
// clientv3's, and in clientv3 an empty key with WithPrefix or WithFromKey
// means every key (clientv3 sends key "\x00", range_end "\x00"). Get and
// Delete must do the same — as Watch already does — rather than fail with
// "key is not provided".
func TestDBEmptyKeyWithPrefixOrFromKeyMeansEveryKey(t *testing.T) {
	db := open(t, t.TempDir())
	ctx := ctxT(t)
	for _, k := range []string{"a", "b/c", "\xff"} {
		if _, err := db.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	w, err := db.Watch(ctx, "", cairn.WithPrefix())
	if err != nil {
		t.Fatalf("watch every key: %v", err)
	}
	defer w.Close()
	for _, opt := range []cairn.OpOption{cairn.WithPrefix(), cairn.WithFromKey()} {
		got, err := db.Get(ctx, "", opt)
		if err != nil || got.Count != 3 {
			t.Errorf("get of every key: %v %v, want the 3 keys", got, err)
		}
	}
	del, err := db.Delete(ctx, "", cairn.WithPrefix(), cairn.WithPrevKV())
	if err != nil || del.Deleted != 3 {
		t.Fatalf("delete of every key: %v %v, want 3 deleted", del, err)
	}
}

// TestDBTxnChecksLeasesOnlyOnThePathTaken: etcd checks that the leases of a
// txn's puts exist on the path the compares choose only (checkTxn in etcd's
// server/etcdserver/txn/txn.go walks txnPath), so a txn whose branch not
// taken names a lease that is gone applies. Cairn must do the same; the
// taken branch naming an unknown lease is still refused, nothing applied.
func TestDBTxnChecksLeasesOnlyOnThePathTaken(t *testing.T) {
	db := open(t, t.TempDir())
	ctx := ctxT(t)
	l, err := db.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	exists := []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL,
		TargetUnion: &pb.Compare_Version{Version: 0}}}

	// The lease is on the failure branch, not taken: the txn applies.
	resp, err := db.Txn(ctx, &pb.TxnRequest{Compare: exists,
		Success: []*pb.RequestOp{txnPut("k", "created", 0)},
		Failure: []*pb.RequestOp{txnPut("k", "leased", l.ID)}})
	if err != nil || !resp.Succeeded {
		t.Errorf("txn with a revoked lease on the branch not taken: %v %v, want it applied", resp, err)
	}
	// Also in a nested txn whose branch is not taken.
	resp, err = db.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{
		txnNested(&pb.TxnRequest{Compare: exists, Success: []*pb.RequestOp{txnPut("n", "leased", l.ID)}, Failure: []*pb.RequestOp{txnPut("n", "plain", 0)}})}})
	if err != nil {
		t.Errorf("txn with a revoked lease in a nested branch not taken: %v", err)
	}
	// On the path taken it is refused.
	before, _ := db.Get(ctx, "\x00", cairn.WithFromKey())
	_, err = db.Txn(ctx, &pb.TxnRequest{Compare: exists,
		Success: []*pb.RequestOp{txnPut("x", "1", 0)},
		Failure: []*pb.RequestOp{txnPut("x", "1", 0), txnPut("y", "leased", l.ID)}})
	if !errors.Is(err, kv.ErrLeaseNotFound) {
		t.Fatalf("txn with a revoked lease on the path taken: %v, want %v", err, kv.ErrLeaseNotFound)
	}
	if after, _ := db.Get(ctx, "\x00", cairn.WithFromKey()); after.Header.Revision != before.Header.Revision {
		t.Fatalf("the refused txn moved the revision from %d to %d", before.Header.Revision, after.Header.Revision)
	}
}
