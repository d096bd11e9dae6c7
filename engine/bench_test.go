package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/internal/benchutil"
	"github.com/cairn-db/cairn/internal/testcluster"
)

// BenchmarkPropose measures proposal throughput and commit latency: the
// time from a Propose call to its return, that is until the entry is
// committed and applied on the proposing node, which is always the leader.
//
// One op is one proposal of a memkv.Set with a distinct key and a 256-byte
// value. With P proposers, b.N is split across P goroutines that each
// propose one entry at a time. Every case reports proposals/s over the
// timed region and the p50 and p99 of the per-proposal latencies; ns/op
// is the inverse of proposals/s, and allocs/op counts every allocation in
// the process (all nodes, transport included) per proposal.
//
// Snapshots are off (benchSnapshotThreshold): every proposal adds a key to
// memkv, whose snapshot clones its whole map on the apply loop, so with the
// default threshold the results would depend on b.N.
//
// Run the matrix with `make bench` (see the Makefile for the op counts).
func BenchmarkPropose(b *testing.B) {
	for _, bc := range benchProposeCases {
		b.Run(bc.name(), func(b *testing.B) { runProposeBench(b, bc) })
	}
}

// benchProposeCase is one point of the matrix.
type benchProposeCase struct {
	nodes     int
	transport string // "memnet" (internal/testcluster) or "grpc" (loopback)
	proposers int
	strategy  engine.Strategy // MemFirst uses engine.DefaultFlushPolicy()
}

func (bc benchProposeCase) name() string {
	return fmt.Sprintf("nodes=%d/transport=%s/proposers=%d/strategy=%s", bc.nodes, bc.transport, bc.proposers, bc.strategy)
}

var benchProposeCases = []benchProposeCase{
	{1, "memnet", 1, engine.DiskFirst},
	{1, "memnet", 1, engine.MemFirst},
	{1, "memnet", 256, engine.DiskFirst},
	{1, "memnet", 256, engine.MemFirst},
	{1, "grpc", 1, engine.DiskFirst},
	{1, "grpc", 1, engine.MemFirst},
	{1, "grpc", 256, engine.DiskFirst},
	{1, "grpc", 256, engine.MemFirst},
	{3, "memnet", 1, engine.DiskFirst},
	{3, "memnet", 1, engine.MemFirst},
	{3, "memnet", 256, engine.DiskFirst},
	{3, "memnet", 256, engine.MemFirst},
	{3, "grpc", 1, engine.DiskFirst},
	{3, "grpc", 1, engine.MemFirst},
	{3, "grpc", 256, engine.DiskFirst},
	{3, "grpc", 256, engine.MemFirst},
}

const (
	benchValueBytes = 256
	// A 10 ms tick and a 30-tick (300 ms) election timeout: no election
	// fires while the machine is saturated.
	benchTickMs      = 10
	benchElectionTck = 30
	benchWarmup      = 32 // proposals before the timer starts (connections, caches)
	// benchSnapshotThreshold is beyond any b.N the benchmark is run with.
	benchSnapshotThreshold = 1 << 40
)

// runProposeBench builds the case's cluster with the timer stopped, runs
// b.N proposals through its leader, and stops the cluster (b.Cleanup).
func runProposeBench(b *testing.B, bc benchProposeCase) {
	b.StopTimer()
	logger := benchutil.Logger(b)
	configure := func(cfg *engine.Config) {
		cfg.Persistence = engine.PersistenceConfig{Strategy: bc.strategy, FlushPolicy: engine.DefaultFlushPolicy()}
		cfg.Snapshot = engine.SnapshotConfig{Threshold: benchSnapshotThreshold}
		cfg.Raft.TickMs, cfg.Raft.ElectionTick, cfg.Raft.HeartbeatTick = benchTickMs, benchElectionTck, 2
		cfg.Logger = logger
	}
	var nodes []*engine.Engine
	switch bc.transport {
	case "memnet":
		c := testcluster.New(b, bc.nodes, testcluster.Options{Configure: configure})
		for _, id := range c.Running() {
			nodes = append(nodes, c.Node(id).Engine)
		}
	case "grpc":
		nodes = startGRPCBenchCluster(b, bc.nodes, configure)
	default:
		b.Fatalf("unknown transport %q", bc.transport)
	}
	leader := benchLeader(b, nodes)
	term := leader.Status().Term

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	value := benchValue()
	for i := range benchWarmup {
		if _, err := leader.Propose(ctx, memkv.Set(fmt.Sprintf("warmup-%d", i), value)); err != nil {
			b.Fatalf("warm-up proposal %d: %v", i, err)
		}
	}

	clients := make([]func(i int) error, bc.proposers)
	for w := range clients {
		prefix := fmt.Sprintf("p%03d-", w)
		clients[w] = func(i int) error {
			_, err := leader.Propose(ctx, memkv.Set(prefix+strconv.Itoa(i), value))
			return err
		}
	}
	benchutil.Run(b, "proposals/s", clients)
	if st := leader.Status(); st.Role != engine.Leader || st.Term != term {
		b.Logf("warning: leadership changed during the run (term %d -> %d, role %v): results include an election", term, st.Term, st.Role)
	}
}

