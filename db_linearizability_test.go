package cairn_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/internal/dbcluster"
	"github.com/cairn-db/cairn/transport/memnet"
)

// TestLinearizability records histories of concurrent puts, gets and
// compare-and-swaps from 8 clients, through random nodes of a 3-node
// cluster, while a nemesis moves leadership, isolates the leader,
// partitions the network and "pauses" nodes (delays every message to and
// from one node, then delivers them late). For LinearizableRead and
// LeaseRead the history must be linearizable (porcupine); for
// EventualConsistency it must keep that policy's promises (checkEventual),
// and whether it happened to be linearizable is only logged.
//
// Each policy runs 6 s of workload; CAIRN_LIN_LONG=1 runs 2 minutes.
func TestLinearizability(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	run := 6 * time.Second
	if os.Getenv("CAIRN_LIN_LONG") != "" {
		run, checkTimeout = 2*time.Minute, 10*time.Minute
	}
	for _, p := range []engine.ReadPolicy{engine.LinearizableRead, engine.LeaseRead, engine.EventualConsistency} {
		t.Run(string(p), func(t *testing.T) {
			h := recordHistory(t, p, run)
			checkHistory(t, p, h)
		})
	}
}

// checkTimeout bounds porcupine's search; Unknown (not decided in time)
// fails a test that requires linearizability.
var checkTimeout = time.Minute

// history is what the clients saw, and what the nemesis did.
type history struct {
	ops     []porcupine.Operation
	nemesis []porcupine.Annotation
	start   time.Time
}

func recordHistory(t *testing.T, p engine.ReadPolicy, run time.Duration) history {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	seed := uint64(time.Now().UnixNano())
	t.Logf("memnet seed %d", seed)
	c := dbcluster.New(t, dbcluster.Options{Logger: quiet, Seed: seed})
	ids := slices.Sorted(maps.Keys(c.DBs))
	rec := &recorder{start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	var wg sync.WaitGroup
	const clients = 8
	for i := range clients {
		wg.Go(func() { rec.client(ctx, c, ids, p, i, clients) })
	}
	wg.Go(func() { rec.nemesis(ctx, t, c, ids) })
	wg.Wait()
	for _, id := range ids {
		if err := c.DBs[id].Engine().Err(); err != nil {
			t.Fatalf("node %d stopped on its own during the run: %v", id, err)
		}
	}
	c.Net.Heal()
	for _, a := range ids {
		for _, b := range ids {
			c.Net.SetLinkFaults(a, b, memnet.Faults{})
		}
	}
	return history{ops: rec.ops, nemesis: rec.faults, start: rec.start}
}

// recorder collects the operations of every client.
type recorder struct {
	start  time.Time
	mu     sync.Mutex
	ops    []porcupine.Operation
	faults []porcupine.Annotation
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// client runs random operations on a few keys, through random nodes, until
// ctx ends. A client that lost track of a write (unknown outcome) goes on
// under a new id, as porcupine draws one line per client.
func (r *recorder) client(ctx context.Context, c *dbcluster.Cluster, ids []uint64, p engine.ReadPolicy, id, clients int) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	keys := []string{"lin/a", "lin/b", "lin/c", "lin/d"}
	last := map[string]string{} // the value this client last saw per key
	for seq := 0; ctx.Err() == nil; seq++ {
		node := ids[rng.IntN(len(ids))]
		db := c.DBs[node]
		key := keys[rng.IntN(len(keys))]
		opCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		in := linInput{Key: key}
		out := linOutput{Node: node}
		call := r.now()
		var err error
		switch x := rng.IntN(100); {
		case x < 45:
			in.Kind = opGet
			var resp *pb.RangeResponse
			resp, err = db.Get(opCtx, key, cairn.WithConsistency(p))
			if err == nil {
				out.Rev = resp.GetHeader().GetRevision()
				if kvs := resp.GetKvs(); len(kvs) > 0 {
					out.Value, out.ModRev = string(kvs[0].GetValue()), kvs[0].GetModRevision()
				}
				last[key] = out.Value
			}
		case x < 80:
			in.Kind, in.Value = opPut, fmt.Sprintf("c%d-%d", id, seq)
			_, err = db.Put(opCtx, key, in.Value)
			if err == nil {
				last[key] = in.Value
			}
		default:
			in.Kind, in.Value, in.Expect = opCAS, fmt.Sprintf("c%d-%d", id, seq), last[key]
			var resp *pb.TxnResponse
			resp, err = db.Txn(opCtx, casRequest(key, in.Expect, in.Value))
			if err == nil {
				out.OK = resp.GetSucceeded()
				if out.OK {
					last[key] = in.Value
				}
			}
		}
		ret := r.now()
		cancel()
		switch {
		case err == nil:
		case in.Kind == opGet:
			continue // a failed read has no effect
		case errors.Is(err, engine.ErrProposalDropped):
			continue // raft refused it: not committed (the engine's contract)
		default:
			// Timed out, stopped: it may take effect at any time from now on.
			out.Unknown, ret = true, unknownReturn
		}
		r.add(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
		if out.Unknown {
			id += clients
		}
	}
}

// casRequest swaps key's value from expect ("" for absent) to value.
func casRequest(key, expect, value string) *pb.TxnRequest {
	cmp := &pb.Compare{Key: []byte(key), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
		TargetUnion: &pb.Compare_Value{Value: []byte(expect)}}
	if expect == "" {
		cmp = &pb.Compare{Key: []byte(key), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_Version{Version: 0}}
	}
	return &pb.TxnRequest{
		Compare: []*pb.Compare{cmp},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: cairn.PutRequest(key, value)}}},
	}
}

