package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// TestPausedLeaderServesNoStaleLeaseRead: the leader of a 3-member cluster
// of real processes holds a read lease; it is paused with SIGSTOP past its
// lease and past an election, the others elect a leader and accept a new
// value, and the old leader is resumed with reads already waiting for it.
// No read it answers may return the old value: its lease ran out on the
// monotonic clock while it was stopped, so it must ask the cluster.
func TestPausedLeaderServesNoStaleLeaseRead(t *testing.T) {
	for _, policy := range []string{"lease", "linearizable"} {
		t.Run(policy, func(t *testing.T) { testPausedLeader(t, policy) })
	}
}

func testPausedLeader(t *testing.T, policy string) {
	members := startProcesses(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	endpoints := endpointsOf(members)
	all := newEtcdClient(t, endpoints...)
	readCtx := metadata.AppendToOutgoingContext(ctx, "cairn-read-consistency", policy)
	// Several pauses, each of the leader of the moment: whether a stale
	// read would slip out depends on how the resumed process's goroutines
	// are scheduled, so one pause is not always enough to catch it.
	for cycle := range 3 {
		old := fmt.Sprintf("v%d", cycle)
		for {
			if _, err := all.Put(ctx, "k", old); err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("cluster never accepted a write")
			}
			time.Sleep(50 * time.Millisecond)
		}
		pauseLeader(t, ctx, readCtx, policy, members, all, old, fmt.Sprintf("v%d-new", cycle))
	}
}

// pauseLeader stops the current leader with SIGSTOP after warming its
// lease with reads of old, writes new through the others, queues reads at
// the stopped leader and resumes it: none may answer old.
func pauseLeader(t *testing.T, ctx, readCtx context.Context, policy string, members []*member, all *clientv3.Client, old, new string) {
	t.Helper()
	var leader *member
	for leader == nil {
		for _, m := range members {
			st, err := all.Status(ctx, m.client)
			if err == nil && st.Leader == st.Header.MemberId {
				leader = m
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no leader")
		}
	}
	var others []string
	for _, m := range members {
		if m != leader {
			others = append(others, m.client)
		}
	}
	lc := newEtcdClient(t, leader.client)
	for range 5 {
		got, err := lc.Get(readCtx, "k")
		if err != nil || string(got.Kvs[0].Value) != old {
			t.Fatalf("%s read before the pause: %v %v, want %s", policy, got, err, old)
		}
	}
	if err := leader.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	oc := newEtcdClient(t, others...)
	for {
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := oc.Put(wctx, "k", new)
		wcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the majority never accepted the new value: %v", err)
		}
	}
	// Reads queued at the stopped leader, answered the moment it resumes.
	type answer struct {
		value string
		err   error
	}
	answers := make(chan answer, 32)
	for range cap(answers) {
		go func() {
			rctx, rcancel := context.WithTimeout(readCtx, 5*time.Second)
			defer rcancel()
			got, err := lc.Get(rctx, "k")
			if err != nil {
				answers <- answer{err: err}
				return
			}
			answers <- answer{value: string(got.Kvs[0].Value)}
		}()
	}
	time.Sleep(300 * time.Millisecond) // the requests reach the stopped process's socket
	if err := leader.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	fresh, stale := 0, 0
	for range cap(answers) {
		a := <-answers
		switch {
		case a.err != nil:
			t.Logf("%s read from the resumed leader: %v (refusing is allowed)", policy, a.err)
		case a.value == old:
			stale++
		default:
			fresh++
		}
	}
	if stale > 0 {
		t.Errorf("%s: %d of %d reads from the resumed old leader %s returned the stale value", policy, stale, cap(answers), leader.name)
	}
	t.Logf("%s: %d of %d reads from the resumed leader %s answered the new value, %d the old one", policy, fresh, cap(answers), leader.name, stale)
}

func newEtcdClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
