package benchmarks

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/client"
	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/internal/benchutil"
	"github.com/cairn-db/cairn/internal/servercluster"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/server"
	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/transport/memnet"
)

// BenchmarkRead measures reads under each read policy
// ([raft.read_consistency], engine.ReadPolicy) on three nodes: throughput,
// the latency of one read, and the ReadIndex rounds each read cost.
//
// One op is one Get of one of 1,000 preloaded keys (256-byte values) with
// cairn.WithConsistency(policy), on the node the case names:
//
//   - mode=embedded: db.Get on a *cairn.DB in this process. The three
//     nodes talk over transport/memnet (in memory, no delay), so a round
//     trip costs goroutine hand-offs, not a network; data on disk,
//     DiskFirst. Raft timing as BenchmarkKV: a 10 ms tick, heartbeat every
//     2 ticks, election timeout 30 ticks (lease_duration_ms defaults to
//     150). The nodes are started as internal/dbcluster does, here because
//     dbcluster.Options has no read consistency setting.
//   - mode=grpc: client.Client (cairn.KV over clientv3) against
//     internal/servercluster members in this process, peers over gRPC on
//     loopback, with cairn's production raft timing (a 100 ms tick,
//     heartbeat every tick, election timeout 10 ticks; lease_duration_ms
//     defaults to 500). The policy travels in the gRPC metadata key
//     cairn-read-consistency. The readers share min(readers, 8)
//     connections (reader w uses connection w mod 8), each pinned to the
//     node read from. The clients run in the servers' process: on a
//     2-core machine, 1,000 readers' gRPC client work takes CPU from the
//     servers, so readers=1000 is a bound of this machine, not of a server.
//
// policy=linearizable|lease|eventual is engine.LinearizableRead, LeaseRead
// or EventualConsistency; from=leader|follower the node read from (a
// follower's linearizable read asks the leader for its read index, one
// more round trip; a follower has no lease, so its lease reads are
// linearizable ones). readers=1|1000 is the number of goroutines, each
// issuing one read at a time; b.N is split among them.
//
// batch= (linearizable only) is [raft.read_consistency.read_batching]:
// default (size_threshold 100, time_threshold_ms 10); size1 (size 1: a
// read that arrives while a round is in flight starts its own round at
// once, up to 64 in flight: batching effectively off); size1000 (size
// 1000, time 50 ms: reads wait for the rounds in flight to end, or for
// 1,000 of them, or 50 ms).
//
// Every case reports reads/s over the timed region, the p50 and p99 of the
// per-read latencies, and rounds/read: the ReadIndex rounds the node read
// from started during the timed region (engine.ReadStats, all reasons,
// lease renewals included) per read. A follower's rounds are the read
// index requests it sends the leader. allocs/op counts every allocation in
// the process, servers and clients included.
//
// One cluster serves every case of a mode and batching setting, so that
// the cases do not pay an election each (the clusters of a mode stop when
// its cases are done). A case starts once exactly one node leads and every
// node has applied what it has, and warns if leadership changed during it.
//
// Run the matrix with `make bench-read` (see the Makefile for the op
// counts).
func BenchmarkRead(b *testing.B) {
	policies := []engine.ReadPolicy{engine.LinearizableRead, engine.LeaseRead, engine.EventualConsistency}
	for _, mode := range []string{"embedded", "grpc"} {
		b.Run("mode="+mode, func(b *testing.B) {
			clusters := map[string]*readCluster{} // by batching setting, built on first use
			cluster := func(leaf *testing.B, batch readBatching) *readCluster {
				if c, ok := clusters[batch.name]; ok {
					return c
				}
				c := startReadCluster(ownerTB{TB: b, leaf: leaf}, mode, batch)
				clusters[batch.name] = c
				return c
			}
			for _, policy := range policies {
				for _, from := range []string{"leader", "follower"} {
					for _, readers := range []int{1, 1000} {
						rc := readCase{policy: policy, from: from, readers: readers}
						name := fmt.Sprintf("policy=%s/from=%s/readers=%d", policy.ShortName(), from, readers)
						if policy != engine.LinearizableRead {
							b.Run(name, func(b *testing.B) { runReadBench(b, cluster(b, readBatchings[0]), rc) })
							continue
						}
						for _, batch := range readBatchings {
							b.Run(name+"/batch="+batch.name, func(b *testing.B) { runReadBench(b, cluster(b, batch), rc) })
						}
					}
				}
			}
		})
	}
}

