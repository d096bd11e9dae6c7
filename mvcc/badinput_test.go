package mvcc

import (
	"errors"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestBadInput: every kind of bad request gets a clear error matching its
// sentinel, and changes nothing: not the revision, not the data, not the
// history, not the lease index; the batch stays usable.
func TestBadInput(t *testing.T) {
	opts := Options{MaxTxnOps: 3, MaxKeyBytes: 16, MaxValueBytes: 32}
	long := []byte(strings.Repeat("k", 17))
	put := func(r *pb.PutRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: r}}
	}
	get := func(r *pb.RangeRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
	}
	del := func(r *pb.DeleteRangeRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
	}
	nested := func(r *pb.TxnRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: r}}
	}
	okPut := put(&pb.PutRequest{Key: []byte("ok"), Value: []byte("v")})
	cases := []struct {
		name  string
		apply func(b *Batch) error
		want  error
		parts []string
	}{
		{"put: empty key", func(b *Batch) error { _, err := b.Put(&pb.PutRequest{Value: []byte("v")}); return err }, ErrEmptyKey, nil},
		{"put: key too large", func(b *Batch) error { _, err := b.Put(&pb.PutRequest{Key: long}); return err }, ErrKeyTooLarge, []string{"17 bytes", "limit 16"}},
		{"put: value too large", func(b *Batch) error {
			_, err := b.Put(&pb.PutRequest{Key: []byte("k"), Value: make([]byte, 33)})
			return err
		}, ErrValueTooLarge, []string{`"k"`, "33 bytes"}},
		{"put: ignore_value with a value", func(b *Batch) error {
			_, err := b.Put(&pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true})
			return err
		}, ErrValueProvided, nil},
		{"put: ignore_lease with a lease", func(b *Batch) error {
			_, err := b.Put(&pb.PutRequest{Key: []byte("a"), Lease: 1, IgnoreLease: true})
			return err
		}, ErrLeaseProvided, nil},
		{"put: ignore_value on a missing key", func(b *Batch) error {
			_, err := b.Put(&pb.PutRequest{Key: []byte("missing"), IgnoreValue: true})
			return err
		}, ErrKeyNotFound, []string{"missing"}},
		{"delete: empty key", func(b *Batch) error { _, err := b.DeleteRange(&pb.DeleteRangeRequest{}); return err }, ErrEmptyKey, nil},
		{"delete: range end before key", func(b *Batch) error {
			_, err := b.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("b"), RangeEnd: []byte("a")})
			return err
		}, ErrInvalidRange, []string{`"b"`, `"a"`}},
		{"delete: range end too large", func(b *Batch) error {
			_, err := b.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: long})
			return err
		}, ErrKeyTooLarge, nil},
		{"range: empty key", func(b *Batch) error { _, err := b.Range(&pb.RangeRequest{}); return err }, ErrEmptyKey, nil},
		{"range: negative revision", func(b *Batch) error { _, err := b.Range(&pb.RangeRequest{Key: []byte("a"), Revision: -1}); return err }, ErrInvalidRevision, []string{"-1"}},
		{"range: range end before key", func(b *Batch) error {
			_, err := b.Range(&pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte("a")})
			return err
		}, ErrInvalidRange, nil},
		{"range: bad sort order", func(b *Batch) error { _, err := b.Range(&pb.RangeRequest{Key: []byte("a"), SortOrder: 3}); return err }, ErrInvalidSortOption, []string{"sort order 3"}},
		{"range: bad sort target", func(b *Batch) error { _, err := b.Range(&pb.RangeRequest{Key: []byte("a"), SortTarget: 5}); return err }, ErrInvalidSortOption, []string{"sort target 5"}},
		{"range: future revision", func(b *Batch) error { _, err := b.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 100}); return err }, ErrFutureRev, nil},
		{"range: compacted revision", func(b *Batch) error { _, err := b.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 2}); return err }, ErrCompacted, []string{"compacted at 3"}},
		{"txn: too many compares", func(b *Batch) error {
			c := &pb.Compare{Key: []byte("a")}
			_, err := b.Txn(&pb.TxnRequest{Compare: []*pb.Compare{c, c, c, c}})
			return err
		}, ErrTooManyOps, []string{"4, limit 3"}},
		{"txn: too many operations", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Failure: []*pb.RequestOp{okPut, okPut, okPut, okPut}})
			return err
		}, ErrTooManyOps, nil},
		{"txn: nested txn over what its parent left", func(b *Batch) error {
			// The outer txn uses 2 of 3, so a nested one may have 1.
			inner := &pb.TxnRequest{Success: []*pb.RequestOp{okPut, okPut}}
			_, err := b.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{nested(inner), get(&pb.RangeRequest{Key: []byte("a")})}})
			return err
		}, ErrTooManyOps, []string{"success[0]"}},
		{"txn: duplicate key", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{okPut, okPut}})
			return err
		}, ErrDuplicateKey, []string{`"ok"`}},
		{"txn: put in a deleted range", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Failure: []*pb.RequestOp{del(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("z")}), okPut}})
			return err
		}, ErrDuplicateKey, nil},
		{"txn: empty operation", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{okPut, {}}})
			return err
		}, ErrKeyNotFound, []string{"success[1]", "empty operation"}},
		{"txn: compare without key", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Compare: []*pb.Compare{{}}, Success: []*pb.RequestOp{okPut}})
			return err
		}, ErrEmptyKey, []string{"compare[0]"}},
		{"txn: compare with a bad target", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: 9}}, Success: []*pb.RequestOp{okPut}})
			return err
		}, ErrInvalidCompare, nil},
		{"txn: compare with a bad result", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Result: 9}}, Success: []*pb.RequestOp{okPut}})
			return err
		}, ErrInvalidCompare, nil},
		{"txn: compare with a backwards range", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("b"), RangeEnd: []byte("a")}}, Success: []*pb.RequestOp{okPut}})
			return err
		}, ErrInvalidRange, nil},
		{"txn: bad put in a nested txn in the branch not taken", func(b *Batch) error {
			inner := &pb.TxnRequest{Failure: []*pb.RequestOp{put(&pb.PutRequest{Key: long})}}
			_, err := b.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{okPut}, Failure: []*pb.RequestOp{nested(inner)}})
			return err
		}, ErrKeyTooLarge, []string{"failure[0]: failure[0]: put"}},
		{"txn: range at a future revision after a write", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{okPut, get(&pb.RangeRequest{Key: []byte("a"), Revision: 5})}})
			return err
		}, ErrFutureRev, []string{"success[1]"}},
		{"txn: range at a compacted revision after a write", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{okPut, get(&pb.RangeRequest{Key: []byte("a"), Revision: 1})}})
			return err
		}, ErrCompacted, nil},
		{"txn: ignore_value on a missing key after a write", func(b *Batch) error {
			_, err := b.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{okPut, put(&pb.PutRequest{Key: []byte("missing"), IgnoreValue: true})}})
			return err
		}, ErrKeyNotFound, []string{"missing"}},
		{"txn: ignore_value on a key deleted earlier in the txn", func(b *Batch) error {
			// etcd's overlap check does not see a from-key delete; etcd
			// would crash applying this txn.
			_, err := b.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				del(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}),
				put(&pb.PutRequest{Key: []byte("a"), IgnoreValue: true}),
			}})
			return err
		}, ErrKeyNotFound, nil},
		{"compact: negative", func(b *Batch) error { _, err := b.Compact(-1); return err }, ErrInvalidRevision, nil},
		{"compact: future", func(b *Batch) error { _, err := b.Compact(5); return err }, ErrFutureRev, nil},
		{"compact: already compacted", func(b *Batch) error { _, err := b.Compact(3); return err }, ErrCompacted, nil},
		{"compact: below the compacted revision", func(b *Batch) error { _, err := b.Compact(2); return err }, ErrCompacted, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, opts)
			e.put("a", "1", withLease(1)) // 2
			e.put("b", "1")               // 3
			if err := e.compact(3); err != nil {
				t.Fatal(err)
			}
			before := e.dump(0)
			hist, err := e.s.History(3, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := e.s.NewBatch()
			defer b.Close()
			err = tc.apply(b)
			requireErr(t, err, tc.want, tc.parts...)
			t.Logf("error: %v", err)
			if errors.Is(err, ErrBatchFailed) {
				t.Fatalf("bad input failed the batch: %v", err)
			}
			if b.Rev() != 3 || b.CompactRev() != 3 {
				t.Fatalf("bad input moved the batch to rev %d compact %d", b.Rev(), b.CompactRev())
			}
			revs, err := b.Commit(e.nextIndex())
			if err != nil || len(revs) != 0 {
				t.Fatalf("batch after bad input: %s %v", fmtRevs(revs), err)
			}
			requireEqual(t, "data", e.dump(0), before)
			after, err := e.s.History(3, 0)
			if err != nil {
				t.Fatal(err)
			}
			requireRevisions(t, "history", after, hist)
			if keys, _ := e.s.KeysWithLease(1); len(keys) != 1 {
				t.Fatalf("lease index changed: %q", keys)
			}
		})
	}
}

func TestBadHistoryAndOptions(t *testing.T) {
	e := newEnv(t, Options{})
	for _, from := range []int64{0, -1} {
		_, err := e.s.History(from, 0)
		requireErr(t, err, ErrInvalidRevision, "history")
	}
	if _, err := Open(e.db, Options{MaxTxnOps: -1}); err == nil {
		t.Fatal("negative MaxTxnOps accepted")
	}
	if _, err := Open(nil, Options{}); err == nil {
		t.Fatal("nil DB accepted")
	}
}
