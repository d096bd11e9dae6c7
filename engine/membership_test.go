package engine_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/internal/testcluster"
	"github.com/cairn-db/cairn/transport/memnet"
)

func voters(t *testing.T, c *testcluster.Cluster, id uint64) []uint64 {
	t.Helper()
	v := c.Node(id).Engine.Status().Voters
	slices.Sort(v)
	return v
}

func TestGrowOneToThreeToFiveAndShrinkToThree(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{Snapshot: engine.SnapshotConfig{Threshold: 50, CatchUpMargin: 10}})
	writeN(t, c, "k", 120) // enough that new members catch up by snapshot
	for id := uint64(2); id <= 5; id++ {
		c.Join(id)
		leader := c.WaitLeader(5 * time.Second)
		if err := c.Node(leader).Engine.AddVoter(ctxT(t, 10*time.Second), id, memnet.Addr(id)); err != nil {
			t.Fatalf("add voter %d: %v", id, err)
		}
		c.WaitConverged(10 * time.Second)
	}
	leader := c.WaitLeader(5 * time.Second)
	if got := voters(t, c, leader); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("voters %v, want 1..5", got)
	}
	installed := false
	for id := uint64(2); id <= 5; id++ {
		installed = installed || c.Node(id).Engine.Status().SnapshotIndex > 0
	}
	if !installed {
		t.Fatal("no new member caught up by snapshot although the log was compacted")
	}
	// Shrink: remove two followers.
	var removed []uint64
	for id := uint64(5); len(removed) < 2; id-- {
		if id != leader {
			removed = append(removed, id)
		}
	}
	for _, id := range removed {
		if err := c.Node(leader).Engine.RemoveNode(ctxT(t, 10*time.Second), id); err != nil {
			t.Fatalf("remove %d: %v", id, err)
		}
	}
	for _, id := range removed {
		select {
		case <-c.Node(id).Engine.Done():
			if !errors.Is(c.Node(id).Engine.Err(), engine.ErrRemoved) {
				t.Fatalf("removed node %d stopped with %v, want ErrRemoved", id, c.Node(id).Engine.Err())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("removed node %d kept running", id)
		}
		c.Stop(id)
	}
	if got := voters(t, c, leader); len(got) != 3 || slices.Contains(got, removed[0]) || slices.Contains(got, removed[1]) {
		t.Fatalf("voters after shrink %v", got)
	}
	writeN(t, c, "after", 20)
	c.WaitConverged(10 * time.Second)
	requireKeys(t, c, "k", 120)
	// Ids of removed members are never reused.
	err := c.Node(leader).Engine.AddVoter(ctxT(t, 5*time.Second), removed[0], memnet.Addr(removed[0]))
	if !errors.Is(err, engine.ErrIDReused) {
		t.Fatalf("re-adding removed id %d: %v, want ErrIDReused", removed[0], err)
	}
	c.Check()
}

func TestRemoveLeader(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	writeN(t, c, "a", 20)
	old := c.WaitLeader(5 * time.Second)
	if err := c.Node(old).Engine.RemoveNode(ctxT(t, 10*time.Second), old); err != nil {
		t.Fatalf("remove leader %d: %v", old, err)
	}
	select {
	case <-c.Node(old).Engine.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("removed leader kept running")
	}
	c.Stop(old)
	leader := c.WaitLeader(10 * time.Second)
	if got := voters(t, c, leader); len(got) != 2 || slices.Contains(got, old) {
		t.Fatalf("voters %v after removing %d", got, old)
	}
	writeN(t, c, "b", 20)
	c.WaitConverged(10 * time.Second)
	requireKeys(t, c, "a", 20)
	c.Check()
}

func TestLearnerPromotionAndLeaderTransfer(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	writeN(t, c, "a", 20)
	c.Join(4)
	leader := c.WaitLeader(5 * time.Second)
	e := c.Node(leader).Engine
	if err := e.AddLearner(ctxT(t, 10*time.Second), 4, memnet.Addr(4)); err != nil {
		t.Fatalf("add learner: %v", err)
	}
	st := e.Status()
	if !slices.Contains(st.Learners, 4) || slices.Contains(st.Voters, 4) {
		t.Fatalf("after AddLearner: voters %v learners %v", st.Voters, st.Learners)
	}
	c.WaitConverged(10 * time.Second) // the learner receives the log
	if err := e.PromoteLearner(ctxT(t, 5*time.Second), 1); !errors.Is(err, engine.ErrNotLearner) && leader != 1 {
		t.Fatalf("promoting voter 1: %v, want ErrNotLearner", err)
	}
	if err := e.PromoteLearner(ctxT(t, 10*time.Second), 4); err != nil {
		t.Fatalf("promote: %v", err)
	}
	if got := voters(t, c, leader); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("voters after promotion %v", got)
	}
	if err := e.TransferLeadership(ctxT(t, 10*time.Second), 4); err != nil {
		t.Fatalf("transfer to 4: %v", err)
	}
	if got := c.WaitLeader(5 * time.Second); got != 4 {
		t.Fatalf("leader %d after transfer, want 4", got)
	}
	writeN(t, c, "b", 20)
	c.WaitConverged(10 * time.Second)
	c.Check()
}

