package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/internal/testcluster"
)

// ack is a write whose Propose returned successfully.
type ack struct {
	key, value string
	index      uint64
}

// writeUntil runs proposers that write unique keys through the leader until
// stop is closed, and returns the writes acknowledged before stop closed.
func writeUntil(t *testing.T, c *testcluster.Cluster, proposers int, stop <-chan struct{}) []ack {
	t.Helper()
	var (
		mu     sync.Mutex
		acks   []ack
		wg     sync.WaitGroup
		closed atomic.Bool
	)
	go func() { <-stop; closed.Store(true) }()
	for p := 0; p < proposers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !closed.Load(); i++ {
				key, value := fmt.Sprintf("p%d-k%d", p, i), fmt.Sprintf("v%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				r, err := c.ProposeRetry(ctx, memkv.Set(key, value))
				cancel()
				// Only writes acknowledged before the crash started count.
				if err == nil && !closed.Load() {
					mu.Lock()
					acks = append(acks, ack{key, value, r.Index})
					mu.Unlock()
				}
			}
		}()
	}
	<-stop
	wg.Wait()
	return acks
}

func restartAll(t *testing.T, c *testcluster.Cluster, ids ...uint64) {
	t.Helper()
	for _, id := range ids {
		c.Restart(id)
	}
	c.WaitLeader(10 * time.Second)
	// A write in the new term makes the new leader commit, and every node
	// apply, all the entries the old terms left.
	if _, err := c.ProposeRetry(ctxT(t, 10*time.Second), memkv.Set("after-restart", "x")); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	c.WaitConverged(10 * time.Second)
}

func TestDiskFirstCrashOfAllNodesKeepsAcknowledgedWrites(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{CrashableFS: true})
	stop := make(chan struct{})
	done := make(chan []ack)
	go func() { done <- writeUntil(t, c, 8, stop) }()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	// Power fails on every node while proposals are still in flight.
	c.Crash(1, 2, 3)
	acks := <-done
	if len(acks) < 50 {
		t.Fatalf("only %d writes acknowledged; the test needs a real load", len(acks))
	}
	restartAll(t, c, 1, 2, 3)
	for _, id := range c.Running() {
		sm := c.Node(id).SM
		for _, a := range acks {
			if v, ok := sm.Get(a.key); !ok || v != a.value {
				t.Fatalf("node %d lost acknowledged write %s=%s (index %d): got %q, %v", id, a.key, a.value, a.index, v, ok)
			}
		}
	}
	t.Logf("%d acknowledged writes survived a crash of all 3 nodes", len(acks))
	c.Check()
}

// memFirstUnflushed is a crashable MemFirst cluster that never flushes on
// size or time within a test: only the syncs for term and vote changes make
// anything durable, so a crash loses every later write a node holds.
func memFirstUnflushed() testcluster.Options {
	return testcluster.Options{
		CrashableFS: true,
		Persistence: engine.PersistenceConfig{
			Strategy:    engine.MemFirst,
			FlushPolicy: engine.FlushPolicy{Threshold: 1 << 30, Interval: time.Hour},
		},
	}
}

func TestMemFirstCrashLossIsBoundedByDurableIndexes(t *testing.T) {
	c := testcluster.New(t, 3, memFirstUnflushed())
	stop := make(chan struct{})
	done := make(chan []ack)
	go func() { done <- writeUntil(t, c, 8, stop) }()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	acks := <-done
	// What each node reports as durable is what the crash may keep.
	var durable []uint64
	var lag uint64
	for _, id := range c.Running() {
		st := c.Node(id).Engine.Status()
		durable = append(durable, st.Durable)
		lag = max(lag, st.FlushLag())
	}
	sort.Slice(durable, func(i, j int) bool { return durable[i] < durable[j] })
	if lag == 0 {
		t.Fatalf("MemFirst reported no flush lag after %d unflushed writes", len(acks))
	}
	c.Crash(1, 2, 3)
	c.ForgetApplied() // MemFirst may lose committed entries: that is the bound tested here
	restartAll(t, c, 1, 2, 3)
	// A node that kept committed entries the new leader lost cannot be
	// reconciled by raft: it must have stopped, saying so.
	for _, id := range c.Running() {
		select {
		case <-c.Node(id).Engine.Done():
			if err := c.Node(id).Engine.Err(); !errors.Is(err, engine.ErrDiverged) {
				t.Fatalf("node %d stopped with %v, want ErrDiverged", id, err)
			}
			t.Logf("node %d stopped: %v", id, c.Node(id).Engine.Err())
			c.Excuse(id)
		default:
		}
	}

	// A write is safe once a majority holds it durably: any leader elected
	// after the crash has it. With 3 nodes that is the second-lowest
	// durable index.
	safeUpTo := durable[1]
	sm := c.Node(c.Alive()[0]).SM
	lost := 0
	for _, a := range acks {
		if v, ok := sm.Get(a.key); !ok || v != a.value {
			lost++
			if a.index <= safeUpTo {
				t.Errorf("lost write %s at index %d, within the durable index %d of a majority", a.key, a.index, safeUpTo)
			}
		}
	}
	t.Logf("MemFirst: %d of %d acknowledged writes lost; durable indexes at crash %v; max flush lag %d", lost, len(acks), durable, lag)
	c.Check()
}

