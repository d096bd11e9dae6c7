// Command cluster starts a three-node cairn cluster inside one process, over
// the gRPC transport on loopback, writes through one node and reads the
// replicated state from all three. It shows the embedded engine API end to
// end:
//
//	go run ./examples/cluster
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "cairn-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	start := func(id uint64, peers []engine.Peer) (*engine.Engine, *memkv.Store, error) {
		sm := memkv.New()
		e, err := engine.Start(engine.Config{
			NodeID:         id,
			DataDir:        filepath.Join(dir, fmt.Sprint(id)),
			ListenPeer:     "127.0.0.1:0",
			InitialCluster: peers,
			Join:           peers != nil,
			StateMachine:   sm,
			Logger:         logger,
		})
		return e, sm, err
	}

	// Node 1 starts a cluster of itself; nodes 2 and 3 join it.
	first, firstSM, err := start(1, nil)
	if err != nil {
		return err
	}
	defer first.Stop()
	<-first.Ready()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	nodes := []*engine.Engine{first}
	stores := []*memkv.Store{firstSM}
	for id := uint64(2); id <= 3; id++ {
		var peers []engine.Peer
		for pid, addr := range first.Members() {
			peers = append(peers, engine.Peer{ID: pid, Addr: addr})
		}
		e, sm, err := start(id, peers)
		if err != nil {
			return err
		}
		defer e.Stop()
		if err := first.AddVoter(ctx, id, e.PeerAddr()); err != nil {
			return fmt.Errorf("add node %d: %w", id, err)
		}
		<-e.Ready() // it knows the leader and has caught up
		nodes, stores = append(nodes, e), append(stores, sm)
	}

	// Write through a follower: it forwards to the leader.
	for i := 0; i < 10; i++ {
		res, err := nodes[2].Propose(ctx, memkv.Set(fmt.Sprintf("greeting-%d", i), "hello"))
		if err != nil {
			return err
		}
		fmt.Printf("wrote greeting-%d at index %d\n", i, res.(memkv.Result).Index)
	}
	// Every node applies the same entries; wait until they have.
	target := nodes[2].Status().Applied
	for _, e := range nodes {
		for e.Status().Applied < target {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i, sm := range stores {
		v, _ := sm.Get("greeting-9")
		st := nodes[i].Status()
		fmt.Printf("node %d (%s, term %d): %d keys, greeting-9=%q\n", st.ID, st.Role, st.Term, sm.Len(), v)
	}
	return nil
}