// nemesis injects one fault at a time until ctx ends, with calm between
// faults so that the cluster makes progress.
func (r *recorder) nemesis(ctx context.Context, t *testing.T, c *dbcluster.Cluster, ids []uint64) {
	rng := rand.New(rand.NewPCG(99, uint64(time.Now().UnixNano())))
	sleep := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-ctx.Done():
			return false
		}
	}
	leader := func() uint64 {
		for _, id := range ids {
			if c.DBs[id].Engine().Status().Role == engine.Leader {
				return id
			}
		}
		return ids[rng.IntN(len(ids))]
	}
	span := func() time.Duration { return time.Duration(200+rng.IntN(600)) * time.Millisecond }
	for sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond) {
		start := r.now()
		var what string
		switch rng.IntN(5) {
		case 0: // move leadership
			l := leader()
			to := ids[rng.IntN(len(ids))]
			if to == l {
				to = ids[(slices.Index(ids, l)+1)%len(ids)]
			}
			tctx, cancel := context.WithTimeout(ctx, time.Second)
			err := c.DBs[l].Engine().TransferLeadership(tctx, to)
			cancel()
			what = fmt.Sprintf("transfer leadership %d -> %d (%v)", l, to, err)
		case 1: // isolate the leader
			l := leader()
			c.Net.Isolate(l)
			what = fmt.Sprintf("isolate leader %d", l)
			sleep(span())
			c.Net.Heal()
		case 2: // cut one node off from the others
			n := ids[rng.IntN(len(ids))]
			c.Net.Partition([]uint64{n})
			what = fmt.Sprintf("partition {%d} from the rest", n)
			sleep(span())
			c.Net.Heal()
		case 3: // no quorum anywhere
			c.Net.Partition([]uint64{ids[0]}, []uint64{ids[1]}, []uint64{ids[2]})
			what = "partition every node from the others"
			sleep(span() / 2)
			c.Net.Heal()
		case 4: // pause a node (often the leader): its messages arrive late
			n := leader()
			if rng.IntN(3) == 0 {
				n = ids[rng.IntN(len(ids))]
			}
			d := span()
			for _, o := range ids {
				if o != n {
					c.Net.SetLinkFaults(n, o, memnet.Faults{MinDelay: d, MaxDelay: d})
					c.Net.SetLinkFaults(o, n, memnet.Faults{MinDelay: d, MaxDelay: d})
				}
			}
			what = fmt.Sprintf("pause node %d for %v", n, d)
			sleep(d)
			for _, o := range ids {
				c.Net.SetLinkFaults(n, o, memnet.Faults{})
				c.Net.SetLinkFaults(o, n, memnet.Faults{})
			}
		}
		r.mu.Lock()
		r.faults = append(r.faults, porcupine.Annotation{Tag: "nemesis", Start: start, End: r.now(), Description: what})
		r.mu.Unlock()
	}
}