// readBatching is one [raft.read_consistency.read_batching] setting.
type readBatching struct {
	name string
	cfg  engine.ReadBatchingConfig
}

// readBatchings are the settings the linearizable cases run with; the
// first, the default, is the one of every other case.
var readBatchings = []readBatching{
	{"default", engine.ReadBatchingConfig{SizeThreshold: 100, TimeThresholdMs: 10}},
	{"size1", engine.ReadBatchingConfig{SizeThreshold: 1, TimeThresholdMs: 10}},
	{"size1000", engine.ReadBatchingConfig{SizeThreshold: 1000, TimeThresholdMs: 50}},
}

type readCase struct {
	policy  engine.ReadPolicy
	from    string // "leader" or "follower"
	readers int
}

const (
	readNodes = 3
	// readConns bounds the connections of a grpc case, as serverConns
	// does BenchmarkServer's.
	readConns = serverConns
)

// readCluster is a mode's three nodes, with getKeys keys preloaded.
type readCluster struct {
	mode string
	dbs  []*cairn.DB
	// conns returns n connections to node i (grpc mode; cached).
	conns func(b *testing.B, i, n int) []cairn.KV
	keys  []string
}

// ownerTB is the mode's benchmark, which owns its clusters (their temp
// dirs, logs and cleanup), seen from the case that builds one: a fatal
// error while building it fails that case, from the case's goroutine.
type ownerTB struct {
	testing.TB
	leaf testing.TB
}

func (o ownerTB) Fatal(args ...any)                 { o.leaf.Helper(); o.leaf.Fatal(args...) }
func (o ownerTB) Fatalf(format string, args ...any) { o.leaf.Helper(); o.leaf.Fatalf(format, args...) }
func (o ownerTB) FailNow()                          { o.leaf.FailNow() }

