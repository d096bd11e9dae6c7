package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/internal/testcluster"
)

func TestBarrierOnFollowerSeesAcknowledgedWrites(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	leader := c.WaitLeader(5 * time.Second)
	follower := leader%3 + 1
	ctx := ctxT(t, 20*time.Second)
	for i := 0; i < 50; i++ {
		key := fmt.Sprint("k", i)
		if _, err := c.Propose(ctx, leader, memkv.Set(key, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		// Immediately after the leader acknowledged, a barrier on the
		// follower makes the write visible there.
		if err := c.Node(follower).Engine.Barrier(ctx); err != nil {
			t.Fatalf("barrier: %v", err)
		}
		if v, _ := c.Node(follower).SM.Get(key); v != fmt.Sprint(i) {
			t.Fatalf("after the barrier follower has %s=%q, want %d", key, v, i)
		}
	}
}

func TestConcurrentReadIndexesShareRounds(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	writeN(t, c, "k", 10)
	ctx := ctxT(t, 20*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 500)
	for i := 0; i < 500; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := uint64(i%3) + 1
			idx, err := c.Node(id).Engine.ReadIndex(ctx)
			if err == nil && idx < 10 {
				err = fmt.Errorf("read index %d below the 10 acknowledged writes", idx)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestIsolatedFollowerCannotServeLinearizableRead(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	leader := c.WaitLeader(5 * time.Second)
	follower := leader%3 + 1
	c.Net.Isolate(follower)
	writeN(t, c, "k", 5)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := c.Node(follower).Engine.Barrier(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("barrier on an isolated follower: %v, want a deadline error", err)
	}
	c.Net.Heal()
	if err := c.Node(follower).Engine.Barrier(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("barrier after heal: %v", err)
	}
	if v, _ := c.Node(follower).SM.Get("k4"); v != "4" {
		t.Fatalf("after heal and barrier: k4=%q", v)
	}
}
