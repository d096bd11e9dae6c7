package engine_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/transport"
)

// recorder is a Reporter that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []engine.Event
}

func (r *recorder) Report(e engine.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) count(t engine.EventType) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == t {
			n++
		}
	}
	return n
}

// wait reports whether an event of type t arrives within d (events reach
// the reporter asynchronously).
func (r *recorder) wait(t engine.EventType, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for r.count(t) == 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

type grpcNode struct {
	id   uint64
	dir  string
	addr string // kept across restarts: members know a node by its address
	e    *engine.Engine
	sm   *memkv.Store
	rec  *recorder
}

// grpcCluster runs nodes over the gRPC transport on loopback ports chosen
// by the kernel: node 1 bootstraps alone, the others join it.
type grpcCluster struct {
	t     *testing.T
	root  string
	edit  func(*engine.Config)
	nodes map[uint64]*grpcNode
}

func newGRPCCluster(t *testing.T, edit func(*engine.Config)) *grpcCluster {
	// TempDir first: cleanups run last-registered first, so the nodes stop
	// before their directories are removed.
	c := &grpcCluster{t: t, root: t.TempDir(), edit: edit, nodes: map[uint64]*grpcNode{}}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.e != nil {
				n.e.Stop()
			}
		}
	})
	c.start(1, nil)
	select {
	case <-c.nodes[1].e.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("node 1 not ready")
	}
	return c
}

