// Package dbcluster runs several cairn.DB nodes in one process on the
// in-memory network of transport/memnet, for the tests and benchmarks of
// the embedded database. (internal/testcluster does the same for bare
// engines with the example state machine, and checks raft's safety.)
package dbcluster

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/transport/memnet"
)

// Options shape a cluster; zero values take test-friendly defaults.
type Options struct {
	Nodes    int    // default 3
	Seed     uint64 // memnet's seed; default 1
	Raft     engine.RaftConfig
	Snapshot engine.SnapshotConfig
	KV       kv.Options
	// Reporter, if set, gives each node its reporter.
	Reporter func(id uint64) engine.Reporter
	// Logger receives the nodes' logs; default Warn level to stderr.
	Logger *slog.Logger
}

// Cluster is the nodes and their network. DBs holds the running nodes.
type Cluster struct {
	Net  *memnet.Network
	DBs  map[uint64]*cairn.DB
	dirs map[uint64]string
	opts Options
}

// New starts the nodes and waits until each is ready. Everything stops at
// tb's cleanup.
func New(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Raft == (engine.RaftConfig{}) {
		opts.Raft = engine.RaftConfig{TickMs: 10, ElectionTick: 15, HeartbeatTick: 2}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// TempDir first: cleanups run last-registered first, so the nodes stop
	// before their directories are removed.
	root := tb.TempDir()
	c := &Cluster{Net: memnet.New(opts.Seed), DBs: map[uint64]*cairn.DB{}, dirs: map[uint64]string{}, opts: opts}
	tb.Cleanup(func() {
		for id, db := range c.DBs {
			if err := db.Close(); err != nil {
				tb.Errorf("close node %d: %v", id, err)
			}
		}
		c.Net.Close()
	})
	for id := uint64(1); id <= uint64(opts.Nodes); id++ {
		c.dirs[id] = filepath.Join(root, fmt.Sprint(id))
		c.Start(tb, id)
	}
	for id := range c.DBs {
		c.Ready(tb, id)
	}
	return c
}

// Start starts node id (again) from its data directory.
func (c *Cluster) Start(tb testing.TB, id uint64) {
	tb.Helper()
	var peers []engine.Peer
	for p := uint64(1); p <= uint64(c.opts.Nodes); p++ {
		peers = append(peers, engine.Peer{ID: p, Addr: memnet.Addr(p)})
	}
	cfg := engine.Config{
		NodeID: id, DataDir: c.dirs[id], InitialCluster: peers,
		Raft: c.opts.Raft, Snapshot: c.opts.Snapshot, Logger: c.opts.Logger,
		NewTransport: func(s transport.SnapshotStore) (transport.Transport, error) {
			return c.Net.Transport(id, s), nil
		},
	}
	if c.opts.Reporter != nil {
		cfg.Reporter = c.opts.Reporter(id)
	}
	db, err := cairn.Start(cairn.Config{Engine: cfg, KV: c.opts.KV})
	if err != nil {
		tb.Fatalf("start node %d: %v", id, err)
	}
	c.DBs[id] = db
}

// Ready waits until node id knows a leader and has caught up.
func (c *Cluster) Ready(tb testing.TB, id uint64) {
	tb.Helper()
	select {
	case <-c.DBs[id].Ready():
	case <-time.After(20 * time.Second):
		tb.Fatalf("node %d not ready", id)
	}
}

// Stop stops node id cleanly.
func (c *Cluster) Stop(tb testing.TB, id uint64) {
	tb.Helper()
	if err := c.DBs[id].Close(); err != nil {
		tb.Fatalf("stop node %d: %v", id, err)
	}
	delete(c.DBs, id)
}

// Leader waits for a running node that leads, and returns its id.
func (c *Cluster) Leader(tb testing.TB) uint64 {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for id, db := range c.DBs {
			if db.Engine().Status().Role == engine.Leader {
				return id
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatal("no leader")
	return 0
}
