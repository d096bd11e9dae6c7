package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/internal/benchutil"
	"github.com/cairn-db/cairn/internal/servercluster"
)

// BenchmarkServer compares cairn's server (package server, the etcd v3 API)
// with a real etcd on the same machine, through the same client: clientv3
// over gRPC on loopback. Each case runs against cairn, then cairn as
// separate processes, then etcd, one right after the other, so that all
// see the same state of a noisy machine.
//
//   - impl=cairn: servercluster members in this process (the benchmark's
//     own clients share its Go runtime), peers over gRPC on loopback, with
//     cairn's production defaults: raft tick 100 ms, heartbeat every tick,
//     election timeout 10 ticks (passed explicitly; servercluster's own
//     default is a fast 10 ms test tick), DiskFirst persistence (an entry
//     is fsynced before it counts), a snapshot every 10,000 entries.
//   - impl=cairn-proc: the same, but each member is a `cairn serve`
//     process (cmd/cairn, built once per run into the temp dir, so the go
//     command must be on PATH), as etcd's are: no shared runtime or GC with
//     the clients, and a request crosses processes as it does to etcd. The
//     difference between impl=cairn and impl=cairn-proc is what running in
//     the client's process is worth; compare impl=cairn-proc with impl=etcd.
//   - impl=etcd: the etcd binary on PATH (Debian's etcd-server: 3.4), one
//     process per member with its data in the temp dir, with etcd's
//     defaults: heartbeat 100 ms, election timeout 1,000 ms (passed
//     explicitly), WAL fsync per raft Ready, a snapshot every 100,000
//     entries. Skipped, with how to install it, if etcd is not on PATH.
//
// Every cluster is fresh for each case (and, as for every Go benchmark,
// once more for the b.N=1 probe run). One op is one clientv3 call to the
// leader (on three nodes too: this measures the request path plus
// replication, not a follower's forwarding), with a 256-byte value:
//
//   - put: Put of a new key (each client writes its own keys).
//   - get: Get of one of 1,000 preloaded keys, linearizable (the default
//     of both: a ReadIndex round confirmed by a quorum, then a local read).
//   - get-serializable: the same with clientv3.WithSerializable().
//   - txn-cas: Txn(If(mod_revision(key) == last).Then(put key).Else(get
//     key)), each client on its own key, so every swap succeeds (a failed
//     one fails the benchmark).
//
// With C clients, b.N is split across C goroutines that each issue one call
// at a time; the goroutines share min(C, 8) clientv3.Clients (gRPC
// connections), goroutine w using connection w mod 8, as etcd's benchmark
// tool shares --conns among --clients. Every case reports ops/s over the
// timed region and the p50 and p99 of the per-call latencies (client side,
// from the call to its return). allocs/op counts this process's
// allocations, so it includes cairn's servers but not etcd's: do not
// compare it across impls.
//
// Run the matrix with `make bench-server` (see the Makefile for the op
// counts).
func BenchmarkServer(b *testing.B) {
	bin := &cairnBinary{dir: b.TempDir()}
	for _, nodes := range []int{1, 3} {
		for _, op := range []string{"put", "get", "get-serializable", "txn-cas"} {
			for _, clients := range []int{1, 64} {
				for _, impl := range []string{"cairn", "cairn-proc", "etcd"} {
					sc := serverCase{impl: impl, nodes: nodes, op: op, clients: clients}
					b.Run(sc.name(), func(b *testing.B) { runServerBench(b, sc, bin) })
				}
			}
		}
	}
}

type serverCase struct {
	impl    string
	nodes   int
	op      string
	clients int
}

func (sc serverCase) name() string {
	return fmt.Sprintf("impl=%s/nodes=%d/op=%s/clients=%d", sc.impl, sc.nodes, sc.op, sc.clients)
}

const (
	// serverConns bounds the clientv3.Clients (connections) of a case.
	serverConns = 8
	// serverStartTimeout bounds the wait for a cluster's leader.
	serverStartTimeout = 30 * time.Second
)

// cairnProductionRaft is cairn's raft timing by default (engine.Config's
// defaults), spelled out so that servercluster does not take its test one.
var cairnProductionRaft = engine.RaftConfig{TickMs: 100, ElectionTick: 10, HeartbeatTick: 1}