func (c *grpcCluster) config(id uint64, peers []engine.Peer) engine.Config {
	n := c.nodes[id]
	listen := n.addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	cfg := engine.Config{
		NodeID: id, ClusterName: "grpc-test", DataDir: n.dir, ListenPeer: listen,
		InitialCluster: peers, Join: peers != nil, StateMachine: n.sm, Reporter: n.rec,
		Raft:   engine.RaftConfig{TickMs: 10, ElectionTick: 30, HeartbeatTick: 2},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if c.edit != nil {
		c.edit(&cfg)
	}
	return cfg
}

func (c *grpcCluster) start(id uint64, peers []engine.Peer) {
	c.t.Helper()
	n := c.nodes[id]
	if n == nil {
		n = &grpcNode{id: id, dir: filepath.Join(c.root, fmt.Sprint(id)), rec: &recorder{}}
		c.nodes[id] = n
	}
	n.sm = memkv.New()
	e, err := engine.Start(c.config(id, peers))
	if err != nil {
		c.t.Fatalf("start node %d: %v", id, err)
	}
	n.e = e
	n.addr = e.PeerAddr()
}

// join starts node id and adds it as a voter through node 1.
func (c *grpcCluster) join(id uint64) {
	c.t.Helper()
	var peers []engine.Peer
	for pid, addr := range c.nodes[1].e.Members() {
		peers = append(peers, engine.Peer{ID: pid, Addr: addr})
	}
	c.start(id, peers)
	if err := c.nodes[1].e.AddVoter(ctxT(c.t, 20*time.Second), id, c.nodes[id].e.PeerAddr()); err != nil {
		c.t.Fatalf("add voter %d: %v", id, err)
	}
}

func (c *grpcCluster) waitConverged(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var hashes []string
		for _, n := range c.nodes {
			if n.e != nil {
				i, h := n.sm.Hash()
				hashes = append(hashes, fmt.Sprintf("%d/%x", i, h))
			}
		}
		same := true
		for _, h := range hashes {
			same = same && h == hashes[0]
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("gRPC cluster did not converge: %s", strings.Join(hashes, " "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSnapshotCatchUpOverGRPCBulk(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compression=%v", compress), func(t *testing.T) {
			c := newGRPCCluster(t, func(cfg *engine.Config) {
				cfg.Snapshot = engine.SnapshotConfig{Threshold: 200, CatchUpMargin: 50}
				cfg.Compression = transport.Compression{Snapshot: compress, Replication: compress}
			})
			ctx := ctxT(t, 30*time.Second)
			value := strings.Repeat("x", 1024)
			for i := 0; i < 1000; i++ {
				if _, err := c.nodes[1].e.Propose(ctx, memkv.Set(fmt.Sprint(i), value)); err != nil {
					t.Fatal(err)
				}
			}
			if st := c.nodes[1].e.Status(); st.FirstIndex <= 1 {
				t.Fatalf("log not compacted (first index %d): the test would not need a snapshot", st.FirstIndex)
			}
			c.join(2)
			c.join(3)
			c.waitConverged(20 * time.Second)
			for _, id := range []uint64{2, 3} {
				n := c.nodes[id]
				if !n.rec.wait(engine.EventSnapshotInstalled, 5*time.Second) {
					t.Fatalf("node %d caught up without installing a snapshot", id)
				}
				if v, _ := n.sm.Get("999"); v != value || n.sm.Len() != 1000 {
					t.Fatalf("node %d: %d keys after snapshot", id, n.sm.Len())
				}
			}
			// A member that was down while the log moved on and was
			// compacted past it catches up by snapshot too.
			c.nodes[3].e.Stop()
			c.nodes[3].e = nil
			before := c.nodes[3].rec.count(engine.EventSnapshotInstalled)
			for i := 1000; i < 2000; i++ {
				if _, err := c.nodes[1].e.Propose(ctx, memkv.Set(fmt.Sprint(i), value)); err != nil {
					t.Fatal(err)
				}
			}
			var peers []engine.Peer
			for id, addr := range c.nodes[1].e.Members() {
				peers = append(peers, engine.Peer{ID: id, Addr: addr})
			}
			c.start(3, peers)
			c.waitConverged(20 * time.Second)
			deadline := time.Now().Add(5 * time.Second)
			for c.nodes[3].rec.count(engine.EventSnapshotInstalled) == before {
				if time.Now().After(deadline) {
					t.Fatal("the restarted member caught up without a snapshot")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := c.nodes[3].sm.Len(); n != 2000 {
				t.Fatalf("restarted member has %d keys, want 2000", n)
			}
		})
	}
}

func TestLargeSnapshotOnBulkDoesNotDelayHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("streams a 32 MiB snapshot")
	}
	c := newGRPCCluster(t, func(cfg *engine.Config) {
		cfg.Snapshot = engine.SnapshotConfig{Threshold: 1000, CatchUpMargin: 100}
		cfg.Compression = transport.Compression{Snapshot: true}
	})
	c.join(2)
	c.join(3)
	c.waitConverged(10 * time.Second)
	// Node 3 goes away while 32 MiB of state is written and the log compacted.
	c.nodes[3].e.Stop()
	c.nodes[3].e = nil
	ctx := ctxT(t, 60*time.Second)
	value := strings.Repeat("y", 16<<10)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 2048; i += 8 {
				if _, err := c.nodes[1].e.Propose(ctx, memkv.Set(fmt.Sprint(i), value+fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	term := c.nodes[1].e.Status().Term
	leaderChanges := c.nodes[1].rec.count(engine.EventLeaderChanged) + c.nodes[2].rec.count(engine.EventLeaderChanged)
	// Node 3 returns and must receive the whole state over Bulk while the
	// leader keeps heartbeating on Control.
	var peers []engine.Peer
	for id, addr := range c.nodes[1].e.Members() {
		peers = append(peers, engine.Peer{ID: id, Addr: addr})
	}
	c.start(3, peers)
	c.waitConverged(60 * time.Second)
	if !c.nodes[3].rec.wait(engine.EventSnapshotInstalled, 5*time.Second) {
		t.Fatal("node 3 caught up without a snapshot")
	}
	if got := c.nodes[1].e.Status().Term; got != term {
		t.Fatalf("term moved from %d to %d during the snapshot transfer: an election happened", term, got)
	}
	if got := c.nodes[1].rec.count(engine.EventLeaderChanged) + c.nodes[2].rec.count(engine.EventLeaderChanged); got != leaderChanges {
		t.Fatalf("leader changed during the snapshot transfer")
	}
	if c.nodes[3].sm.Len() != 2048 {
		t.Fatalf("node 3 has %d keys, want 2048", c.nodes[3].sm.Len())
	}
}
