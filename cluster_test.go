package cairn_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/dbcluster"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-db/cairn"
)

func TestWatchersOnEveryNodeSeeTheSameSequence(t *testing.T) {
	c := dbcluster.New(t, dbcluster.Options{})
	ctx := ctxT(t)
	leader := c.Leader(t)
	type stream struct {
		id     uint64
		events []string
	}
	streams := map[uint64]*stream{}
	done := make(chan *stream, 3)
	for id, db := range c.DBs {
		w, err := db.Watch(ctx, "q/", cairn.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		s := &stream{id: id}
		streams[id] = s
		go func() {
			for r := range w.C() {
				for _, e := range r.Events {
					s.events = append(s.events, fmt.Sprintf("%d:%s:%s:%s", e.Kv.ModRevision, e.Type, e.Kv.Key, e.Kv.Value))
				}
				if len(s.events) >= 300 {
					done <- s
					return
				}
			}
		}()
	}
	// Writes through every node, followers forwarding to the leader.
	for i := 0; i < 200; i++ {
		db := c.DBs[uint64(i%3)+1]
		if _, err := db.Put(ctx, fmt.Sprintf("q/%d", i%50), fmt.Sprint(i)); err != nil {
			t.Fatalf("put %d via node %d (leader %d): %v", i, i%3+1, leader, err)
		}
		if i%2 == 0 {
			if _, err := db.Delete(ctx, fmt.Sprintf("q/%d", i%50)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < 3; i++ {
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("a watcher did not receive all 300 events")
		}
	}
	ref := streams[leader].events
	for id, s := range streams {
		if len(s.events) != len(ref) {
			t.Fatalf("node %d saw %d events, the leader %d", id, len(s.events), len(ref))
		}
		for i := range ref {
			if s.events[i] != ref[i] {
				t.Fatalf("node %d event %d = %s, leader saw %s", id, i, s.events[i], ref[i])
			}
		}
	}
}

func TestLeaseExpiresOnceAcrossLeaderFailover(t *testing.T) {
	c := dbcluster.New(t, dbcluster.Options{})
	ctx := ctxT(t)
	leader := c.Leader(t)
	l, err := c.DBs[leader].Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	put, err := c.DBs[leader].Put(ctx, "lock", "owner", cairn.WithLease(l.ID))
	if err != nil {
		t.Fatal(err)
	}
	var watcherNode uint64 = leader%3 + 1
	w, err := c.DBs[watcherNode].Watch(ctx, "lock", cairn.WithRev(put.Header.Revision+1))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The leader goes away before the lease expires; the new leader must
	// give it a fresh TTL, then expire it exactly once.
	c.DBs[leader].Close()
	delete(c.DBs, leader)
	failover := time.Now()
	newLeader := c.Leader(t)
	if newLeader == leader {
		t.Fatal("stopped node still leads")
	}
	var deletes int
	deadline := time.After(10 * time.Second)
	for deletes == 0 {
		select {
		case r := <-w.C():
			for _, e := range r.Events {
				if e.Type == mvccpb.DELETE {
					deletes++
				}
			}
		case <-deadline:
			t.Fatal("lease never expired after the failover")
		}
	}
	if since := time.Since(failover); since < 2*time.Second {
		t.Fatalf("lease expired %v after the failover: the new leader did not extend it", since)
	}
	// No second revocation arrives.
	select {
	case r := <-w.C():
		t.Fatalf("event after the expiry: %v", r.Events)
	case <-time.After(time.Second):
	}
	if _, err := c.DBs[newLeader].TimeToLive(context.Background(), l.ID, false); err == nil {
		t.Fatal("lease still exists after expiring")
	}
}
