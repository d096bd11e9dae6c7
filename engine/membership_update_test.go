package engine_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/internal/testcluster"
	"github.com/cairn-db/cairn/transport/memnet"
)

// wantMembership waits until node id's Membership is want.
func wantMembership(t *testing.T, c *testcluster.Cluster, id uint64, want []engine.Member, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := c.Node(id).Engine.Membership()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d: membership %+v, want %+v", id, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUpdateAddr moves a follower to other peer addresses: every node
// applies the change to its membership and its transport (a misrouting
// address makes the follower unreachable, the next update reaches it
// again), bad updates are refused and change nothing, and the address
// survives a snapshot, a restart of every node and a new member's catch-up.
func TestUpdateAddr(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Snapshot: engine.SnapshotConfig{Threshold: 20, CatchUpMargin: 5}})
	writeN(t, c, "a", 10)
	leader := c.WaitLeader(5 * time.Second)
	target := leader%3 + 1 // a follower
	other := 6 - leader - target
	members := func(addr string, extra ...engine.Member) []engine.Member {
		var out []engine.Member
		for id := uint64(1); id <= 3; id++ {
			a := memnet.Addr(id)
			if id == target {
				a = addr
			}
			out = append(out, engine.Member{ID: id, Addr: a})
		}
		return append(out, extra...)
	}

	// An address no node listens at: the leader's messages to the target
	// become unroutable.
	lost := "mem://nowhere"
	before := c.Net.LinkStats(leader, target).Unreachable
	if err := c.Node(other).Engine.UpdateAddr(ctxT(t, 10*time.Second), target, lost); err != nil {
		t.Fatalf("update %d to %s through node %d: %v", target, lost, other, err)
	}
	wantMembership(t, c, leader, members(lost), 5*time.Second)
	wantMembership(t, c, other, members(lost), 5*time.Second)
	writeN(t, c, "b", 5)
	deadline := time.Now().Add(5 * time.Second)
	for c.Net.LinkStats(leader, target).Unreachable == before {
		if time.Now().After(deadline) {
			t.Fatalf("the leader still reaches node %d after its address moved to %s", target, lost)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Another spelling of the target's real address (memnet reads the id):
	// the target is reached again, catches up, and applies both updates.
	moved := fmt.Sprintf("mem://0%d", target)
	if err := c.Node(leader).Engine.UpdateAddr(ctxT(t, 10*time.Second), target, moved); err != nil {
		t.Fatalf("update %d to %s: %v", target, moved, err)
	}
	for _, id := range []uint64{1, 2, 3} {
		wantMembership(t, c, id, members(moved), 10*time.Second)
	}
	c.WaitConverged(10 * time.Second)
	requireKeys(t, c, "b", 5)
	updatedAt := c.Node(leader).Engine.Status().Applied

	// Bad updates change nothing.
	e := c.Node(leader).Engine
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"unknown member", e.UpdateAddr(ctxT(t, 5*time.Second), 42, memnet.Addr(42)), engine.ErrUnknownMember},
		{"member id 0", e.UpdateAddr(ctxT(t, 5*time.Second), 0, memnet.Addr(1)), engine.ErrUnknownMember},
		{"empty address", e.UpdateAddr(ctxT(t, 5*time.Second), target, ""), engine.ErrNoAddress},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if got := e.Membership(); !slices.Equal(got, members(moved)) {
		t.Fatalf("bad updates changed the membership: %+v", got)
	}
	if got := e.Members()[target]; got != moved {
		t.Fatalf("Members()[%d] = %q, want %q", target, got, moved)
	}

	// Enough writes that a snapshot covers the update and the log no longer
	// holds it: a restart takes the address from the snapshot.
	writeN(t, c, "c", 40)
	c.WaitConverged(10 * time.Second)
	deadline = time.Now().Add(5 * time.Second)
	for _, id := range []uint64{1, 2, 3} {
		for st := c.Node(id).Engine.Status(); st.FirstIndex <= updatedAt; st = c.Node(id).Engine.Status() {
			if time.Now().After(deadline) {
				t.Fatalf("node %d: log starts at %d, still holding the update at or before %d (snapshot %d)", id, st.FirstIndex, updatedAt, st.SnapshotIndex)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, id := range []uint64{1, 2, 3} {
		c.Stop(id)
	}
	restartAll(t, c, 1, 2, 3)
	for _, id := range []uint64{1, 2, 3} {
		wantMembership(t, c, id, members(moved), 5*time.Second)
	}

	// A new member learns the address from the snapshot it catches up with.
	c.Join(4)
	leader = c.WaitLeader(5 * time.Second)
	if err := c.Node(leader).Engine.AddLearner(ctxT(t, 10*time.Second), 4, memnet.Addr(4)); err != nil {
		t.Fatalf("add learner 4: %v", err)
	}
	c.WaitConverged(10 * time.Second)
	all := members(moved, engine.Member{ID: 4, Addr: memnet.Addr(4), Learner: true})
	for _, id := range []uint64{1, 2, 3, 4} {
		wantMembership(t, c, id, all, 10*time.Second)
	}
	requireKeys(t, c, "c", 40)
	c.Check()
}
