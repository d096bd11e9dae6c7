package engine_test

import (
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/internal/testcluster"
	"github.com/cairn-db/cairn/transport/memnet"
)

// soakDuration is how long TestChaos runs: a short run in every test pass,
// a long one with CAIRN_SOAK=<duration> (see the Makefile's soak target).
func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("CAIRN_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("CAIRN_SOAK=%q: %v", s, err)
		}
		return d
	}
	return 3 * time.Second
}

// TestChaos writes continuously while a random schedule of faults hits a
// five-node cluster: leader isolation, random partitions, lossy links, and
// power failures with restart. At the end every acknowledged write is on
// every node, no term had two leaders, and no index held two entries.
func TestChaos(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	c := testcluster.New(t, 5, testcluster.Options{
		Seed: seed, CrashableFS: true,
		// Small snapshots, so that crashes also hit snapshotting and catch-up.
		Snapshot: engine.SnapshotConfig{Threshold: 300, CatchUpMargin: 50},
	})
	stop := make(chan struct{})
	done := make(chan []ack)
	go func() { done <- writeUntil(t, c, 4, stop) }()

	deadline := time.Now().Add(soakDuration(t))
	for round := 0; time.Now().Before(deadline); round++ {
		switch rng.IntN(5) {
		case 0:
			if l := c.Leader(); l != 0 {
				c.Net.Isolate(l)
			}
		case 1:
			a, b := uint64(rng.IntN(5)+1), uint64(rng.IntN(5)+1)
			c.Net.Partition([]uint64{a, b})
		case 2:
			c.Net.SetFaults(memnet.Faults{DropRate: 0.2, DuplicateRate: 0.1, ReorderRate: 0.1, MaxDelay: 5 * time.Millisecond})
		case 3:
			// A minority loses power and comes back.
			id := uint64(rng.IntN(5) + 1)
			c.Crash(id)
			time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
			c.Restart(id)
		case 4:
			// Everything loses power at once.
			c.Crash(1, 2, 3, 4, 5)
			for id := uint64(1); id <= 5; id++ {
				c.Restart(id)
			}
		}
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		c.Net.Heal()
		c.Net.SetFaults(memnet.Faults{})
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
	}
	close(stop)
	acks := <-done
	c.WaitLeader(10 * time.Second)
	if _, err := c.ProposeRetry(ctxT(t, 10*time.Second), []byte{}); err != nil {
		t.Fatalf("final write: %v", err)
	}
	c.WaitConverged(20 * time.Second)
	for _, id := range c.Running() {
		for _, a := range acks {
			if v, ok := c.Node(id).SM.Get(a.key); !ok || v != a.value {
				t.Fatalf("node %d lost acknowledged %s=%s (index %d)", id, a.key, a.value, a.index)
			}
		}
	}
	t.Logf("%d writes acknowledged under faults; all present on all nodes", len(acks))
	c.Check()
}