// runServerBench starts the case's cluster and clients with the timer
// stopped, runs b.N calls, and stops everything at b's cleanup.
func runServerBench(b *testing.B, sc serverCase, bin *cairnBinary) {
	b.StopTimer()
	var endpoints []string
	switch sc.impl {
	case "cairn":
		// Error level: members log warnings while their peers start and
		// stop (connection refused), which would bury the result lines.
		logger := slog.New(minLevel{benchutil.Logger(b).Handler(), slog.LevelError})
		c := servercluster.New(b, servercluster.Options{Nodes: sc.nodes, Raft: cairnProductionRaft, Logger: logger})
		endpoints = c.Endpoints()
	case "cairn-proc":
		endpoints = startCairnProcs(b, sc.nodes, bin.path(b))
	case "etcd":
		endpoints = startEtcd(b, sc.nodes)
	default:
		b.Fatalf("unknown impl %q", sc.impl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	leader := waitServerLeader(ctx, b, endpoints)

	conns := make([]*clientv3.Client, min(sc.clients, serverConns))
	for i := range conns {
		conns[i] = newServerClient(b, leader.endpoint)
		// Connect now, not in the timed region.
		if _, err := conns[i].Get(ctx, "warm-up"); err != nil {
			b.Fatalf("connection %d to %s: %v", i, leader.endpoint, err)
		}
	}
	newCall, err := serverCalls(ctx, conns[0], sc.op)
	if err != nil {
		b.Fatal(err)
	}
	calls := make([]func(i int) error, sc.clients)
	for w := range calls {
		if calls[w], err = newCall(w, conns[w%len(conns)]); err != nil {
			b.Fatalf("client %d: %v", w, err)
		}
	}
	for i := range kvWarmup {
		if err := calls[i%len(calls)](-1 - i); err != nil {
			b.Fatalf("warm-up call %d: %v", i, err)
		}
	}

	benchutil.Run(b, "ops/s", calls)
	leader.check(ctx, b, conns[0])
}

// newServerClient returns a client of endpoint, closed at b's cleanup
// (before the servers stop: cleanups run last registered first).
func newServerClient(b *testing.B, endpoints ...string) *clientv3.Client {
	b.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// serverLeader is the member that leads once the cluster is ready.
type serverLeader struct {
	endpoint string
	id       uint64
	term     uint64
}

// waitServerLeader waits until every member reports the same leader in the
// same term, every member has applied what the leader had committed, and a
// linearizable read through the leader succeeds. It asks with the
// Maintenance Status call, the same for cairn and etcd.
func waitServerLeader(ctx context.Context, b *testing.B, endpoints []string) serverLeader {
	b.Helper()
	cli := newServerClient(b, endpoints...)
	deadline := time.Now().Add(serverStartTimeout)
	var last error
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		l, err := probeLeader(ctx, cli, endpoints)
		if err == nil {
			return l
		}
		last = err
	}
	b.Fatalf("no stable leader within %v: %v", serverStartTimeout, last)
	return serverLeader{}
}

func probeLeader(ctx context.Context, cli *clientv3.Client, endpoints []string) (serverLeader, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var l serverLeader
	var applied []uint64
	var commit uint64
	for _, ep := range endpoints {
		st, err := cli.Status(ctx, ep)
		if err != nil {
			return l, fmt.Errorf("status of %s: %w", ep, err)
		}
		switch {
		case st.Leader == 0:
			return l, fmt.Errorf("%s knows no leader", ep)
		case l.id != 0 && (st.Leader != l.id || st.RaftTerm != l.term):
			return l, fmt.Errorf("members disagree on the leader: %x in term %d, %x in term %d", l.id, l.term, st.Leader, st.RaftTerm)
		}
		l.id, l.term = st.Leader, st.RaftTerm
		if st.Header.MemberId == st.Leader {
			l.endpoint, commit = ep, st.RaftIndex
		}
		applied = append(applied, st.RaftAppliedIndex)
	}
	if l.endpoint == "" {
		return l, fmt.Errorf("leader %x is none of %v", l.id, endpoints)
	}
	for i, a := range applied {
		if a < commit {
			return l, fmt.Errorf("%s applied %d < leader's commit %d", endpoints[i], a, commit)
		}
	}
	if _, err := cli.Get(ctx, "warm-up"); err != nil {
		return l, fmt.Errorf("linearizable get: %w", err)
	}
	return l, nil
}

// check warns when leadership changed during the run.
func (l serverLeader) check(ctx context.Context, b *testing.B, cli *clientv3.Client) {
	st, err := cli.Status(ctx, l.endpoint)
	switch {
	case err != nil:
		b.Logf("warning: status of the leader after the run: %v", err)
	case st.Leader != l.id || st.RaftTerm != l.term:
		b.Logf("warning: leadership changed during the run (leader %x term %d -> leader %x term %d): results include an election", l.id, l.term, st.Leader, st.RaftTerm)
	}
}

// serverCalls prepares the cluster (through cli) for op and returns the
// constructor of client w's call over its connection conn: call(i) issues
// the client's i-th call (negative i: warm-up).
func serverCalls(ctx context.Context, cli *clientv3.Client, op string) (func(w int, conn *clientv3.Client) (func(i int) error, error), error) {
	value := benchValue()
	switch op {
	case "put":
		return func(w int, conn *clientv3.Client) (func(int) error, error) {
			prefix := fmt.Sprintf("put/%03d/", w)
			return func(i int) error {
				_, err := conn.Put(ctx, prefix+strconv.Itoa(i), value)
				return err
			}, nil
		}, nil

	case "get", "get-serializable":
		keys := make([]string, getKeys)
		for i := range keys {
			keys[i] = fmt.Sprintf("get/%04d", i)
		}
		if err := putAllClient(ctx, cli, keys, value); err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
		var opts []clientv3.OpOption
		if op == "get-serializable" {
			opts = append(opts, clientv3.WithSerializable())
		}
		return func(w int, conn *clientv3.Client) (func(int) error, error) {
			offset := w * 7919 // clients start on different keys
			return func(i int) error {
				key := keys[(offset+i+getKeys*kvWarmup)%getKeys]
				resp, err := conn.Get(ctx, key, opts...)
				if err != nil {
					return err
				}
				if len(resp.Kvs) != 1 || len(resp.Kvs[0].Value) != valueBytes {
					return fmt.Errorf("get %s: %d keys", key, len(resp.Kvs))
				}
				return nil
			}, nil
		}, nil

	case "txn-cas":
		return func(w int, conn *clientv3.Client) (func(int) error, error) {
			key := fmt.Sprintf("%s%03d", casPrefix, w)
			put, err := conn.Put(ctx, key, value)
			if err != nil {
				return nil, err
			}
			rev := put.Header.Revision // key's mod revision
			return func(int) error {
				resp, err := conn.Txn(ctx).
					If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
					Then(clientv3.OpPut(key, value)).
					Else(clientv3.OpGet(key)).
					Commit()
				if err != nil {
					return err
				}
				if !resp.Succeeded {
					return fmt.Errorf("compare-and-swap of %s at mod revision %d failed, though no other client writes it", key, rev)
				}
				rev = resp.Header.Revision
				return nil
			}, nil
		}, nil
	}
	return nil, fmt.Errorf("unknown op %q", op)
}

// putAllClient writes value to every key through cli, from up to 64
// goroutines at once (so that the writes share fsyncs), and returns the
// first error.
func putAllClient(ctx context.Context, cli *clientv3.Client, keys []string, value string) error {
	const writers = 64
	var next atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range min(writers, len(keys)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(keys)); i = next.Add(1) - 1 {
				if _, err := cli.Put(ctx, keys[i], value); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("put %s: %w", keys[i], err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// minLevel is h without the records below level.
type minLevel struct {
	h     slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }

func (m minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{m.h.WithAttrs(attrs), m.level}
}

func (m minLevel) WithGroup(name string) slog.Handler { return minLevel{m.h.WithGroup(name), m.level} }

// cairnBinary is cmd/cairn built into dir, once.
type cairnBinary struct {
	dir  string
	once sync.Once
	bin  string
	err  error
}

// path builds the binary the first time, and skips b if it cannot.
func (c *cairnBinary) path(b *testing.B) string {
	b.Helper()
	c.once.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			c.err = fmt.Errorf("the go command is not on PATH (%w): cannot build cmd/cairn", err)
			return
		}
		bin := filepath.Join(c.dir, "cairn")
		if out, err := exec.Command(gobin, "build", "-o", bin, "github.com/cairn-db/cairn/cmd/cairn").CombinedOutput(); err != nil {
			c.err = fmt.Errorf("go build ./cmd/cairn: %v\n%s", err, out)
			return
		}
		c.bin = bin
	})
	if c.err != nil {
		b.Skip(c.err)
	}
	return c.bin
}

// startCairnProcs starts a cairn cluster of n members, each a `cairn serve`
// process with the production raft timing (cairnProductionRaft, passed in
// the environment) and every other setting at its default, and returns
// their client endpoints in member order. The processes are killed at b's
// cleanup (startProcess).
func startCairnProcs(b *testing.B, n int, bin string) []string {
	b.Helper()
	root := b.TempDir()
	names := make([]string, n)
	clients := make([]string, n)
	initial := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("n%d", i+1)
		clients[i] = servercluster.FreeAddr(b)
		initial[i] = names[i] + "=" + servercluster.FreeAddr(b)
	}
	env := []string{
		"CAIRN_RAFT_TICK_MS=" + strconv.Itoa(cairnProductionRaft.TickMs),
		"CAIRN_RAFT_ELECTION_TICK=" + strconv.Itoa(cairnProductionRaft.ElectionTick),
		"CAIRN_RAFT_HEARTBEAT_TICK=" + strconv.Itoa(cairnProductionRaft.HeartbeatTick),
	}
	for i := range n {
		startProcess(b, "cairn "+names[i], filepath.Join(root, names[i]+".log"), env, bin, "serve",
			"--name", names[i],
			"--data-dir", filepath.Join(root, names[i]),
			"--listen-client", clients[i],
			"--listen-peer", strings.TrimPrefix(initial[i], names[i]+"="),
			"--initial-cluster", strings.Join(initial, ","),
			"--log-level", "error",
		)
	}
	return clients
}