// startReadCluster starts mode's three nodes with batch, preloads the keys
// and waits until every node has applied them.
func startReadCluster(tb testing.TB, mode string, batch readBatching) *readCluster {
	tb.Helper()
	rc := engine.ReadConsistencyConfig{AllowClientOverride: true, ReadBatching: batch.cfg}
	c := &readCluster{mode: mode}
	switch mode {
	case "embedded":
		c.dbs = startMemnetDBs(tb, rc)
	case "grpc":
		// Error level: members log warnings while their peers start and
		// stop (connection refused).
		logger := slog.New(minLevel{benchutil.Logger(tb).Handler(), slog.LevelError})
		sc := servercluster.New(tb, servercluster.Options{
			Nodes: readNodes, Raft: cairnProductionRaft, Logger: logger,
			Tune: func(_ string, o *server.Options) { o.DB.Engine.ReadConsistency = rc },
		})
		for _, name := range sc.Names() {
			c.dbs = append(c.dbs, sc.Servers[name].DB())
		}
		conns := map[int][]cairn.KV{}
		c.conns = func(b *testing.B, i, n int) []cairn.KV {
			for len(conns[i]) < n {
				cli, err := client.New(client.Config{Endpoints: sc.Endpoints(sc.Names()[i]), DialTimeout: 5 * time.Second})
				if err != nil {
					b.Fatalf("connect to %s: %v", sc.Names()[i], err)
				}
				// Closed before the servers stop (cleanups run last
				// registered first).
				tb.Cleanup(func() { cli.Close() })
				conns[i] = append(conns[i], cli)
			}
			return conns[i][:n]
		}
	default:
		tb.Fatalf("unknown mode %q", mode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	leader := waitLeader(tb, c.dbs)
	c.keys = make([]string, getKeys)
	for i := range c.keys {
		c.keys[i] = fmt.Sprintf("get/%04d", i)
	}
	if err := putAll(ctx, leader, c.keys, benchValue()); err != nil {
		tb.Fatalf("preload: %v", err)
	}
	waitLeader(tb, c.dbs) // and every node applied the preload
	return c
}

// startMemnetDBs starts three DB nodes on an in-memory network, as
// internal/dbcluster does, with read consistency rc and BenchmarkKV's raft
// timing, and registers their stop with tb's cleanup.
func startMemnetDBs(tb testing.TB, rc engine.ReadConsistencyConfig) []*cairn.DB {
	tb.Helper()
	logger := benchutil.Logger(tb) // its cleanup runs after the nodes stop
	root := tb.TempDir()           // removed after the nodes stop
	net := memnet.New(1)
	dbs := make([]*cairn.DB, 0, readNodes)
	tb.Cleanup(func() {
		for i, db := range dbs {
			if err := db.Close(); err != nil {
				tb.Errorf("close node %d: %v", i+1, err)
			}
		}
		net.Close()
	})
	var peers []engine.Peer
	for id := uint64(1); id <= readNodes; id++ {
		peers = append(peers, engine.Peer{ID: id, Addr: memnet.Addr(id)})
	}
	for id := uint64(1); id <= readNodes; id++ {
		cfg := engine.Config{
			NodeID: id, DataDir: filepath.Join(root, fmt.Sprint(id)), InitialCluster: peers,
			Raft:            engine.RaftConfig{TickMs: tickMs, ElectionTick: electionTick, HeartbeatTick: heartbeatTick},
			ReadConsistency: rc,
			Logger:          logger,
			NewTransport: func(s transport.SnapshotStore) (transport.Transport, error) {
				return net.Transport(id, s), nil
			},
		}
		var kvOpts kv.Options
		kvOpts.Watch.Logger = logger
		db, err := cairn.Start(cairn.Config{Engine: cfg, KV: kvOpts})
		if err != nil {
			tb.Fatalf("start node %d: %v", id, err)
		}
		dbs = append(dbs, db)
	}
	return dbs
}

// runReadBench picks the case's node once a leader is stable, warms its
// readers up, runs b.N reads with the timer on, and reports the rounds
// the node started per read.
func runReadBench(b *testing.B, c *readCluster, rc readCase) {
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	leader := waitLeader(b, c.dbs)
	term := leader.Engine().Status().Term
	node := -1
	for i, db := range c.dbs {
		if (db == leader) == (rc.from == "leader") {
			node = i
			break
		}
	}
	target := c.dbs[node]

	var conns []cairn.KV
	if c.conns != nil {
		conns = c.conns(b, node, min(rc.readers, readConns))
	} else {
		conns = []cairn.KV{target}
	}
	opt := cairn.WithConsistency(rc.policy)
	readers := make([]func(i int) error, rc.readers)
	for w := range readers {
		conn := conns[w%len(conns)]
		offset := w * 7919 // readers start on different keys
		readers[w] = func(i int) error {
			key := c.keys[(offset+i+getKeys*kvWarmup)%getKeys]
			resp, err := conn.Get(ctx, key, opt)
			if err != nil {
				return err
			}
			if len(resp.Kvs) != 1 || len(resp.Kvs[0].Value) != valueBytes {
				return fmt.Errorf("get %s: %d keys", key, len(resp.Kvs))
			}
			return nil
		}
	}
	// Connect every connection, and let a lease be taken, before the
	// timer starts.
	for i := range max(kvWarmup, len(conns)) {
		if err := readers[i%len(readers)](-1 - i); err != nil {
			b.Fatalf("warm-up read %d: %v", i, err)
		}
	}

	before := target.Engine().ReadStats()
	benchutil.Run(b, "reads/s", readers)
	after := target.Engine().ReadStats()
	b.ReportMetric(float64(readRounds(after)-readRounds(before))/float64(b.N), "rounds/read")

	if st := leader.Engine().Status(); st.Role != engine.Leader || st.Term != term {
		b.Logf("warning: leadership changed during the run (term %d -> %d, role %v): results include an election", term, st.Term, st.Role)
	}
}

// readRounds is the number of ReadIndex rounds s counts, for any reason.
func readRounds(s engine.ReadStats) uint64 {
	return s.RoundsIdle + s.RoundsSize + s.RoundsTime + s.RoundsRenew + s.RoundsRetry
}
