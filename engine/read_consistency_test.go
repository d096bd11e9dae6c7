package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/internal/testcluster"
	"github.com/cairn-db/cairn/transport/memnet"
)

func TestReadPolicyNames(t *testing.T) {
	for in, want := range map[string]engine.ReadPolicy{
		"LinearizableRead": engine.LinearizableRead, "linearizable": engine.LinearizableRead,
		"LeaseRead": engine.LeaseRead, "lease": engine.LeaseRead, " LEASE ": engine.LeaseRead,
		"EventualConsistency": engine.EventualConsistency, "eventual": engine.EventualConsistency,
	} {
		got, err := engine.ParseReadPolicy(in)
		if err != nil || got != want {
			t.Errorf("ParseReadPolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
		if got.ShortName() == "" || must(engine.ParseReadPolicy(got.ShortName())) != got {
			t.Errorf("%s: short name %q does not parse back", got, got.ShortName())
		}
	}
	for _, in := range []string{"", "strong", "serializable", "LinearizableReads"} {
		if _, err := engine.ParseReadPolicy(in); !errors.Is(err, engine.ErrUnknownReadPolicy) {
			t.Errorf("ParseReadPolicy(%q): %v, want ErrUnknownReadPolicy", in, err)
		}
	}
	var p engine.ReadPolicy
	if err := p.UnmarshalText([]byte("Sometimes")); err == nil || !strings.Contains(err.Error(), "raft.read_consistency.default_policy") {
		t.Errorf("UnmarshalText(Sometimes): %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestReadConsistencyConfig(t *testing.T) {
	d := engine.DefaultConfig()
	want := engine.ReadConsistencyConfig{DefaultPolicy: engine.LinearizableRead, LeaseDurationMs: 500, AllowClientOverride: true,
		ReadBatching: engine.ReadBatchingConfig{SizeThreshold: 100, TimeThresholdMs: 10}}
	if d.ReadConsistency != want {
		t.Fatalf("defaults: %+v, want %+v", d.ReadConsistency, want)
	}
	valid := func(edit func(c *engine.Config)) error {
		c := engine.Config{NodeID: 1, DataDir: t.TempDir(), StateMachine: memkv.New()}
		edit(&c)
		return c.Validate()
	}
	// A zero section takes every default, overrides allowed included; the
	// lease is half the election timeout.
	c := engine.Config{NodeID: 1, DataDir: "x", StateMachine: memkv.New(), Raft: engine.RaftConfig{TickMs: 10, ElectionTick: 15}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if rc := c.ReadConsistency; rc.LeaseDurationMs != 75 || !rc.AllowClientOverride || rc.DefaultPolicy != engine.LinearizableRead {
		t.Fatalf("zero section with 15 × 10 ms ticks: %+v", rc)
	}
	for _, tc := range []struct {
		name string
		edit func(c *engine.Config)
		want []string
	}{
		{"lease as long as the election timeout", func(c *engine.Config) { c.ReadConsistency.LeaseDurationMs = 1000 },
			[]string{"raft.read_consistency.lease_duration_ms = 1000", "election timeout", "900 ms", "1000 ms"}},
		{"lease past election timeout less a tick", func(c *engine.Config) {
			c.Raft = engine.RaftConfig{TickMs: 10, ElectionTick: 20}
			c.ReadConsistency.LeaseDurationMs = 190
		}, []string{"raft.read_consistency.lease_duration_ms = 190", "election timeout", "190 ms", "200 ms"}},
		{"negative lease", func(c *engine.Config) { c.ReadConsistency.LeaseDurationMs = -1 },
			[]string{"raft.read_consistency.lease_duration_ms = -1", "at least 1"}},
		{"unknown default policy", func(c *engine.Config) { c.ReadConsistency.DefaultPolicy = "Strong" },
			[]string{"raft.read_consistency.default_policy", `"Strong"`}},
		{"lease without check quorum", func(c *engine.Config) {
			c.Raft.DisableCheckQuorum = true
			c.ReadConsistency.DefaultPolicy = engine.LeaseRead
		}, []string{"raft.read_consistency.default_policy", "CheckQuorum"}},
		{"negative size threshold", func(c *engine.Config) { c.ReadConsistency.ReadBatching.SizeThreshold = -1 },
			[]string{"raft.read_consistency.read_batching.size_threshold = -1"}},
		{"negative time threshold", func(c *engine.Config) { c.ReadConsistency.ReadBatching.TimeThresholdMs = -5 },
			[]string{"raft.read_consistency.read_batching.time_threshold_ms = -5"}},
	} {
		err := valid(tc.edit)
		if !errors.Is(err, engine.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not contain %q", tc.name, err, w)
			}
		}
	}
	if err := valid(func(c *engine.Config) { c.ReadConsistency.LeaseDurationMs = 899 }); err != nil {
		t.Errorf("lease of 899 ms with a 1000 ms election timeout: %v", err)
	}

	rc := engine.DefaultReadConsistency(engine.DefaultConfig().Raft)
	for req, want := range map[engine.ReadPolicy]engine.ReadPolicy{"": engine.LinearizableRead,
		engine.LeaseRead: engine.LeaseRead, engine.EventualConsistency: engine.EventualConsistency} {
		if got, err := rc.Resolve(req); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v", req, got, err)
		}
	}
	rc.AllowClientOverride = false
	rc.DefaultPolicy = engine.LeaseRead
	if got, err := rc.Resolve(""); err != nil || got != engine.LeaseRead {
		t.Errorf("Resolve(default) with overrides off = %q, %v", got, err)
	}
	if got, err := rc.Resolve(engine.LeaseRead); err != nil || got != engine.LeaseRead {
		t.Errorf("Resolve(the default itself) with overrides off = %q, %v", got, err)
	}
	_, err := rc.Resolve(engine.LinearizableRead)
	if !errors.Is(err, engine.ErrOverrideNotAllowed) || !strings.Contains(err.Error(), "raft.read_consistency.allow_client_override") {
		t.Errorf("Resolve(other) with overrides off: %v", err)
	}
	if _, err := rc.Resolve("Strong"); !errors.Is(err, engine.ErrUnknownReadPolicy) {
		t.Errorf("Resolve(unknown): %v", err)
	}
}

// roundsOf adds up the rounds a node started.
func roundsOf(s engine.ReadStats) uint64 {
	return s.RoundsIdle + s.RoundsSize + s.RoundsTime + s.RoundsRenew + s.RoundsRetry
}

func TestConcurrentReadsShareRounds(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	leader := c.WaitLeader(5 * time.Second)
	writeN(t, c, "k", 5)
	ctx := ctxT(t, 20*time.Second)
	before := map[uint64]engine.ReadStats{}
	for id := uint64(1); id <= 3; id++ {
		before[id] = c.Node(id).Engine.ReadStats()
	}
	const reads = 600
	var wg sync.WaitGroup
	errs := make(chan error, reads)
	for i := range reads {
		wg.Go(func() {
			errs <- c.Node(uint64(i%3)+1).Engine.ReadBarrier(ctx, engine.LinearizableRead)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var rounds, served uint64
	for id := uint64(1); id <= 3; id++ {
		s := c.Node(id).Engine.ReadStats()
		rounds += roundsOf(s) - roundsOf(before[id])
		served += s.Linearizable - before[id].Linearizable
	}
	t.Logf("%d reads on 3 nodes (leader %d) took %d rounds", reads, leader, rounds)
	if served != reads {
		t.Fatalf("served %d linearizable reads, want %d", served, reads)
	}
	if rounds >= reads/2 {
		t.Fatalf("%d rounds for %d concurrent reads: reads do not share rounds", rounds, reads)
	}
}

// slowLeader delays every message to and from the leader by d, so that a
// ReadIndex round on it takes 2d.
func slowLeader(c *testcluster.Cluster, leader uint64, d time.Duration) {
	for id := uint64(1); id <= 3; id++ {
		if id != leader {
			c.Net.SetLinkFaults(leader, id, memnet.Faults{MinDelay: d, MaxDelay: d})
			c.Net.SetLinkFaults(id, leader, memnet.Faults{MinDelay: d, MaxDelay: d})
		}
	}
}

// slowCluster has a one-second election timeout, so that links slowed to
// 100 ms do not cost the leader its leadership.
func slowCluster(t *testing.T, rb engine.ReadBatchingConfig) (*testcluster.Cluster, uint64) {
	c := testcluster.New(t, 3, testcluster.Options{ElectionTick: 100, Configure: func(cfg *engine.Config) {
		cfg.ReadConsistency = engine.ReadConsistencyConfig{AllowClientOverride: true, ReadBatching: rb}
	}})
	leader := c.WaitLeader(10 * time.Second)
	if err := c.Node(leader).Engine.Barrier(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	return c, leader
}

func TestReadBatchingSizeThreshold(t *testing.T) {
	c, leader := slowCluster(t, engine.ReadBatchingConfig{SizeThreshold: 10, TimeThresholdMs: 60_000})
	e := c.Node(leader).Engine
	slowLeader(c, leader, 100*time.Millisecond)
	ctx := ctxT(t, 20*time.Second)
	before := e.ReadStats()
	// The first read starts a round at once; 25 more arrive while it is in
	// flight (it takes 200 ms): each 10 of them start a round of their own
	// without waiting for it, the last 5 wait for the rounds to end.
	var wg sync.WaitGroup
	errs := make(chan error, 26)
	wg.Go(func() { errs <- e.ReadBarrier(ctx, engine.LinearizableRead) })
	waitFor(t, func() bool { return e.ReadStats().RoundsIdle > before.RoundsIdle })
	start := time.Now()
	for range 25 {
		wg.Go(func() { errs <- e.ReadBarrier(ctx, engine.LinearizableRead) })
	}
	waitFor(t, func() bool { return e.ReadStats().RoundsSize-before.RoundsSize >= 2 })
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Errorf("the size threshold started rounds after %v, not before the round in flight (200 ms) ended", d)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := e.ReadStats()
	t.Logf("rounds: idle %d, size %d, time %d", s.RoundsIdle-before.RoundsIdle, s.RoundsSize-before.RoundsSize, s.RoundsTime-before.RoundsTime)
	if got := s.RoundsSize - before.RoundsSize; got != 2 {
		t.Errorf("%d rounds started by size, want 2 (25 reads, threshold 10)", got)
	}
	if got := s.RoundsIdle - before.RoundsIdle; got != 2 {
		t.Errorf("%d rounds started idle, want 2 (the first read, then the last 5)", got)
	}
	if s.RoundsTime != before.RoundsTime {
		t.Errorf("%d rounds started by time with a 60 s threshold", s.RoundsTime-before.RoundsTime)
	}
}

func TestReadBatchingTimeThreshold(t *testing.T) {
	c, leader := slowCluster(t, engine.ReadBatchingConfig{SizeThreshold: 1000, TimeThresholdMs: 40})
	e := c.Node(leader).Engine
	slowLeader(c, leader, 100*time.Millisecond)
	ctx := ctxT(t, 20*time.Second)
	before := e.ReadStats()
	// A read every 5 ms for 300 ms while rounds take 200 ms: a round in
	// flight all along, so only the time threshold starts the next ones,
	// about every 40 ms.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	errs := make(chan error, 100)
	n := 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; n++ {
		wg.Go(func() {
			t0 := time.Now()
			err := e.ReadBarrier(ctx, engine.LinearizableRead)
			mu.Lock()
			worst = max(worst, time.Since(t0))
			mu.Unlock()
			errs <- err
		})
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := e.ReadStats()
	byTime := s.RoundsTime - before.RoundsTime
	t.Logf("%d reads: rounds idle %d, size %d, time %d; slowest read %v", n, s.RoundsIdle-before.RoundsIdle,
		s.RoundsSize-before.RoundsSize, byTime, worst)
	if byTime < 3 {
		t.Errorf("%d rounds started by the 40 ms time threshold in 300 ms of reads with 200 ms rounds, want at least 3", byTime)
	}
	if s.RoundsSize != before.RoundsSize {
		t.Errorf("rounds started by size with a threshold of 1000")
	}
	if total := roundsOf(s) - roundsOf(before); total >= uint64(n) {
		t.Errorf("%d rounds for %d reads", total, n)
	}
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// leaseCluster has a 500 ms election timeout and a 250 ms lease (half of it).
func leaseCluster(t *testing.T) (*testcluster.Cluster, uint64) {
	c := testcluster.New(t, 3, testcluster.Options{ElectionTick: 50})
	return c, c.WaitLeader(10 * time.Second)
}

func TestLeaseReadsNeedNoRound(t *testing.T) {
	c, leader := leaseCluster(t)
	e := c.Node(leader).Engine
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.Propose(ctx, leader, memkv.Set("k", "0")); err != nil {
		t.Fatal(err)
	}
	// The first lease read has no lease yet: its round takes one.
	if err := e.ReadBarrier(ctx, engine.LeaseRead); err != nil {
		t.Fatal(err)
	}
	before := e.ReadStats()
	if before.LeaseFallbacks != 1 || before.LeaseRemaining <= 0 {
		t.Fatalf("after the first lease read: %+v", before)
	}
	// For 1 s (four leases) a writer and lease readers on the leader: every
	// read is served from the lease, which is renewed in the background,
	// and sees the writes acknowledged before it.
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	stop := time.Now().Add(time.Second)
	wg.Go(func() {
		for i := 1; time.Now().Before(stop); i++ {
			if _, err := c.Propose(ctx, leader, memkv.Set("k", fmt.Sprint(i))); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			acked = i
			mu.Unlock()
		}
	})
	reads := 0
	for time.Now().Before(stop) {
		mu.Lock()
		want := acked
		mu.Unlock()
		if err := e.ReadBarrier(ctx, engine.LeaseRead); err != nil {
			t.Fatal(err)
		}
		v, _ := c.Node(leader).SM.Get("k")
		var got int
		fmt.Sscan(v, &got)
		if got < want {
			t.Fatalf("lease read saw k=%d after write %d was acknowledged", got, want)
		}
		reads++
		time.Sleep(200 * time.Microsecond)
	}
	wg.Wait()
	s := e.ReadStats()
	local, fallbacks := s.LeaseLocal-before.LeaseLocal, s.LeaseFallbacks-before.LeaseFallbacks
	readRounds := s.RoundsIdle + s.RoundsSize + s.RoundsTime - before.RoundsIdle - before.RoundsSize - before.RoundsTime
	t.Logf("%d lease reads: %d from the lease, %d fell back; %d renewal rounds, %d read rounds", reads, local, fallbacks,
		s.RoundsRenew-before.RoundsRenew, readRounds)
	if fallbacks != 0 || local != uint64(reads) || readRounds != 0 {
		t.Fatalf("lease reads of a leader with a warm lease: %d fell back to a round, %d read rounds", fallbacks, readRounds)
	}
	if r := s.RoundsRenew - before.RoundsRenew; r < 3 || r > 12 {
		t.Errorf("%d renewal rounds in 1 s of lease reads with a 250 ms lease, want about 4-8", r)
	}
	// Idle, the lease is not renewed and lapses.
	idle := e.ReadStats()
	time.Sleep(600 * time.Millisecond)
	s = e.ReadStats()
	if s.RoundsRenew != idle.RoundsRenew || s.LeaseRemaining != 0 {
		t.Fatalf("idle: %d renewals, lease remaining %v", s.RoundsRenew-idle.RoundsRenew, s.LeaseRemaining)
	}
	c.Check()
}

// TestExpiredLeaseDoesNotServe: an isolated leader serves lease reads from
// its lease while it lasts, with no message, and then does not serve them
// at all, while the others elect a leader and commit a new value.
func TestExpiredLeaseDoesNotServe(t *testing.T) {
	c, leader := leaseCluster(t)
	e := c.Node(leader).Engine
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.Propose(ctx, leader, memkv.Set("k", "old")); err != nil {
		t.Fatal(err)
	}
	if err := e.ReadBarrier(ctx, engine.LinearizableRead); err != nil {
		t.Fatal(err)
	}
	c.Net.Isolate(leader)
	before := e.ReadStats()
	if before.LeaseRemaining <= 0 {
		t.Skipf("the lease ran out before the leader was isolated (slow machine): %+v", before)
	}
	if err := e.ReadBarrier(ctx, engine.LeaseRead); err != nil {
		t.Fatal(err)
	}
	if s := e.ReadStats(); s.LeaseLocal != before.LeaseLocal+1 {
		t.Fatalf("an isolated leader with a lease did not serve from it: %+v", s)
	}
	waitFor(t, func() bool { return e.ReadStats().LeaseRemaining == 0 })
	// The others elect a leader and write.
	var other uint64
	waitFor(t, func() bool {
		l := c.Leader()
		if l != 0 && l != leader {
			other = l
			return true
		}
		return false
	})
	if _, err := c.Propose(ctx, other, memkv.Set("k", "new")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := e.ReadBarrier(short, engine.LeaseRead)
	if err == nil {
		v, _ := c.Node(leader).SM.Get("k")
		t.Fatalf("lease read on the isolated old leader returned after its lease expired (k=%q)", v)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lease read on the isolated old leader: %v, want a deadline error", err)
	}
	c.Net.Heal()
	if err := e.ReadBarrier(ctx, engine.LeaseRead); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Node(leader).SM.Get("k"); v != "new" {
		t.Fatalf("after heal, a lease read on the old leader sees k=%q", v)
	}
	c.Check()
}

func TestLeaseDroppedOnStepDown(t *testing.T) {
	c, leader := leaseCluster(t)
	e := c.Node(leader).Engine
	ctx := ctxT(t, 20*time.Second)
	if err := e.ReadBarrier(ctx, engine.LeaseRead); err != nil {
		t.Fatal(err)
	}
	if e.ReadStats().LeaseRemaining <= 0 {
		t.Skip("lease expired at once (slow machine)")
	}
	next := leader%3 + 1
	if err := e.TransferLeadership(ctx, next); err != nil {
		t.Fatal(err)
	}
	if r := e.ReadStats().LeaseRemaining; r != 0 {
		t.Fatalf("the old leader still holds a lease (%v) after handing leadership to %d", r, next)
	}
	before := e.ReadStats()
	if err := e.ReadBarrier(ctx, engine.LeaseRead); err != nil {
		t.Fatal(err)
	}
	if s := e.ReadStats(); s.LeaseFallbacks != before.LeaseFallbacks+1 || s.LeaseLocal != before.LeaseLocal {
		t.Fatalf("a lease read on a follower was not forwarded as a ReadIndex: %+v", s)
	}
	// The new leader takes a lease with its first round.
	ne := c.Node(next).Engine
	if err := ne.ReadBarrier(ctx, engine.LeaseRead); err != nil {
		t.Fatal(err)
	}
	if ne.ReadStats().LeaseRemaining <= 0 {
		t.Fatalf("the new leader has no lease after a round: %+v", ne.ReadStats())
	}
}

func TestEventualReadIsLocal(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	leader := c.WaitLeader(5 * time.Second)
	follower := leader%3 + 1
	writeN(t, c, "k", 3)
	c.WaitConverged(10 * time.Second)
	c.Net.Isolate(follower)
	writeN(t, c, "j", 3)
	// At once, from the follower's own (stale) state.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	e := c.Node(follower).Engine
	if err := e.ReadBarrier(short, engine.EventualConsistency); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Node(follower).SM.Get("j0"); ok {
		t.Fatal("the isolated follower has a write made after it was cut off")
	}
	if err := e.ReadBarrier(short, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("default (linearizable) read on an isolated follower: %v", err)
	}
	if s := e.ReadStats(); s.Eventual != 1 || s.Linearizable != 0 {
		t.Fatalf("stats: %+v", s)
	}
	c.Net.Heal()
}

// TestRestartedVoterHoldsItsVote: a voter that restarts forgot when it last
// heard from the leader, and might help elect another while the leader's
// lease lasts; it ignores vote requests for an election timeout instead.
func TestRestartedVoterHoldsItsVote(t *testing.T) {
	c, leader := leaseCluster(t)
	a := leader%3 + 1
	b := a%3 + 1
	// b is cut off long enough to campaign (and fail) on its own timer.
	c.Net.Isolate(b)
	time.Sleep(1200 * time.Millisecond)
	// a restarts, and can talk to b only: b's next campaign needs a's vote.
	c.Stop(a)
	c.Net.Heal()
	c.Net.Isolate(leader)
	restart := time.Now()
	c.Restart(a)
	var elected uint64
	waitFor(t, func() bool {
		for _, id := range []uint64{a, b} {
			if c.Node(id).Engine.Status().Role == engine.Leader {
				elected = id
				return true
			}
		}
		return false
	})
	took := time.Since(restart)
	t.Logf("node %d elected %v after node %d restarted", elected, took, a)
	if took < 500*time.Millisecond {
		t.Fatalf("a leader was elected %v after a voter restarted, within its election timeout (500 ms)", took)
	}
	c.Net.Heal()
	c.WaitLeader(10 * time.Second)
	c.Check()
}

// TestLeaseDroppedOnTransfer: a leadership transfer elects its target
// without waiting for the voters' leases, so the old leader drops its lease
// when it sends MsgTimeoutNow, even if it never hears of the new term.
func TestLeaseDroppedOnTransfer(t *testing.T) {
	c, leader := leaseCluster(t)
	target := leader%3 + 1
	other := target%3 + 1
	e := c.Node(leader).Engine
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.Propose(ctx, leader, memkv.Set("k", "old")); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(10 * time.Second)
	if err := e.ReadBarrier(ctx, engine.LeaseRead); err != nil {
		t.Fatal(err)
	}
	// The old leader hears from nobody: it would keep leading its term.
	c.Net.Block(target, leader)
	c.Net.Block(other, leader)
	if err := e.ReadBarrier(ctx, engine.LeaseRead); err != nil {
		t.Fatal(err)
	}
	if e.ReadStats().LeaseRemaining <= 0 {
		t.Skip("the lease expired at once (slow machine)")
	}
	go func() {
		tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		e.TransferLeadership(tctx, target) // returns when tctx ends: the old leader never learns
	}()
	waitFor(t, func() bool { return c.Node(target).Engine.Status().Role == engine.Leader })
	if _, err := c.Propose(ctx, target, memkv.Set("k", "new")); err != nil {
		t.Fatal(err)
	}
	if r := e.ReadStats().LeaseRemaining; r != 0 {
		t.Errorf("the old leader kept its lease (%v left) after sending MsgTimeoutNow", r)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := e.ReadBarrier(short, engine.LeaseRead); err == nil {
		v, _ := c.Node(leader).SM.Get("k")
		t.Fatalf("the old leader served a lease read after the transfer: k=%q", v)
	}
	c.Net.Heal()
	c.Check()
}

func TestLeaseDroppedOnMembershipChange(t *testing.T) {
	c, leader := leaseCluster(t)
	e := c.Node(leader).Engine
	ctx := ctxT(t, 20*time.Second)
	if err := e.ReadBarrier(ctx, engine.LeaseRead); err != nil {
		t.Fatal(err)
	}
	before := e.ReadStats()
	if err := e.AddLearner(ctx, 4, memnet.Addr(4)); err != nil {
		t.Fatal(err)
	}
	if r := e.ReadStats().LeaseRemaining; r != 0 {
		t.Fatalf("lease (%v left) survived a membership change", r)
	}
	if err := e.ReadBarrier(ctx, engine.LeaseRead); err != nil {
		t.Fatal(err)
	}
	s := e.ReadStats()
	if s.LeaseFallbacks != before.LeaseFallbacks+1 || s.LeaseRemaining <= 0 {
		t.Fatalf("after the change, a lease read should take a round and a new lease: %+v", s)
	}
}
