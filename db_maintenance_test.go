package cairn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/internal/dbcluster"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/mvcc"
)

// caughtUp makes node db apply everything committed so far (a linearizable
// read waits for it).
func caughtUp(t *testing.T, ctx context.Context, db *cairn.DB) {
	t.Helper()
	if _, err := db.Get(ctx, "any"); err != nil {
		t.Fatalf("linearizable read: %v", err)
	}
}

func ids(c *dbcluster.Cluster) []uint64 { return slices.Sorted(maps.Keys(c.DBs)) }

// TestClusterHashesAgree: members fed the same writes (through every
// member, with deletes and a compaction) return the same HashKV at every
// revision from the compacted one, and the same Hash.
func TestClusterHashesAgree(t *testing.T) {
	c := dbcluster.New(t, dbcluster.Options{})
	ctx := ctxT(t)
	var last int64
	for i := 0; i < 60; i++ {
		db := c.DBs[uint64(i%3)+1]
		if i%7 == 6 {
			if _, err := db.Delete(ctx, fmt.Sprintf("k%d", i%10)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		r, err := db.Put(ctx, fmt.Sprintf("k%d", i%10), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.Revision
	}
	compactAt := last / 2
	if _, err := c.DBs[2].Compact(ctx, compactAt); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids(c) {
		caughtUp(t, ctx, c.DBs[id])
	}
	for rev := compactAt; rev <= last; rev++ {
		var want *pb.HashKVResponse
		for _, id := range ids(c) {
			got, err := c.DBs[id].HashKV(ctx, rev)
			if err != nil {
				t.Fatalf("node %d: HashKV(%d): %v", id, rev, err)
			}
			if got.HashRevision != rev || got.CompactRevision != compactAt || got.Header.Revision < last {
				t.Fatalf("node %d: HashKV(%d) = %v", id, rev, got)
			}
			if want == nil {
				want = got
			} else if got.Hash != want.Hash {
				t.Fatalf("HashKV(%d): node %d says %x, another node %x", rev, id, got.Hash, want.Hash)
			}
		}
	}
	var hashes []uint32
	for _, id := range ids(c) {
		h, err := c.DBs[id].Hash(ctx)
		if err != nil {
			t.Fatalf("node %d: Hash: %v", id, err)
		}
		hashes = append(hashes, h.Hash)
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Fatalf("Hash differs between members: %x", hashes)
	}
	if _, err := c.DBs[1].HashKV(ctx, compactAt-1); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("HashKV below the compacted revision: %v", err)
	}
	if _, err := c.DBs[1].HashKV(ctx, last+100); !errors.Is(err, mvcc.ErrFutureRev) {
		t.Fatalf("HashKV of a future revision: %v", err)
	}
}

// TestClusterAlarm: a NOSPACE alarm activated through one member refuses
// writes proposed through another (and changes nothing), lets deletes
// through, is listed on every member, and its deactivation restores
// writes.
func TestClusterAlarm(t *testing.T) {
	c := dbcluster.New(t, dbcluster.Options{})
	ctx := ctxT(t)
	if _, err := c.DBs[3].Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.DBs[1].Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE})
	if err != nil {
		t.Fatal(err)
	}
	want := []*pb.AlarmMember{{MemberID: 1, Alarm: pb.AlarmType_NOSPACE}}
	if !proto.Equal(&pb.AlarmResponse{Alarms: resp.Alarms}, &pb.AlarmResponse{Alarms: want}) {
		t.Fatalf("activate: %v", resp)
	}
	before, err := c.DBs[2].Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DBs[2].Put(ctx, "k", "x")
	if !errors.Is(err, kv.ErrNoSpace) || err.Error() != "etcdserver: mvcc: database space exceeded" {
		t.Fatalf("put through node 2 under NOSPACE: %v", err)
	}
	if _, err := c.DBs[3].Grant(ctx, 60); !errors.Is(err, kv.ErrNoSpace) {
		t.Fatalf("grant through node 3 under NOSPACE: %v", err)
	}
	after, err := c.DBs[2].Get(ctx, "k")
	if err != nil || after.Header.Revision != before.Header.Revision || string(after.Kvs[0].Value) != "v" {
		t.Fatalf("refused writes changed the store: %v, %v", after, err)
	}
	for _, id := range ids(c) {
		caughtUp(t, ctx, c.DBs[id])
		if got := c.DBs[id].Alarms(); !proto.Equal(&pb.AlarmResponse{Alarms: got}, &pb.AlarmResponse{Alarms: want}) {
			t.Fatalf("node %d: alarms %v", id, got)
		}
		get, err := c.DBs[id].Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
		if err != nil || len(get.Alarms) != 1 || get.Header.Revision != before.Header.Revision {
			t.Fatalf("node %d: alarm GET: %v, %v", id, get, err)
		}
	}
	if _, err := c.DBs[2].Delete(ctx, "k"); err != nil {
		t.Fatalf("delete under NOSPACE: %v", err)
	}

	// Bad alarm requests are refused before raft.
	for _, bad := range []*pb.AlarmRequest{
		{Action: pb.AlarmRequest_AlarmAction(9), Alarm: pb.AlarmType_NOSPACE},
		{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType(5)},
		{Action: pb.AlarmRequest_ACTIVATE, Alarm: pb.AlarmType_CORRUPT},
	} {
		if _, err := c.DBs[1].Alarm(ctx, bad); !errors.Is(err, kv.ErrBadRequest) {
			t.Fatalf("alarm request %v: %v, want kv.ErrBadRequest", bad, err)
		}
	}

	resp, err = c.DBs[3].Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE})
	if err != nil || len(resp.Alarms) != 1 {
		t.Fatalf("deactivate: %v, %v", resp, err)
	}
	if _, err := c.DBs[2].Put(ctx, "k", "x"); err != nil {
		t.Fatalf("put after deactivation: %v", err)
	}
	for _, id := range ids(c) {
		caughtUp(t, ctx, c.DBs[id])
		if got := c.DBs[id].Alarms(); len(got) != 0 {
			t.Fatalf("node %d: alarms %v after deactivation", id, got)
		}
	}
}

