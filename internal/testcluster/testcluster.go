// Package testcluster runs several engine nodes in one process, on the
// in-memory network of transport/memnet, for the engine's cluster tests.
//
// It records what every node does and checks the safety properties online:
// at most one leader per term (from every node's leader-changed events) and
// one value per committed index (from every node's applied entries, across
// restarts). Tests call Check at the end, or at any point.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/transport/memnet"
)

// Options shape a cluster. Zero values take test-friendly defaults.
type Options struct {
	Seed         uint64
	TickMs       int // default 10
	ElectionTick int // default 15
	Persistence  engine.PersistenceConfig
	Snapshot     engine.SnapshotConfig
	// Configure, if set, edits each node's config before it starts.
	Configure func(*engine.Config)
	// CrashableFS puts every node's data on an in-memory filesystem that
	// remembers what was synced, so Crash loses exactly the unsynced writes,
	// as a power failure would.
	CrashableFS bool
}

// Cluster is a set of nodes on one memnet.Network.
type Cluster struct {
	t    testing.TB
	Net  *memnet.Network
	opts Options
	root string

	mu       sync.Mutex
	nodes    map[uint64]*Node
	leaders  map[uint64]uint64  // term -> leader seen by any node
	applied  map[uint64]applied // index -> the entry first applied there
	crashed  map[uint64]bool    // nodes between their crash instant and their stop
	excused  map[uint64]bool    // nodes whose applies no longer count (see Excuse)
	lossy    bool               // committed entries may have been lost (see ForgetApplied)
	problems []problem
}

// Node is one member.
type Node struct {
	ID     uint64
	Dir    string
	Engine *engine.Engine // nil while stopped
	SM     *memkv.Store
	FS     *vfs.MemFS // with Options.CrashableFS
}

// New starts n voters with ids 1..n and waits for a leader.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.TickMs == 0 {
		opts.TickMs = 10
	}
	if opts.ElectionTick == 0 {
		opts.ElectionTick = 15
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	c := &Cluster{
		t: t, Net: memnet.New(opts.Seed), opts: opts, root: t.TempDir(),
		nodes: map[uint64]*Node{}, leaders: map[uint64]uint64{}, applied: map[uint64]applied{},
		crashed: map[uint64]bool{}, excused: map[uint64]bool{},
	}
	t.Cleanup(c.Close)
	for id := uint64(1); id <= uint64(n); id++ {
		c.nodes[id] = c.newNode(id)
	}
	for id := uint64(1); id <= uint64(n); id++ {
		if err := c.start(id, false); err != nil {
			t.Fatalf("start node %d: %v", id, err)
		}
	}
	c.WaitLeader(10 * time.Second)
	return c
}

func (c *Cluster) newNode(id uint64) *Node {
	n := &Node{ID: id, Dir: filepath.Join(c.root, "n"+strconv.FormatUint(id, 10))}
	if c.opts.CrashableFS {
		n.FS = vfs.NewCrashableMem()
		n.Dir = "/n" + strconv.FormatUint(id, 10)
	}
	return n
}

func (c *Cluster) initialCluster() []engine.Peer {
	var peers []engine.Peer
	for id := range c.nodes {
		peers = append(peers, engine.Peer{ID: id, Addr: memnet.Addr(id)})
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].ID < peers[j].ID })
	return peers
}

// Config returns the configuration node id starts with.
func (c *Cluster) Config(id uint64, join bool) engine.Config {
	c.mu.Lock()
	n := c.nodes[id]
	c.mu.Unlock()
	cfg := engine.Config{
		NodeID:      id,
		ClusterName: "test",
		DataDir:     n.Dir,
		Join:        join,
		Persistence: c.opts.Persistence,
		Snapshot:    c.opts.Snapshot,
		Raft:        engine.RaftConfig{TickMs: c.opts.TickMs, ElectionTick: c.opts.ElectionTick, HeartbeatTick: 2},
		Reporter:    reporter{c: c},
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		NewTransport: func(snaps transport.SnapshotStore) (transport.Transport, error) {
			return c.Net.Transport(id, snaps), nil
		},
	}
	// A joining node learns the members' addresses from InitialCluster, as
	// in etcd, but does not bootstrap from it.
	cfg.InitialCluster = c.initialCluster()
	if n.FS != nil {
		cfg.Storage.FS = n.FS
	}
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	return cfg
}

