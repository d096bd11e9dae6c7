package mvcc

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestHistory: events per revision in order, PrevKv, a txn as one
// Revision, maxEvents stopping at revision boundaries, and the compacted
// revision reported with ErrCompacted.
func TestHistory(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("a", "1", withLease(3)) // 2
	e.put("a", "2")               // 3
	put := func(k, v string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
	}
	if _, err := e.txn(&pb.TxnRequest{Success: []*pb.RequestOp{put("b", "1"), put("a", "3"), put("c", "1")}}); err != nil { // 4
		t.Fatal(err)
	}
	e.del("a", "b", false) // 5
	e.put("a", "4")        // 6

	want := []Revision{
		{Rev: 2, Events: []*mvccpb.Event{{Type: mvccpb.Event_PUT, Kv: kv("a", "1", 2, 2, 1, 3)}}},
		{Rev: 3, Events: []*mvccpb.Event{{Type: mvccpb.Event_PUT, Kv: kv("a", "2", 2, 3, 2, 0), PrevKv: kv("a", "1", 2, 2, 1, 3)}}},
		{Rev: 4, Events: []*mvccpb.Event{
			{Type: mvccpb.Event_PUT, Kv: kv("b", "1", 4, 4, 1, 0)},
			{Type: mvccpb.Event_PUT, Kv: kv("a", "3", 2, 4, 3, 0), PrevKv: kv("a", "2", 2, 3, 2, 0)},
			{Type: mvccpb.Event_PUT, Kv: kv("c", "1", 4, 4, 1, 0)},
		}},
		{Rev: 5, Events: []*mvccpb.Event{{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("a"), ModRevision: 5}, PrevKv: kv("a", "3", 2, 4, 3, 0)}}},
		{Rev: 6, Events: []*mvccpb.Event{{Type: mvccpb.Event_PUT, Kv: kv("a", "4", 6, 6, 1, 0)}}},
	}
	for _, tc := range []struct {
		from      int64
		maxEvents int
		want      []Revision
	}{
		{1, 0, want},
		{2, 0, want},
		{4, 0, want[2:]},
		{7, 0, nil},
		{100, 0, nil},
		{2, 1, want[:1]},
		{2, 2, want[:2]},
		{3, 2, want[1:3]}, // one event, then a revision of three: never split
		{4, 1, want[2:3]},
		{4, 3, want[2:3]},
		{4, 4, want[2:4]},
	} {
		got, err := e.s.History(tc.from, tc.maxEvents)
		if err != nil {
			t.Fatalf("History(%d, %d): %v", tc.from, tc.maxEvents, err)
		}
		requireRevisions(t, "History", got, tc.want)
	}

	if err := e.compact(4); err != nil {
		t.Fatal(err)
	}
	_, err := e.s.History(3, 0)
	var ce *CompactedError
	if !errors.Is(err, ErrCompacted) || !errors.As(err, &ce) || ce.CompactRev != 4 {
		t.Fatalf("History below the compacted revision: %v", err)
	}
	got, err := e.s.History(e.s.CompactRev(), 0)
	if err != nil {
		t.Fatal(err)
	}
	requireRevisions(t, "History from the compacted revision", got, want[2:])
}

// TestCommitRevisions: Commit returns the revisions of the batch, the same
// events History returns.
func TestCommitRevisions(t *testing.T) {
	e := newEnv(t, Options{})
	b := e.s.NewBatch()
	defer b.Close()
	for _, err := range []error{
		second(b.Put(&pb.PutRequest{Key: []byte("a"), Value: []byte("1")})),
		second(b.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("zzz")})), // no revision
		second(b.Put(&pb.PutRequest{Key: []byte("b"), Value: []byte("1")})),
		second(b.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}})),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	revs, err := b.Commit(1)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := e.s.History(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	requireRevisions(t, "Commit vs History", revs, hist)
	if len(revs) != 3 || revs[2].Rev != 4 || len(revs[2].Events) != 2 {
		t.Fatalf("revisions: %s", fmtRevs(revs))
	}
}

func second[T any](_ T, err error) error { return err }