// TestClusterPublishMember: what every member publishes is visible on
// every member; a forgotten member disappears everywhere; bad input is
// refused.
func TestClusterPublishMember(t *testing.T) {
	c := dbcluster.New(t, dbcluster.Options{})
	ctx := ctxT(t)
	want := map[uint64]kv.MemberAttributes{}
	for _, id := range ids(c) {
		a := kv.MemberAttributes{Name: fmt.Sprintf("node-%d", id), ClientURLs: []string{fmt.Sprintf("http://127.0.0.1:%d", 2379+10*id)}}
		if err := c.DBs[id].PublishMember(ctx, a.Name, a.ClientURLs); err != nil {
			t.Fatalf("node %d: publish: %v", id, err)
		}
		want[id] = a
	}
	same := func(a, b kv.MemberAttributes) bool {
		return a.Name == b.Name && slices.Equal(a.ClientURLs, b.ClientURLs)
	}
	for _, id := range ids(c) {
		caughtUp(t, ctx, c.DBs[id])
		if got := c.DBs[id].MemberAttributes(); !maps.EqualFunc(got, want, same) {
			t.Fatalf("node %d: member attributes %v, want %v", id, got, want)
		}
	}
	if err := c.DBs[1].ForgetMember(ctx, 3); err != nil {
		t.Fatal(err)
	}
	delete(want, 3)
	for _, id := range ids(c) {
		caughtUp(t, ctx, c.DBs[id])
		if got := c.DBs[id].MemberAttributes(); !maps.EqualFunc(got, want, same) {
			t.Fatalf("node %d: member attributes %v after forgetting 3, want %v", id, got, want)
		}
	}
	for name, err := range map[string]error{
		"nothing":  c.DBs[1].PublishMember(ctx, "", nil),
		"bad URL":  c.DBs[1].PublishMember(ctx, "n", []string{"127.0.0.1:2379"}),
		"member 0": c.DBs[1].ForgetMember(ctx, 0),
	} {
		if !errors.Is(err, kv.ErrBadRequest) {
			t.Fatalf("%s: %v, want kv.ErrBadRequest", name, err)
		}
	}
}

// TestDBSnapshotSizeDefragment: a snapshot of a node verifies as a backup
// of its data; Size and Defragment work on a running node.
func TestDBSnapshotSizeDefragment(t *testing.T) {
	db := open(t, t.TempDir())
	ctx := ctxT(t)
	var last int64
	for i := 0; i < 100; i++ {
		r, err := db.Put(ctx, fmt.Sprintf("k%d", i%10), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.Revision
	}
	var buf bytes.Buffer
	n, err := db.Snapshot(ctx, &buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("Snapshot: %d bytes, %d written, %v", n, buf.Len(), err)
	}
	info, err := kv.VerifyBackup(bytes.NewReader(buf.Bytes()))
	if err != nil || info.Rev != last {
		t.Fatalf("VerifyBackup: %+v, %v (last revision %d)", info, err, last)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.Snapshot(done, &buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("Snapshot with an ended context: %v", err)
	}
	if total, inUse := db.Size(); total <= 0 || inUse < 0 || inUse > total {
		t.Fatalf("Size: total %d, in use %d", total, inUse)
	}
	if _, err := db.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	if err := db.Defragment(ctx); err != nil {
		t.Fatalf("Defragment: %v", err)
	}
	got, err := db.Get(ctx, "k9")
	if err != nil || string(got.Kvs[0].Value) != "99" {
		t.Fatalf("after defragment: %v, %v", got, err)
	}
}
