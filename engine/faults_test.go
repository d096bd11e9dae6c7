package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/internal/testcluster"
	"github.com/cairn-db/cairn/transport/memnet"
)

// writeN writes n keys with the given prefix through whichever node leads.
func writeN(t *testing.T, c *testcluster.Cluster, prefix string, n int) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	for i := 0; i < n; i++ {
		if _, err := c.ProposeRetry(ctx, memkv.Set(fmt.Sprintf("%s%d", prefix, i), fmt.Sprint(i))); err != nil {
			t.Fatalf("write %s%d: %v", prefix, i, err)
		}
	}
}

func requireKeys(t *testing.T, c *testcluster.Cluster, prefix string, n int) {
	t.Helper()
	for _, id := range c.Running() {
		for i := 0; i < n; i++ {
			if v, ok := c.Node(id).SM.Get(fmt.Sprintf("%s%d", prefix, i)); !ok || v != fmt.Sprint(i) {
				t.Fatalf("node %d: %s%d = %q, %v; want %d", id, prefix, i, v, ok, i)
			}
		}
	}
}

func TestLeaderCrashFailover(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	writeN(t, c, "a", 50)
	old := c.WaitLeader(5 * time.Second)
	oldTerm := c.Node(old).Engine.Status().Term
	c.Stop(old)
	leader := c.WaitLeader(10 * time.Second)
	if leader == old {
		t.Fatalf("stopped node %d still leads", old)
	}
	if term := c.Node(leader).Engine.Status().Term; term <= oldTerm {
		t.Fatalf("new leader's term %d not above the old %d", term, oldTerm)
	}
	writeN(t, c, "b", 50)
	c.Restart(old)
	c.WaitConverged(10 * time.Second)
	requireKeys(t, c, "a", 50)
	requireKeys(t, c, "b", 50)
	c.Check()
}

func TestFollowerRestartCatchesUp(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	leader := c.WaitLeader(5 * time.Second)
	follower := leader%3 + 1
	c.Stop(follower)
	writeN(t, c, "k", 100)
	c.Restart(follower)
	c.WaitConverged(10 * time.Second)
	requireKeys(t, c, "k", 100)
	c.Check()
}

func TestMinorityPartitionHeals(t *testing.T) {
	c := testcluster.New(t, 5, testcluster.Options{})
	leader := c.WaitLeader(5 * time.Second)
	// Cut two followers off: the majority side keeps the leader and commits.
	var minority []uint64
	for id := uint64(1); len(minority) < 2; id++ {
		if id != leader {
			minority = append(minority, id)
		}
	}
	c.Net.Partition(minority)
	writeN(t, c, "k", 100)
	if st := c.Node(leader).Engine.Status(); st.Role != engine.Leader {
		t.Fatalf("leader %d lost leadership with a majority: %v", leader, st.Role)
	}
	c.Net.Heal()
	c.WaitConverged(10 * time.Second)
	requireKeys(t, c, "k", 100)
	c.Check()
}

func TestPartitionedLeaderStepsDownAndItsUncommittedWritesVanish(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	writeN(t, c, "a", 10)
	old := c.WaitLeader(5 * time.Second)
	c.Net.Isolate(old)
	// The isolated leader accepts a proposal it can never commit.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := c.Propose(ctx, old, memkv.Set("lost", "x"))
	cancel()
	if err == nil {
		t.Fatal("an isolated leader committed a write")
	}
	if !errors.Is(err, engine.ErrProposalTimeout) && !errors.Is(err, engine.ErrProposalDropped) {
		t.Fatalf("isolated leader: %v; want a timeout or a drop", err)
	}
	// CheckQuorum: it steps down within a couple of election timeouts.
	deadline := time.Now().Add(5 * time.Second)
	for c.Node(old).Engine.Status().Role == engine.Leader {
		if time.Now().After(deadline) {
			t.Fatal("isolated leader did not step down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	writeN(t, c, "b", 10)
	c.Net.Heal()
	c.WaitConverged(10 * time.Second)
	for _, id := range c.Running() {
		if _, ok := c.Node(id).SM.Get("lost"); ok {
			t.Fatalf("node %d applied the write the isolated leader never committed", id)
		}
	}
	requireKeys(t, c, "a", 10)
	requireKeys(t, c, "b", 10)
	c.Check()
}

func TestLossyNetworkKeepsSafety(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Seed: 7})
	c.Net.SetFaults(memnet.Faults{
		DropRate: 0.1, DuplicateRate: 0.1, ReorderRate: 0.1,
		MinDelay: 0, MaxDelay: 3 * time.Millisecond,
	})
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeN(t, c, fmt.Sprintf("p%d-", p), 50)
		}()
	}
	wg.Wait()
	c.Net.SetFaults(memnet.Faults{})
	c.WaitConverged(15 * time.Second)
	for p := 0; p < 4; p++ {
		requireKeys(t, c, fmt.Sprintf("p%d-", p), 50)
	}
	st := c.Net.Stats()
	if st.Lost == 0 || st.Duplicated == 0 || st.Reordered == 0 {
		t.Fatalf("faults did not happen: %+v", st)
	}
	c.Check()
}

func TestRepeatedLeaderChangesUnderLoad(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	stop := make(chan struct{})
	done := make(chan []ack)
	go func() { done <- writeUntil(t, c, 4, stop) }()
	for round := 0; round < 3; round++ {
		time.Sleep(150 * time.Millisecond)
		leader := c.WaitLeader(10 * time.Second)
		c.Net.Isolate(leader)
		time.Sleep(400 * time.Millisecond)
		c.Net.Heal()
	}
	close(stop)
	acks := <-done
	c.WaitConverged(15 * time.Second)
	for _, id := range c.Running() {
		for _, a := range acks {
			if v, ok := c.Node(id).SM.Get(a.key); !ok || v != a.value {
				t.Fatalf("node %d lost acknowledged %s", id, a.key)
			}
		}
	}
	t.Logf("%d writes acknowledged across 3 leader isolations", len(acks))
	c.Check()
}
