package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/servercluster"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClientV3KV drives KV and Txn through each member, followers
// included, and reads every write back from every member.
func TestClientV3KV(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx := ctxT(t, 60*time.Second)
	var clients []*clientv3.Client
	for _, n := range c.Names() {
		clients = append(clients, newClient(t, c.Endpoints(n)...))
	}
	var lastRev int64
	for i, cl := range clients {
		resp, err := cl.Put(ctx, fmt.Sprintf("k/%d", i), fmt.Sprintf("v%d", i))
		if err != nil {
			t.Fatalf("put through member %d: %v", i, err)
		}
		if resp.Header.Revision <= lastRev {
			t.Fatalf("revision %d after %d", resp.Header.Revision, lastRev)
		}
		lastRev = resp.Header.Revision
		if resp.Header.ClusterId == 0 || resp.Header.MemberId != c.ID(c.Names()[i]) || resp.Header.RaftTerm == 0 {
			t.Errorf("header %+v: want cluster id, member id %x and term", resp.Header, c.ID(c.Names()[i]))
		}
	}
	for i, cl := range clients {
		got, err := cl.Get(ctx, "k/", clientv3.WithPrefix())
		if err != nil {
			t.Fatalf("get through member %d: %v", i, err)
		}
		if len(got.Kvs) != 3 || string(got.Kvs[2].Value) != "v2" || got.Header.Revision != lastRev {
			t.Fatalf("member %d sees %v at %d, want 3 keys at %d", i, got.Kvs, got.Header.Revision, lastRev)
		}
	}
	// Compare-and-swap through a follower: one of two concurrent swaps wins.
	cl := clients[1]
	put, _ := cl.Put(ctx, "cas", "0")
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr, err := clients[i].Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision("cas"), "=", put.Header.Revision)).
				Then(clientv3.OpPut("cas", fmt.Sprint(i+1))).
				Else(clientv3.OpGet("cas")).Commit()
			if err != nil {
				t.Errorf("txn: %v", err)
				return
			}
			if tr.Succeeded {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d compare-and-swaps won, want exactly 1", wins)
	}
	// Delete with prev kv, then the key is gone everywhere.
	del, err := cl.Delete(ctx, "k/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	if err != nil || del.Deleted != 3 || len(del.PrevKvs) != 3 {
		t.Fatalf("delete: %v %v", del, err)
	}
	got, err := clients[2].Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || got.Count != 0 {
		t.Fatalf("after delete: %v %v", got, err)
	}
	// Errors come back as etcd's.
	if _, err := cl.Get(ctx, "cas", clientv3.WithRev(lastRev+1000)); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Errorf("get at a future revision: %v, want %v", err, rpctypes.ErrFutureRev)
	}
	if _, err := cl.Compact(ctx, lastRev); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Get(ctx, "cas", clientv3.WithRev(lastRev-1)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("get at a compacted revision: %v, want %v", err, rpctypes.ErrCompacted)
	}
	if _, err := cl.Put(ctx, "k", "v", clientv3.WithLease(12345)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Errorf("put with an unknown lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
	}
	if _, err := cl.Put(ctx, "", "v"); !errors.Is(err, rpctypes.ErrEmptyKey) {
		t.Errorf("put of an empty key: %v, want %v", err, rpctypes.ErrEmptyKey)
	}
	ops := make([]clientv3.Op, 200)
	for i := range ops {
		ops[i] = clientv3.OpPut(fmt.Sprint(i), "")
	}
	if _, err := cl.Txn(ctx).Then(ops...).Commit(); !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Errorf("txn of 200 ops: %v, want %v", err, rpctypes.ErrTooManyOps)
	}
	// Over the request limit (1.5 MiB) but under gRPC's message limit:
	// the server refuses it.
	big := make([]byte, 1600<<10)
	if _, err := cl.Put(ctx, "big", string(big)); !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Errorf("put of 1.6 MiB: %v, want %v", err, rpctypes.ErrRequestTooLarge)
	}
	// Nothing above changed the data.
	if got, err := cl.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithKeysOnly()); err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Key) != "cas" {
		t.Errorf("keys after the refused requests: %v %v, want only cas", got, err)
	}
}