func (c *Cluster) start(id uint64, join bool) error {
	cfg := c.Config(id, join)
	sm := memkv.New()
	sm.OnApply = func(e engine.Entry) { c.recordApply(id, e) }
	cfg.StateMachine = sm
	e, err := engine.Start(cfg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.nodes[id].Engine, c.nodes[id].SM = e, sm
	c.mu.Unlock()
	return nil
}

// engine returns node id's running engine, or nil.
func (c *Cluster) engine(id uint64) *engine.Engine {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[id]; n != nil {
		return n.Engine
	}
	return nil
}

// Node returns member id.
func (c *Cluster) Node(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Alive returns the running nodes whose engine has not stopped on its own
// (Err set), sorted.
func (c *Cluster) Alive() []uint64 {
	var ids []uint64
	for _, id := range c.Running() {
		if e := c.engine(id); e != nil {
			select {
			case <-e.Done():
				continue
			default:
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// Running returns the ids of the running nodes, sorted.
func (c *Cluster) Running() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint64
	for id, n := range c.nodes {
		if n.Engine != nil {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Stop stops node id cleanly.
func (c *Cluster) Stop(id uint64) {
	c.t.Helper()
	n := c.Node(id)
	e := c.engine(id)
	if e == nil {
		return
	}
	if err := e.Stop(); err != nil {
		c.t.Errorf("stop node %d: %v", id, err)
	}
	c.mu.Lock()
	n.Engine = nil
	c.mu.Unlock()
}

// Crash simulates a power failure of the given nodes at the same instant:
// each node's filesystem is replaced by a copy holding only what had been
// synced, then the nodes are stopped. Restart brings them back from that
// state. It needs Options.CrashableFS.
func (c *Cluster) Crash(ids ...uint64) {
	c.t.Helper()
	if !c.opts.CrashableFS {
		c.t.Fatal("Crash needs Options.CrashableFS")
	}
	// From the crash instant on, nothing a crashed node does may be seen:
	// cut its messages, and ignore what it applies or reports.
	c.mu.Lock()
	for _, id := range ids {
		c.crashed[id] = true
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.Net.Isolate(id)
	}
	clones := make([]*vfs.MemFS, len(ids))
	for i, id := range ids {
		clones[i] = c.Node(id).FS.CrashClone(vfs.CrashCloneCfg{})
	}
	for i, id := range ids {
		n := c.Node(id)
		if e := c.engine(id); e != nil {
			e.Stop() // its writes after the clone are lost with the old filesystem
		}
		c.mu.Lock()
		n.Engine, n.FS = nil, clones[i]
		delete(c.crashed, id)
		c.mu.Unlock()
	}
	c.Net.Heal()
}

// ForgetApplied forgets which entry each index held. Call it after a crash
// that may legitimately lose committed entries (MemFirst), so that the
// check of one value per index starts afresh.
func (c *Cluster) ForgetApplied() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied = map[uint64]applied{}
	c.lossy = true
}

// Excuse stops counting what node id applied: for a node that stopped with
// engine.ErrDiverged after committed entries were lost (MemFirst), whose
// history is known to differ.
func (c *Cluster) Excuse(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.excused[id] = true
}

type applied struct {
	hash uint64
	node uint64
}

type problem struct {
	msg   string
	nodes []uint64
}

// Restart starts a stopped node again from its data directory.
func (c *Cluster) Restart(id uint64) {
	c.t.Helper()
	if err := c.start(id, false); err != nil {
		c.t.Fatalf("restart node %d: %v", id, err)
	}
}

// Join starts a new, empty node that waits to be added to the cluster.
func (c *Cluster) Join(id uint64) *Node {
	c.t.Helper()
	c.mu.Lock()
	c.nodes[id] = c.newNode(id)
	c.mu.Unlock()
	if err := c.start(id, true); err != nil {
		c.t.Fatalf("join node %d: %v", id, err)
	}
	return c.Node(id)
}

// Leader returns the running node that is leader in the highest term any
// running node knows, or 0 if there is none.
func (c *Cluster) Leader() uint64 {
	var leader, leaderTerm, maxTerm uint64
	for _, id := range c.Running() {
		e := c.engine(id)
		if e == nil {
			continue
		}
		st := e.Status()
		maxTerm = max(maxTerm, st.Term)
		if st.Role == engine.Leader && st.Term > leaderTerm {
			leader, leaderTerm = id, st.Term
		}
	}
	if leaderTerm < maxTerm {
		return 0 // an election is under way
	}
	return leader
}

// WaitLeader waits until a running node leads in the highest term, and
// returns it.
func (c *Cluster) WaitLeader(timeout time.Duration) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l != 0 {
			return l
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %v (running %v)", timeout, c.Running())
	return 0
}

// Propose sends cmd through node id.
func (c *Cluster) Propose(ctx context.Context, id uint64, cmd []byte) (memkv.Result, error) {
	e := c.engine(id)
	if e == nil {
		return memkv.Result{}, fmt.Errorf("node %d not running", id)
	}
	v, err := e.Propose(ctx, cmd)
	if err != nil {
		return memkv.Result{}, err
	}
	return v.(memkv.Result), nil
}

// ProposeRetry proposes through whichever node leads, retrying dropped
// proposals, until ctx ends.
func (c *Cluster) ProposeRetry(ctx context.Context, cmd []byte) (memkv.Result, error) {
	for {
		id := c.Leader()
		if id != 0 {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			r, err := c.Propose(pctx, id, cmd)
			cancel()
			if err == nil {
				return r, nil
			}
			if !errors.Is(err, engine.ErrProposalDropped) && !errors.Is(err, engine.ErrProposalTimeout) && !errors.Is(err, engine.ErrStopped) {
				return r, err
			}
		}
		select {
		case <-ctx.Done():
			return memkv.Result{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitApplied waits until every running node has applied index.
func (c *Cluster) WaitApplied(index uint64, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		behind := ""
		for _, id := range c.Running() {
			if e := c.engine(id); e != nil && e.Status().Applied < index {
				a := e.Status().Applied
				behind += fmt.Sprintf(" node %d at %d;", id, a)
			}
		}
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("not applied %d within %v:%s", index, timeout, behind)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitConverged waits until every live node (see Alive) has applied the same index
// with the same state hash. A running node that stopped on its own is not
// live, and is left out, only if it was removed, or if it stopped with
// engine.ErrDiverged after committed entries could be lost (ForgetApplied)
// or was excused; any other such node fails the test with its error, which
// is the real finding, rather than leaving tests to read its stale state.
func (c *Cluster) WaitConverged(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.checkSelfStopped()
		var first [2]uint64
		same := true
		for i, id := range c.Alive() {
			idx, h := c.Node(id).SM.Hash()
			if i == 0 {
				first = [2]uint64{idx, h}
			} else if first != [2]uint64{idx, h} {
				same = false
			}
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			var desc string
			for _, id := range c.Alive() {
				idx, h := c.Node(id).SM.Hash()
				desc += fmt.Sprintf(" node %d: index %d hash %x;", id, idx, h)
			}
			c.t.Fatalf("nodes did not converge within %v:%s", timeout, desc)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkSelfStopped fails the test for a running node that stopped on its own
// for a reason the test did not allow for.
func (c *Cluster) checkSelfStopped() {
	c.t.Helper()
	for _, id := range c.Running() {
		e := c.engine(id)
		if e == nil {
			continue
		}
		select {
		case <-e.Done():
		default:
			continue
		}
		err := e.Err()
		c.mu.Lock()
		allowed := c.excused[id] || c.lossy && errors.Is(err, engine.ErrDiverged)
		c.mu.Unlock()
		if err != nil && !errors.Is(err, engine.ErrRemoved) && !allowed {
			c.t.Fatalf("node %d stopped on its own: %v", id, err)
		}
	}
}

func (c *Cluster) recordApply(node uint64, e engine.Entry) {
	h := fnv.New64a()
	h.Write(e.Data)
	sum := h.Sum64()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed[node] {
		return
	}
	if prev, ok := c.applied[e.Index]; ok && prev.hash != sum {
		c.problems = append(c.problems, problem{
			msg:   fmt.Sprintf("nodes %d and %d applied different entries at index %d", prev.node, node, e.Index),
			nodes: []uint64{prev.node, node},
		})
		return
	}
	c.applied[e.Index] = applied{hash: sum, node: node}
}

// Check fails the test if a safety property was violated so far.
func (c *Cluster) Check() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		if !slices.ContainsFunc(p.nodes, func(id uint64) bool { return c.excused[id] }) {
			c.t.Error(p.msg)
		}
	}
}

// Close stops every node and the network.
func (c *Cluster) Close() {
	for _, id := range c.Running() {
		c.Stop(id)
	}
	c.Net.Close()
}

// reporter checks leadership from every node's events.
type reporter struct{ c *Cluster }

func (r reporter) Report(ev engine.Event) {
	if ev.Type != engine.EventLeaderChanged || ev.Leader == 0 {
		return
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed[ev.Node] {
		return
	}
	if prev, ok := c.leaders[ev.Term]; ok && prev != ev.Leader {
		c.problems = append(c.problems, problem{msg: fmt.Sprintf("two leaders in term %d: %d and %d (seen by node %d)", ev.Term, prev, ev.Leader, ev.Node)})
	}
	c.leaders[ev.Term] = ev.Leader
}
