package server_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/servercluster"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/server"
)

// TestMaintenance: Status from every member agrees on leader and term;
// HashKV is equal on every member at one revision; the snapshot stream is a
// verifiable backup of the data; MoveLeader moves leadership; Defragment
// runs.
func TestMaintenance(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx := ctxT(t, 60*time.Second)
	cl := newClient(t, c.Endpoints()...)
	var last int64
	for i := range 50 {
		r, err := cl.Put(ctx, "k"+string(rune('a'+i%26)), "v")
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.Revision
	}
	leader := c.Leader(t)
	var hashes []uint32
	for _, ep := range c.Endpoints() {
		st, err := cl.Status(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader != c.ID(leader) || st.Version != server.Version || st.DbSize <= 0 || st.RaftIndex == 0 {
			t.Errorf("status of %s: %+v, want leader %x", ep, st, c.ID(leader))
		}
		h, err := cl.HashKV(ctx, ep, last)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h.Hash)
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Fatalf("HashKV at %d differs between members: %x", last, hashes)
	}
	rc, err := cl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	info, err := kv.VerifyBackup(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("the snapshot stream is not a valid backup: %v", err)
	}
	if info.Rev != last {
		t.Fatalf("backup at revision %d, want %d", info.Rev, last)
	}
	// MoveLeader must go to the leader; a follower refuses.
	var target string
	for _, n := range c.Names() {
		if n != leader {
			target = n
		}
	}
	lcl := newClient(t, c.Endpoints(leader)...)
	fcl := newClient(t, c.Endpoints(target)...)
	if _, err := fcl.MoveLeader(ctx, c.ID(leader)); !errors.Is(err, rpctypes.ErrNotLeader) {
		t.Errorf("move leader through a follower: %v, want %v", err, rpctypes.ErrNotLeader)
	}
	if _, err := lcl.MoveLeader(ctx, 42); !errors.Is(err, rpctypes.ErrBadLeaderTransferee) {
		t.Errorf("move leader to an unknown member: %v, want %v", err, rpctypes.ErrBadLeaderTransferee)
	}
	if _, err := lcl.MoveLeader(ctx, c.ID(target)); err != nil {
		t.Fatal(err)
	}
	if now := c.Leader(t); now != target {
		t.Fatalf("leader is %s after moving it to %s", now, target)
	}
	if _, err := cl.Defragment(ctx, c.Endpoints()[0]); err != nil {
		t.Fatal(err)
	}
	if got, err := cl.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || got.Count != 26 {
		t.Fatalf("after defragment: %v %v", got, err)
	}
}

// TestQuotaRaisesNoSpace: past the storage quota, writes fail with etcd's
// "database space exceeded", the NOSPACE alarm shows in Status and Alarm
// list, reads and deletes work, and disarming the alarm (after raising the
// quota, here by restarting) lets writes through again.
func TestQuotaRaisesNoSpace(t *testing.T) {
	quota := int64(1 << 20)
	c := servercluster.New(t, servercluster.Options{Nodes: 1, Tune: func(_ string, o *server.Options) {
		o.QuotaBytes = quota
	}})
	ctx := ctxT(t, 60*time.Second)
	cl := newClient(t, c.Endpoints()...)
	val := string(make([]byte, 64<<10))
	var err error
	var i int
	for i = 0; i < 200; i++ {
		if _, err = cl.Put(ctx, "big"+string(rune('a'+i%26)), val); err != nil {
			break
		}
	}
	if !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("after %d puts of 64 KiB with a 1 MiB quota: %v, want %v", i, err, rpctypes.ErrNoSpace)
	}
	alarms, err := cl.AlarmList(ctx)
	if err != nil || len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("alarms: %v %v, want NOSPACE", alarms, err)
	}
	st, err := cl.Status(ctx, c.Endpoints()[0])
	if err != nil || len(st.Errors) != 1 {
		t.Fatalf("status errors: %v %v, want the alarm", st, err)
	}
	before, err := cl.Get(ctx, "big", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Grant(ctx, 10); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Errorf("grant under NOSPACE: %v, want %v", err, rpctypes.ErrNoSpace)
	}
	if _, err := cl.Delete(ctx, "biga"); err != nil {
		t.Errorf("delete under NOSPACE: %v", err)
	}
	// Raising the quota alone does not disarm the alarm: as in etcd, an
	// operator does.
	c.Stop(t, "n1")
	quota = 1 << 30
	c.Start(t, "n1")
	c.WaitReady(t, "n1")
	if _, err := cl.Put(ctx, "small", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("put with the alarm still armed: %v, want %v", err, rpctypes.ErrNoSpace)
	}
	if _, err := cl.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: alarms.Alarms[0].MemberID, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "small", "v"); err != nil {
		t.Fatalf("put after disarming: %v", err)
	}
	after, err := cl.Get(ctx, "big", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || after.Count != before.Count-1 {
		t.Fatalf("%v %v: the refused writes changed the data (%d keys before the delete)", after, err, before.Count)
	}
}
