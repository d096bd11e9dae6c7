package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/servercluster"
)

// TestBadRequestsChangeNothing sends malformed requests straight over gRPC
// (what clientv3 would refuse to build): each gets a clear error with the
// right code, the server stays up, and the revision does not move.
func TestBadRequestsChangeNothing(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Nodes: 1})
	ctx := ctxT(t, 30*time.Second)
	conn := rawConn(t, c.Endpoints()[0])
	kvc, lc := pb.NewKVClient(conn), pb.NewLeaseClient(conn)
	put, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	rev := put.Header.Revision
	cases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"put without key", func() error {
			_, err := kvc.Put(ctx, &pb.PutRequest{Value: []byte("v")})
			return err
		}, codes.InvalidArgument},
		{"range end before key", func() error {
			_, err := kvc.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("b"), RangeEnd: []byte("a")})
			return err
		}, codes.InvalidArgument},
		{"invalid sort target", func() error {
			_, err := kvc.Range(ctx, &pb.RangeRequest{Key: []byte("k"), SortTarget: 99})
			return err
		}, codes.InvalidArgument},
		{"ignore value with a value", func() error {
			_, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("x"), IgnoreValue: true})
			return err
		}, codes.InvalidArgument},
		{"duplicate key in txn", func() error {
			op := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("d")}}}
			_, err := kvc.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{op, op}})
			return err
		}, codes.InvalidArgument},
		{"empty txn op", func() error {
			_, err := kvc.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{}}})
			return err
		}, codes.InvalidArgument},
		{"compact a future revision", func() error {
			_, err := kvc.Compact(ctx, &pb.CompactionRequest{Revision: rev + 100})
			return err
		}, codes.OutOfRange},
		{"negative lease id", func() error {
			_, err := lc.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: -5, TTL: 10})
			return err
		}, codes.InvalidArgument},
		{"revoke an unknown lease", func() error {
			_, err := lc.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: 77})
			return err
		}, codes.NotFound},
		{"oversized put", func() error {
			_, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("big"), Value: make([]byte, 1600<<10)})
			return err
		}, codes.InvalidArgument},
		{"put over gRPC's message limit", func() error {
			_, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("huge"), Value: make([]byte, 3<<20)})
			return err
		}, codes.ResourceExhausted},
	}
	for _, tc := range cases {
		err := tc.call()
		if status.Code(err) != tc.want {
			t.Errorf("%s: %v, want code %v", tc.name, err, tc.want)
		}
	}
	got, err := kvc.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Revision != rev || got.Count != 1 {
		t.Fatalf("after the bad requests: revision %d with %d keys, want %d with 1", got.Header.Revision, got.Count, rev)
	}
}

// TestPartitionedMemberRefusesWithoutLeader: a client of a member cut off
// from the others gets "no leader" for writes (fast with
// WithRequireLeader), linearizable reads do not return stale data, and the
// member serves again once the partition heals.
func TestPartitionedMemberRefusesWithoutLeader(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Memnet: true})
	ctx := ctxT(t, 60*time.Second)
	leader := c.Leader(t)
	var cut string
	for _, n := range c.Names() {
		if n != leader {
			cut = n
			break
		}
	}
	all := newClient(t, c.Endpoints(leader)...)
	if _, err := all.Put(ctx, "k", "before"); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c.Endpoints(cut)...)
	wch := cl.Watch(clientv3.WithRequireLeader(ctx), "k")
	c.Net.Isolate(c.ID(cut))
	// The majority moves on.
	if _, err := all.Put(ctx, "k", "after"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the cut member loses its leader", func() bool {
		l, _, _ := c.Servers[cut].DB().Engine().Leader()
		return l == 0
	})
	rctx := clientv3.WithRequireLeader(ctx)
	if _, err := cl.Put(rctx, "k", "lost"); !errors.Is(err, rpctypes.ErrNoLeader) {
		t.Errorf("put with require-leader on the cut member: %v, want %v", err, rpctypes.ErrNoLeader)
	}
	// A watch that requires a leader ends with "no leader" instead of
	// silently waiting.
	func() {
		for {
			select {
			case r, ok := <-wch:
				if !ok {
					t.Fatal("require-leader watch closed without an error")
				}
				if err := r.Err(); err != nil {
					if !errors.Is(err, rpctypes.ErrNoLeader) {
						t.Errorf("require-leader watch ended with %v, want %v", err, rpctypes.ErrNoLeader)
					}
					return
				}
			case <-ctx.Done():
				t.Fatal("require-leader watch on the cut member never ended")
			}
		}
	}()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	got, err := cl.Get(short, "k")
	cancel()
	if err == nil {
		t.Errorf("linearizable get on the cut member answered %q, want an error", got.Kvs[0].Value)
	}
	stale, err := cl.Get(ctx, "k", clientv3.WithSerializable())
	if err != nil || string(stale.Kvs[0].Value) != "before" {
		t.Errorf("serializable get on the cut member: %v %v, want its local value", stale, err)
	}
	c.Net.Heal()
	waitFor(t, ctx, "the healed member serves the new value", func() bool {
		got, err := cl.Get(ctx, "k")
		return err == nil && string(got.Kvs[0].Value) == "after"
	})
	if got, _ := all.Get(ctx, "k"); string(got.Kvs[0].Value) != "after" {
		t.Fatalf("the refused write changed the data: %q", got.Kvs[0].Value)
	}
}

// TestStoppedMemberClientFails: a client whose only endpoint is stopped
// gets an error within its deadline, not a hang.
func TestStoppedMemberClientFails(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx := ctxT(t, 30*time.Second)
	name := c.Names()[2]
	cl := newClient(t, c.Endpoints(name)...)
	c.Stop(t, name)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := cl.Put(short, "k", "v"); err == nil {
		t.Fatal("put through a stopped member succeeded")
	}
	other := newClient(t, c.Endpoints(c.Names()[0])...)
	if _, err := other.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("the rest of the cluster: %v", err)
	}
}