func TestJointConsensusReplacesTwoVoters(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	writeN(t, c, "a", 20)
	c.Join(4)
	c.Join(5)
	leader := c.WaitLeader(5 * time.Second)
	var out []uint64
	for id := uint64(1); id <= 3 && len(out) < 2; id++ {
		if id != leader {
			out = append(out, id)
		}
	}
	err := c.Node(leader).Engine.ChangeMembership(ctxT(t, 15*time.Second),
		engine.Change{Type: engine.AddVoter, ID: 4, Addr: memnet.Addr(4)},
		engine.Change{Type: engine.AddVoter, ID: 5, Addr: memnet.Addr(5)},
		engine.Change{Type: engine.RemoveNode, ID: out[0]},
		engine.Change{Type: engine.RemoveNode, ID: out[1]},
	)
	if err != nil {
		t.Fatalf("joint change: %v", err)
	}
	st := c.Node(leader).Engine.Status()
	if st.Joint {
		t.Fatal("still in the joint configuration after ChangeMembership returned")
	}
	slices.Sort(st.Voters)
	want := []uint64{leader, 4, 5}
	slices.Sort(want)
	if !slices.Equal(st.Voters, want) {
		t.Fatalf("voters %v, want %v", st.Voters, want)
	}
	for _, id := range out {
		<-c.Node(id).Engine.Done()
		c.Stop(id)
	}
	writeN(t, c, "b", 20)
	c.WaitConverged(10 * time.Second)
	requireKeys(t, c, "a", 20)
	c.Check()
}

func TestMembershipBadInput(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	leader := c.WaitLeader(5 * time.Second)
	e := c.Node(leader).Engine
	ctx := ctxT(t, 5*time.Second)
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"add existing voter", e.AddVoter(ctx, 2, memnet.Addr(2)), engine.ErrMemberExists},
		{"add without address", e.AddVoter(ctx, 9, ""), engine.ErrNoAddress},
		{"remove unknown", e.RemoveNode(ctx, 42), engine.ErrUnknownMember},
		{"promote unknown", e.PromoteLearner(ctx, 42), engine.ErrUnknownMember},
		{"transfer to unknown", e.TransferLeadership(ctx, 42), engine.ErrUnknownMember},
	}
	for _, tc := range cases {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if got := voters(t, c, leader); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("bad requests changed membership: %v", got)
	}
}

func TestRemovingTheLastVoterIsRefused(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{})
	err := c.Node(1).Engine.RemoveNode(ctxT(t, 5*time.Second), 1)
	if !errors.Is(err, engine.ErrInvalidChange) {
		t.Fatalf("removing the only voter: %v, want ErrInvalidChange", err)
	}
	c.Stop(1)
	c.Restart(1)
	writeN(t, c, "k", 5)
}

func TestConcurrentMembershipChangesOnOneNode(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	c.Join(4)
	c.Join(5)
	leader := c.WaitLeader(5 * time.Second)
	e := c.Node(leader).Engine
	errs := make(chan error, 2)
	for _, id := range []uint64{4, 5} {
		go func() { errs <- e.AddLearner(ctxT(t, 10*time.Second), id, memnet.Addr(id)) }()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent AddLearner: %v", err)
		}
	}
	if st := e.Status(); !slices.Contains(st.Learners, 4) || !slices.Contains(st.Learners, 5) {
		t.Fatalf("learners %v, want 4 and 5", st.Learners)
	}
}

func TestRemovedNodeDoesNotRunAfterRestart(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Snapshot: engine.SnapshotConfig{Threshold: 20, CatchUpMargin: 5}})
	writeN(t, c, "a", 30)
	leader := c.WaitLeader(5 * time.Second)
	victim := leader%3 + 1
	if err := c.Node(leader).Engine.RemoveNode(ctxT(t, 10*time.Second), victim); err != nil {
		t.Fatal(err)
	}
	<-c.Node(victim).Engine.Done()
	c.Stop(victim)
	// Its data dir holds a snapshot taken after its removal: Start refuses.
	// (Had no snapshot covered the removal, replaying the log would stop it
	// shortly after starting; either way it must not run on.)
	e, err := engine.Start(withSM(c.Config(victim, false)))
	if err == nil {
		select {
		case <-e.Done():
			err = e.Err()
		case <-time.After(5 * time.Second):
			e.Stop()
			t.Fatal("a removed node restarted and kept running")
		}
	}
	if !errors.Is(err, engine.ErrRemoved) {
		t.Fatalf("restart of a removed node: %v, want ErrRemoved", err)
	}
}

func withSM(cfg engine.Config) engine.Config {
	cfg.StateMachine = memkv.New()
	return cfg
}