// TestClientV3WatchResumesAfterMemberRestart: a watch through one member
// sees every revision in order; when that member restarts, clientv3
// reconnects to another and resumes from the next revision, with no gap and
// no duplicate.
func TestClientV3WatchResumesAfterMemberRestart(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx := ctxT(t, 90*time.Second)
	watched := c.Names()[0]
	wcl := newClient(t, c.Endpoints()...)
	// Pin the watch to one member first: a client of that member only,
	// then the restart; clientv3 with every endpoint reconnects.
	wcl.SetEndpoints(c.Endpoints(watched)...)
	writer := newClient(t, c.Endpoints(c.Names()[1:]...)...)
	start, err := writer.Put(ctx, "w/start", "")
	if err != nil {
		t.Fatal(err)
	}
	wch := wcl.Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision), clientv3.WithPrevKV())
	const total = 200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			if i == total/3 {
				wcl.SetEndpoints(c.Endpoints()...)
				c.Stop(t, watched)
			}
			if i == 2*total/3 {
				c.Start(t, watched)
			}
			for {
				_, err := writer.Put(ctx, fmt.Sprintf("w/%03d", i), fmt.Sprint(i))
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Errorf("put %d: %v", i, err)
					return
				}
			}
		}
	}()
	next := start.Header.Revision
	seen := 0
	for seen < total+1 {
		select {
		case resp, ok := <-wch:
			if !ok {
				t.Fatalf("watch channel closed after %d events", seen)
			}
			if err := resp.Err(); err != nil {
				t.Fatalf("watch error after %d events: %v", seen, err)
			}
			for _, ev := range resp.Events {
				if ev.Kv.ModRevision != next {
					t.Fatalf("event at revision %d, want %d (gap or duplicate)", ev.Kv.ModRevision, next)
				}
				if ev.Type != mvccpb.PUT {
					t.Fatalf("unexpected %v", ev)
				}
				next++
				seen++
			}
		case <-ctx.Done():
			t.Fatalf("saw %d of %d events", seen, total+1)
		}
	}
	wg.Wait()
	c.WaitReady(t, watched)
}

// TestClientV3Leases: a lease granted and kept alive through a follower
// (keep-alives reach the leader) outlives its TTL; revoked, its keys go;
// left alone, it expires.
func TestClientV3Leases(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx := ctxT(t, 60*time.Second)
	leader := c.Leader(t)
	var follower string
	for _, n := range c.Names() {
		if n != leader {
			follower = n
			break
		}
	}
	cl := newClient(t, c.Endpoints(follower)...)
	kept, err := cl.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "kept", "v", clientv3.WithLease(kept.ID)); err != nil {
		t.Fatal(err)
	}
	ka, err := cl.KeepAlive(ctx, kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	left, err := cl.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "left", "v", clientv3.WithLease(left.ID)); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(4 * time.Second)
	renewals := 0
