package server_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/internal/servercluster"
	"github.com/cairn-db/cairn/server"
)

// TestReadPolicyMetadata: each policy chosen through the gRPC metadata key
// reads the latest write from every member; an unknown value is refused as
// an invalid argument; with overrides off, a policy other than the default
// is refused with a clear error and the default still serves.
func TestReadPolicyMetadata(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Tune: func(name string, o *server.Options) {
		if name == "n3" {
			o.DB.Engine.ReadConsistency = engine.DefaultReadConsistency(o.DB.Engine.Raft)
			o.DB.Engine.ReadConsistency.AllowClientOverride = false
		}
	}})
	ctx := ctxT(t, 60*time.Second)
	cl := newClient(t, c.Endpoints()...)
	put, err := cl.Put(ctx, "k", "v")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Names()[:2] {
		mc := newClient(t, c.Endpoints(n)...)
		for _, p := range []string{"linearizable", "lease", "eventual", "LeaseRead"} {
			pctx := metadata.AppendToOutgoingContext(ctx, server.ReadConsistencyKey, p)
			var got *clientv3.GetResponse
			// eventual may lag a moment on a follower
			waitFor(t, ctx, p+" read of the write on "+n, func() bool {
				got, err = mc.Get(pctx, "k")
				return err == nil && len(got.Kvs) == 1 && got.Header.Revision >= put.Header.Revision
			})
		}
		bad := metadata.AppendToOutgoingContext(ctx, server.ReadConsistencyKey, "sometimes")
		if _, err := mc.Get(bad, "k"); status.Code(err) != codes.InvalidArgument {
			t.Errorf("unknown policy: %v, want InvalidArgument", err)
		}
	}
	strict := newClient(t, c.Endpoints("n3")...)
	lctx := metadata.AppendToOutgoingContext(ctx, server.ReadConsistencyKey, "lease")
	_, err = strict.Get(lctx, "k")
	if status.Code(err) != codes.FailedPrecondition || !contains(err.Error(), "allow_client_override") {
		t.Errorf("override on a member that forbids it: %v, want FailedPrecondition naming allow_client_override", err)
	}
	dctx := metadata.AppendToOutgoingContext(ctx, server.ReadConsistencyKey, "linearizable")
	if got, err := strict.Get(dctx, "k"); err != nil || len(got.Kvs) != 1 {
		t.Errorf("the default policy named explicitly: %v %v", got, err)
	}
	if got, err := strict.Get(context.WithoutCancel(ctx), "k"); err != nil || len(got.Kvs) != 1 {
		t.Errorf("no policy on the strict member: %v %v", got, err)
	}
}
