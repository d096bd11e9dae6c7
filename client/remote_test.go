package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/client"
	"github.com/cairn-db/cairn/internal/servercluster"
	"github.com/cairn-db/cairn/watch"
)

func connect(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

// TestBehaviour runs the same behaviour against an embedded database and
// through a Client against a three-node cluster: the program that changes
// one line to move from one to the other sees the same results.
func TestBehaviour(t *testing.T) {
	var embedded, remote []string
	t.Run("embedded", func(t *testing.T) {
		embedded = behaviour(t, openEmbedded(t))
	})
	t.Run("remote", func(t *testing.T) {
		c := servercluster.New(t, servercluster.Options{})
		// One endpoint: a compaction is applied on the member that
		// acknowledged it, but a watch sent to another member right after
		// may reach it first (as with etcd); the behaviour script expects
		// the embedded DB's read-your-compaction order. TestFailover uses
		// every endpoint.
		remote = behaviour(t, connect(t, client.Config{Endpoints: c.Endpoints(c.Names()[1])}))
	})
	if t.Failed() {
		return
	}
	diff(t, embedded, remote)
}

// TestFailover stops each member in turn, the one the client's watch
// stream is on among them, while writing through the client: requests go
// on through the other members, and the open watch resumes on another one
// with every event exactly once, in order.
func TestFailover(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	cl := connect(t, client.Config{Endpoints: c.Endpoints()})
	ctx := ctxT(t, 3*time.Minute)

	start, err := cl.Put(ctx, "failover-start", "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := cl.Watch(ctx, "fo/", cairn.WithPrefix(), cairn.WithRev(start.Header.Revision+1))
	if err != nil {
		t.Fatal(err)
	}
	var evs []*mvccpb.Event
	next, retries := 0, 0
	phase := func(what string) {
		t.Helper()
		for range 20 {
			retries += putOnce(t, ctx, cl, fmt.Sprintf("fo/%04d", next))
			next++
		}
		r, err := cl.Get(ctx, "fo/", cairn.WithPrefix(), cairn.WithCountOnly())
		if err != nil || r.Count != int64(next) {
			t.Fatalf("%s: count %v, %v; want %d", what, r, err, next)
		}
		evs = append(evs, readEvents(t, w, next-len(evs))...)
		t.Logf("%s: %d writes, %d events so far", what, next, len(evs))
	}
	phase("all up")
	for _, name := range c.Names() {
		c.Stop(t, name)
		phase(name + " down")
		c.Start(t, name)
		c.WaitReady(t, name)
	}
	phase("all up again")
	t.Logf("%d writes retried after an error", retries)

	for i, ev := range evs {
		if want := fmt.Sprintf("fo/%04d", i); ev.Type != mvccpb.PUT || string(ev.Kv.Key) != want {
			t.Fatalf("event %d: %s %s, want PUT %s", i, ev.Type, ev.Kv.Key, want)
		}
		if i > 0 && ev.Kv.ModRevision <= evs[i-1].Kv.ModRevision {
			t.Fatalf("event %d at revision %d after %d", i, ev.Kv.ModRevision, evs[i-1].Kv.ModRevision)
		}
	}
	// Nothing more: a progress notification at the last revision comes
	// with no event before it.
	last := evs[len(evs)-1].Kv.ModRevision
	w.RequestProgress()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case r, ok := <-w.C():
			if !ok {
				t.Fatalf("watch ended: %v", w.Err())
			}
			if len(r.Events) > 0 {
				t.Fatalf("unexpected events after the last write: %v", r.Events)
			}
			if r.ProgressNotify && r.Revision >= last {
				return
			}
		case <-timeout:
			t.Fatal("no progress notification within 20s")
		}
	}
}

// putOnce creates key with a transaction that only succeeds if the key does
// not exist, retrying after errors (a write in flight when a member stops,
// or during an election, may fail): the key is written exactly once. It
// returns how many attempts failed.
func putOnce(t *testing.T, ctx context.Context, kv cairn.KV, key string) int {
	t.Helper()
	txn := &pb.TxnRequest{
		Compare: []*pb.Compare{{
			Key: []byte(key), Target: pb.Compare_CREATE, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 0},
		}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: cairn.PutRequest(key, key)}}},
	}
	for failed := 0; ; failed++ {
		_, err := kv.Txn(ctx, txn)
		if err == nil {
			return failed
		}
		if ctx.Err() != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		t.Logf("put %s: %v; retrying", key, err)
		time.Sleep(50 * time.Millisecond)
	}
}

// readEvents reads n events from w.
func readEvents(t *testing.T, w cairn.Watcher, n int) []*mvccpb.Event {
	t.Helper()
	var evs []*mvccpb.Event
	timeout := time.After(30 * time.Second)
	for len(evs) < n {
		select {
		case r, ok := <-w.C():
			if !ok {
				t.Fatalf("watch ended: %v", w.Err())
			}
			if r.WatchID != w.ID() || r.Canceled {
				t.Fatalf("response %+v", r)
			}
			evs = append(evs, r.Events...)
		case <-timeout:
			t.Fatalf("%d of %d events after 30s", len(evs), n)
		}
	}
	if len(evs) > n {
		t.Fatalf("%d events, want %d: %v", len(evs), n, evs)
	}
	return evs
}

// TestEnds checks why watches end: Close, the context, the Client's Close.
func TestEnds(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Nodes: 1})
	cl, err := client.Connect(c.Endpoints()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := ctxT(t, 30*time.Second)

	w, err := cl.Watch(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := drain(t, w); !errors.Is(err, watch.ErrClosed) || errors.Is(err, client.ErrClosed) {
		t.Errorf("after Close: %v, want watch.ErrClosed", err)
	}

	wctx, cancel := context.WithCancel(ctx)
	w, err = cl.Watch(wctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := drain(t, w); err != context.Canceled {
		t.Errorf("after the context ended: %v, want context.Canceled", err)
	}

	w, err = cl.Watch(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := drain(t, w); !errors.Is(err, client.ErrClosed) || !errors.Is(err, watch.ErrClosed) {
		t.Errorf("after the client's Close: %v, want client.ErrClosed", err)
	}
	if _, err := cl.Watch(ctx, "k"); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Watch after Close: %v", err)
	}
	if _, err := cl.Get(ctx, "k"); err == nil {
		t.Error("Get after Close succeeded")
	}
}

// TestTimeouts: with no member up, New fails within its DialTimeout, and
// requests and watch creations within the RequestTimeout.
func TestTimeouts(t *testing.T) {
	start := time.Now()
	_, err := client.New(client.Config{Endpoints: []string{servercluster.FreeAddr(t)}, DialTimeout: 300 * time.Millisecond})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("New with no server: %v after %v", err, time.Since(start))
	}

	c := servercluster.New(t, servercluster.Options{Nodes: 1})
	cl := connect(t, client.Config{Endpoints: c.Endpoints(), RequestTimeout: 300 * time.Millisecond})
	ctx := ctxT(t, 30*time.Second)
	if _, err := cl.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	c.Stop(t, c.Names()[0])
	start = time.Now()
	if _, err := cl.Get(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Get with the member down: %v after %v", err, time.Since(start))
	}
	start = time.Now()
	if _, err := cl.Watch(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Watch with the member down: %v after %v", err, time.Since(start))
	}
}
