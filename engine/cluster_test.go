package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/internal/testcluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestThreeNodesReplicate(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	ctx := ctxT(t, 20*time.Second)
	leader := c.WaitLeader(5 * time.Second)
	for i := 0; i < 100; i++ {
		// Propose through every node: followers forward to the leader.
		id := uint64(i%3) + 1
		r, err := c.Propose(ctx, id, memkv.Set(fmt.Sprintf("k%d", i), fmt.Sprint(i)))
		if err != nil {
			t.Fatalf("propose %d via node %d (leader %d): %v", i, id, leader, err)
		}
		if r.Existed {
			t.Fatalf("k%d existed before its first write", i)
		}
	}
	c.WaitConverged(10 * time.Second)
	for _, id := range c.Running() {
		sm := c.Node(id).SM
		if sm.Len() != 100 {
			t.Errorf("node %d has %d keys, want 100", id, sm.Len())
		}
		if v, _ := sm.Get("k42"); v != "42" {
			t.Errorf("node %d: k42 = %q, want 42", id, v)
		}
	}
	c.Check()
}