func TestMemFirstBatchPolicyFlushes(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{
		Persistence: engine.PersistenceConfig{
			Strategy:    engine.MemFirst,
			FlushPolicy: engine.FlushPolicy{Threshold: 50, Interval: 20 * time.Millisecond},
		},
	})
	ctx := ctxT(t, 20*time.Second)
	for i := 0; i < 200; i++ {
		if _, err := c.ProposeRetry(ctx, memkv.Set(fmt.Sprint(i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitConverged(10 * time.Second)
	// Within a few intervals of the last write every node's flush lag is 0.
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range c.Running() {
		for {
			st := c.Node(id).Engine.Status()
			if st.FlushLag() == 0 && st.Durable >= 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: durable %d, last %d: the batch policy did not flush", id, st.Durable, st.LastIndex)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// A follower that loses its unflushed tail in a crash (MemFirst) had
// acknowledged entries it no longer has: the raft library's leader would
// never resend them. The node notices and gets a new leader, which repairs
// its log.
func TestMemFirstFollowerCrashIsRepaired(t *testing.T) {
	c := testcluster.New(t, 3, memFirstUnflushed())
	writeN(t, c, "a", 200)
	leader := c.WaitLeader(5 * time.Second)
	f := leader%3 + 1
	if st := c.Node(f).Engine.Status(); st.FlushLag() == 0 {
		t.Fatalf("follower %d has no unflushed entries to lose", f)
	}
	c.Crash(f)
	c.ForgetApplied()
	c.Restart(f)
	writeN(t, c, "b", 50)
	c.WaitConverged(10 * time.Second)
	requireKeys(t, c, "a", 200)
	requireKeys(t, c, "b", 50)
	c.Check()
}

// The review's scenario: one crash plus one partition must not lose a write
// acknowledged under MemFirst while the node holding it comes back in time.
func TestMemFirstCrashedNodeAbstainsUntilALeaderIsHeard(t *testing.T) {
	c := testcluster.New(t, 3, memFirstUnflushed())
	writeN(t, c, "warm", 5)
	a := c.WaitLeader(5 * time.Second)
	b := a%3 + 1
	cc := b%3 + 1
	c.Net.Isolate(cc)
	if _, err := c.Propose(ctxT(t, 5*time.Second), a, memkv.Set("acked", "yes")); err != nil {
		t.Fatalf("write with a and b: %v", err)
	}
	// b loses the write in a crash while a is cut off; c never had it.
	c.Crash(b)
	c.Net.Heal()
	c.Net.Isolate(a)
	c.ForgetApplied()
	c.Restart(b)
	// b and c alone could elect a leader without the write: b must abstain.
	time.Sleep(400 * time.Millisecond)
	for _, id := range []uint64{b, cc} {
		if st := c.Node(id).Engine.Status(); st.Role == engine.Leader {
			t.Fatalf("node %d became leader without the node that holds the acknowledged write", id)
		}
	}
	c.Net.Heal()
	writeN(t, c, "after", 5)
	c.WaitConverged(10 * time.Second)
	for _, id := range c.Running() {
		if v, _ := c.Node(id).SM.Get("acked"); v != "yes" {
			t.Fatalf("node %d lost the acknowledged write", id)
		}
	}
}

func TestMemFirstTwoVoterLostTailIsRepaired(t *testing.T) {
	c := testcluster.New(t, 2, memFirstUnflushed())
	writeN(t, c, "a", 100)
	leader := c.WaitLeader(5 * time.Second)
	f := leader%2 + 1
	c.Crash(f)
	c.ForgetApplied()
	c.Restart(f)
	writeN(t, c, "b", 10)
	c.WaitConverged(15 * time.Second)
	requireKeys(t, c, "a", 100)
	c.Check()
}