// benchValue is a 256-byte value of random letters: not trivially
// compressible, should a transport compress.
func benchValue() string {
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]byte, benchValueBytes)
	for i := range v {
		v[i] = 'a' + byte(r.IntN(26))
	}
	return string(v)
}

// benchLeader waits until exactly one node leads, in the highest term any
// node knows, and every node is ready and has applied what the leader has.
func benchLeader(tb testing.TB, nodes []*engine.Engine) *engine.Engine {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for ; time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var leader *engine.Engine
		var leaderTerm, maxTerm uint64
		leaders := 0
		for _, e := range nodes {
			st := e.Status()
			maxTerm = max(maxTerm, st.Term)
			if st.Role == engine.Leader {
				leader, leaderTerm = e, st.Term
				leaders++
			}
		}
		if leaders != 1 || leaderTerm != maxTerm {
			continue
		}
		applied := leader.Status().Applied
		caughtUp := true
		for _, e := range nodes {
			select {
			case <-e.Ready():
			default:
				caughtUp = false
			}
			caughtUp = caughtUp && e.Status().Applied >= applied
		}
		if caughtUp {
			return leader
		}
	}
	tb.Fatalf("no stable leader with caught-up followers within 20s")
	return nil
}

// startGRPCBenchCluster runs n nodes over the gRPC transport on loopback
// ports chosen by the kernel, as grpcCluster does in grpc_test.go but for
// any testing.TB: node 1 bootstraps alone, the others join it as voters.
// configure edits each node's config before it starts. The nodes stop when
// tb's cleanup runs.
func startGRPCBenchCluster(tb testing.TB, n int, configure func(*engine.Config)) []*engine.Engine {
	tb.Helper()
	// TempDir registers the directory's removal as a cleanup: it must come
	// before the cleanup that stops the nodes, as cleanups run last-in
	// first-out, or the data directories vanish under running nodes.
	root := tb.TempDir()
	var nodes []*engine.Engine
	tb.Cleanup(func() {
		for _, e := range nodes {
			if err := e.Stop(); err != nil {
				tb.Errorf("stop node %d: %v", e.ID(), err)
			}
		}
	})
	start := func(id uint64, peers []engine.Peer) *engine.Engine {
		cfg := engine.Config{
			NodeID: id, ClusterName: "bench", DataDir: filepath.Join(root, fmt.Sprint(id)), ListenPeer: "127.0.0.1:0",
			InitialCluster: peers, Join: peers != nil, StateMachine: memkv.New(),
		}
		configure(&cfg)
		e, err := engine.Start(cfg)
		if err != nil {
			tb.Fatalf("start node %d: %v", id, err)
		}
		nodes = append(nodes, e)
		return e
	}
	first := start(1, nil)
	select {
	case <-first.Ready():
	case <-time.After(10 * time.Second):
		tb.Fatal("node 1 not ready")
	}
	for id := uint64(2); id <= uint64(n); id++ {
		var peers []engine.Peer
		for pid, addr := range first.Members() {
			peers = append(peers, engine.Peer{ID: pid, Addr: addr})
		}
		e := start(id, peers)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := first.AddVoter(ctx, id, e.PeerAddr())
		cancel()
		if err != nil {
			tb.Fatalf("add voter %d: %v", id, err)
		}
	}
	return nodes
}