wait:
	for {
		select {
		case r, ok := <-ka:
			if !ok {
				t.Fatal("keep-alive channel closed")
			}
			if r.TTL <= 0 {
				t.Fatalf("keep-alive answered TTL %d", r.TTL)
			}
			renewals++
		case <-deadline:
			break wait
		}
	}
	if renewals < 2 {
		t.Fatalf("%d keep-alive responses in 4s, want several", renewals)
	}
	ttl, err := cl.TimeToLive(ctx, kept.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || ttl.GrantedTTL != 2 || len(ttl.Keys) != 1 {
		t.Fatalf("time to live of the kept lease: %+v %v", ttl, err)
	}
	if got, _ := cl.Get(ctx, "kept"); len(got.Kvs) != 1 {
		t.Fatal("the kept-alive lease's key is gone")
	}
	waitFor(t, ctx, "the unrenewed lease expires", func() bool {
		got, err := cl.Get(ctx, "left")
		return err == nil && len(got.Kvs) == 0
	})
	// As etcd: an expired lease has TTL -1 (no error).
	if gone, err := cl.TimeToLive(ctx, left.ID); err != nil || gone.TTL != -1 {
		t.Errorf("time to live of the expired lease: %+v %v, want TTL -1", gone, err)
	}
	leases, err := cl.Leases(ctx)
	if err != nil || len(leases.Leases) != 1 || leases.Leases[0].ID != kept.ID {
		t.Fatalf("leases: %+v %v, want only the kept one", leases, err)
	}
	if _, err := cl.Revoke(ctx, kept.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := cl.Get(ctx, "kept"); len(got.Kvs) != 0 {
		t.Fatal("revoked lease's key is still there")
	}
	if _, err := cl.Revoke(ctx, kept.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("revoke twice: %v, want %v", err, rpctypes.ErrLeaseNotFound)
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestClientV3MutexAndElectionAcrossFailover: clientv3's concurrency
// recipes keep their guarantees when the leader is stopped: the mutex
// stays exclusive, and the election has one leader at a time.
func TestClientV3MutexAndElectionAcrossFailover(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx := ctxT(t, 90*time.Second)
	var inside, maxInside, acquired int
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient(t, c.Endpoints()...)
			sess, err := concurrency.NewSession(cl, concurrency.WithTTL(2), concurrency.WithContext(ctx))
			if err != nil {
				t.Errorf("worker %d: session: %v", w, err)
				return
			}
			defer sess.Close()
			m := concurrency.NewMutex(sess, "/lock")
			for {
				select {
				case <-stop:
					return
				default:
				}
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := m.Lock(lctx)
				cancel()
				if err != nil {
					continue
				}
				mu.Lock()
				inside++
				acquired++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				inside--
				mu.Unlock()
				uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				m.Unlock(uctx)
				cancel()
			}
		}()
	}
	// Election: a campaign through all endpoints; the leader observed must
	// be the one campaigning.
	ecl := newClient(t, c.Endpoints()...)
	esess, err := concurrency.NewSession(ecl, concurrency.WithTTL(5), concurrency.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer esess.Close()
	el := concurrency.NewElection(esess, "/election")
	if err := el.Campaign(ctx, "me"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	leader := c.Leader(t)
	c.Stop(t, leader)
	time.Sleep(time.Second)
	c.Start(t, leader)
	c.WaitReady(t, leader)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if maxInside != 1 || acquired < 3 {
		t.Fatalf("mutex: %d holders at once (want 1), acquired %d times", maxInside, acquired)
	}
	obs, err := el.Leader(ctx)
	if err != nil || string(obs.Kvs[0].Value) != "me" {
		t.Fatalf("election leader after failover: %v %v, want me", obs, err)
	}
	if err := el.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestClientV3Members lists, adds (as a learner), promotes... and removes
// members; an unknown id gets etcd's member-not-found.
func TestClientV3Members(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx := ctxT(t, 60*time.Second)
	cl := newClient(t, c.Endpoints()...)
	list, err := cl.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Members) != 3 {
		t.Fatalf("%d members, want 3", len(list.Members))
	}
	for _, m := range list.Members {
		name := c.Name(m.ID)
		if m.Name != name || len(m.ClientURLs) != 1 || m.ClientURLs[0] != "http://"+c.Endpoints(name)[0] || len(m.PeerURLs) != 1 {
			t.Errorf("member %+v: want name %q and client URL http://%s", m, name, c.Endpoints(name)[0])
		}
	}
	added, err := cl.MemberAddAsLearner(ctx, []string{"http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if !added.Member.IsLearner || len(added.Members) != 4 {
		t.Fatalf("added %+v with %d members", added.Member, len(added.Members))
	}
	if _, err := cl.MemberAdd(ctx, []string{"http://127.0.0.1:1"}); !errors.Is(err, rpctypes.ErrPeerURLExist) {
		t.Errorf("adding the same peer URL again: %v, want %v", err, rpctypes.ErrPeerURLExist)
	}
	// clientv3 checks URLs itself; the server checks them too.
	raw := pb.NewClusterClient(rawConn(t, c.Endpoints()[0]))
	for _, bad := range [][]string{{"not a url"}, {"https://127.0.0.1:5"}, {}, {"http://127.0.0.1:6", "http://127.0.0.1:7"}} {
		if _, err := raw.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: bad}); err == nil || err.Error() != rpctypes.ErrGRPCMemberBadURLs.Error() {
			t.Errorf("adding peer URLs %q: %v, want %v", bad, err, rpctypes.ErrGRPCMemberBadURLs)
		}
	}
	if _, err := cl.MemberPromote(ctx, c.ID("n1")); !errors.Is(err, rpctypes.ErrMemberNotLearner) {
		t.Errorf("promoting a voter: %v, want %v", err, rpctypes.ErrMemberNotLearner)
	}
	if _, err := cl.MemberRemove(ctx, added.Member.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.MemberRemove(ctx, 42); !errors.Is(err, rpctypes.ErrMemberNotFound) {
		t.Errorf("removing an unknown member: %v, want %v", err, rpctypes.ErrMemberNotFound)
	}
	list, err = cl.MemberList(ctx)
	if err != nil || len(list.Members) != 3 {
		t.Fatalf("after removal: %v %v", list, err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