// checkHistory checks h against p's guarantee.
func checkHistory(t *testing.T, p engine.ReadPolicy, h history) {
	var gets, puts, cases, unknown, okGets int
	byNode := map[uint64]int{}
	for _, op := range h.ops {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		switch in.Kind {
		case opGet:
			gets++
			byNode[out.Node]++
			if out.Value != "" {
				okGets++
			}
		case opPut:
			puts++
		case opCAS:
			cases++
		}
		if out.Unknown {
			unknown++
		}
	}
	t.Logf("%s: %d operations: %d gets (%d saw a value; by node %v), %d puts, %d compare-and-swaps, %d writes of unknown outcome; %d nemesis actions",
		p, len(h.ops), gets, okGets, byNode, puts, cases, unknown, len(h.nemesis))
	if gets < 100 || puts+cases < 100 {
		t.Fatalf("too few operations to check anything")
	}

	if problems := checkEventual(h.ops); len(problems) > 0 {
		for _, pr := range problems[:min(len(problems), 20)] {
			t.Error(pr)
		}
		t.Errorf("%d violations of EventualConsistency's guarantees", len(problems))
	}

	began := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvModel, h.ops, checkTimeout)
	t.Logf("porcupine: %s in %v", res, time.Since(began).Round(time.Millisecond))
	if res == porcupine.Ok && p != engine.EventualConsistency {
		return
	}
	if p == engine.EventualConsistency {
		t.Logf("EventualConsistency history linearizable: %s (not required)", res)
		return
	}
	info.AddAnnotations(h.nemesis)
	dir, err := os.MkdirTemp("", "cairn-linearizability-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.ToLower(string(p))+".html")
	if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
		t.Fatal(err)
	}
	for _, a := range h.nemesis {
		t.Logf("nemesis at %v: %s", time.Duration(a.Start).Round(time.Millisecond), a.Description)
	}
	t.Errorf("%s history is %s; visualisation: %s", p, res, path)
}

func TestReadPolicyOptions(t *testing.T) {
	ctx := ctxT(t)
	cfg := engine.DefaultConfig()
	cfg.DataDir, cfg.ListenPeer = t.TempDir(), "127.0.0.1:0"
	cfg.ReadConsistency.DefaultPolicy = engine.LeaseRead
	cfg.ReadConsistency.AllowClientOverride = false
	db, err := cairn.Start(cairn.Config{Engine: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	<-db.Ready()
	if _, err := db.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	get := func(opts ...cairn.OpOption) error {
		resp, err := db.Get(ctx, "k", opts...)
		if err == nil && (len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v") {
			return fmt.Errorf("read %v", resp.Kvs)
		}
		return err
	}
	// The default, asked for or not, and etcd's serializable flag always.
	for _, opts := range [][]cairn.OpOption{nil, {cairn.WithConsistency(engine.LeaseRead)}, {cairn.WithSerializable()},
		{cairn.WithSerializable(), cairn.WithConsistency(engine.LinearizableRead)}} {
		if err := get(opts...); err != nil {
			t.Fatalf("Get with %d options: %v", len(opts), err)
		}
	}
	for _, p := range []engine.ReadPolicy{engine.LinearizableRead, engine.EventualConsistency} {
		err := get(cairn.WithConsistency(p))
		if !errors.Is(err, engine.ErrOverrideNotAllowed) || !strings.Contains(err.Error(), "raft.read_consistency.allow_client_override") {
			t.Fatalf("Get(%s) with overrides off: %v", p, err)
		}
	}
	if _, err := db.RangeWithPolicy(ctx, cairn.RangeRequest("k"), "strong"); !errors.Is(err, engine.ErrUnknownReadPolicy) {
		t.Fatalf("RangeWithPolicy(strong): %v", err)
	}
	s := db.Engine().ReadStats()
	if s.Lease != 2 || s.Eventual != 2 || s.Linearizable != 0 {
		t.Fatalf("reads by policy: %+v", s)
	}

	if p := cairn.ReadPolicyOf(cairn.WithPrefix(), cairn.WithConsistency(engine.LeaseRead)); p != engine.LeaseRead {
		t.Errorf("ReadPolicyOf(lease) = %q", p)
	}
	if p := cairn.ReadPolicyOf(cairn.WithSerializable()); p != engine.EventualConsistency {
		t.Errorf("ReadPolicyOf(serializable) = %q", p)
	}
	if p := cairn.ReadPolicyOf(); p != "" {
		t.Errorf("ReadPolicyOf() = %q", p)
	}
}
