package benchmarks

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/internal/benchutil"
	"github.com/cairn-db/cairn/kv"
)

// BenchmarkKV measures the embedded DB's requests: throughput and the
// latency of one call, from the call to its return.
//
// One op is one call on the leader's *cairn.DB (on three nodes too: the
// clients run in the leader's process, so this is the cost of the request
// path, not of forwarding from a follower), with a 256-byte value:
//
//   - put: Put of a new key (each client writes its own keys).
//   - get: Get of one of 1,000 preloaded keys, linearizable (the default:
//     a read index round confirmed by a quorum, then a local read).
//   - get-serializable: the same with WithSerializable (a local read).
//   - txn-cas: a compare-and-swap: Txn(if mod_revision(key) == last then
//     put key else get key), each client on its own key, so that every
//     swap succeeds (a failed one fails the benchmark).
//
// With C clients, b.N is split across C goroutines that each issue one call
// at a time. Every case reports ops/s over the timed region and the p50 and
// p99 of the per-call latencies; ns/op is the inverse of ops/s, and
// allocs/op counts every allocation in the process (all nodes included) per
// op. The nodes' data is on disk, DiskFirst (the default): a write returns
// once a quorum has fsynced it and the leader has applied it. Every other
// setting but the raft tick is the default too, snapshots included: each
// node writes its whole store to a snapshot file every 10,000 entries, in the
// background, at a cost that grows with the store, so the write cases' ops/s
// depends somewhat on b.N.
//
// Run the matrix with `make bench-kv` (see the Makefile for the op counts).
func BenchmarkKV(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		for _, op := range []string{"put", "get", "get-serializable", "txn-cas"} {
			for _, clients := range []int{1, 64} {
				bc := kvCase{nodes: nodes, op: op, clients: clients}
				b.Run(bc.name(), func(b *testing.B) { runKVBench(b, bc) })
			}
		}
	}
}

type kvCase struct {
	nodes   int
	op      string
	clients int
}

func (bc kvCase) name() string {
	return fmt.Sprintf("nodes=%d/op=%s/clients=%d", bc.nodes, bc.op, bc.clients)
}

const (
	getKeys   = 1000 // keys preloaded for the get cases
	kvWarmup  = 32   // calls per case before the timer starts
	casPrefix = "cas/"
)

// runKVBench builds the case's cluster and clients with the timer stopped,
// runs b.N calls, and stops the cluster (b.Cleanup).
func runKVBench(b *testing.B, bc kvCase) {
	b.StopTimer()
	c := startCluster(b, bc.nodes, kv.Options{})
	db := c.leader
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()

	newClient, err := kvClients(ctx, db, bc.op)
	if err != nil {
		b.Fatal(err)
	}
	clients := make([]func(i int) error, bc.clients)
	for w := range clients {
		if clients[w], err = newClient(w); err != nil {
			b.Fatalf("client %d: %v", w, err)
		}
	}
	for i := range kvWarmup {
		if err := clients[i%len(clients)](-1 - i); err != nil {
			b.Fatalf("warm-up call %d: %v", i, err)
		}
	}

	benchutil.Run(b, "ops/s", clients)
	c.checkLeader(b)
}

// kvClients prepares db for op and returns the constructor of client w's
// call: call(i) issues the client's i-th call (negative i: warm-up).
func kvClients(ctx context.Context, db *cairn.DB, op string) (func(w int) (func(i int) error, error), error) {
	value := benchValue()
	switch op {
	case "put":
		return func(w int) (func(int) error, error) {
			prefix := fmt.Sprintf("put/%03d/", w)
			return func(i int) error {
				_, err := db.Put(ctx, prefix+strconv.Itoa(i), value)
				return err
			}, nil
		}, nil

	case "get", "get-serializable":
		keys := make([]string, getKeys)
		for i := range keys {
			keys[i] = fmt.Sprintf("get/%04d", i)
		}
		if err := putAll(ctx, db, keys, value); err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
		var opts []cairn.OpOption
		if op == "get-serializable" {
			opts = append(opts, cairn.WithSerializable())
		}
		return func(w int) (func(int) error, error) {
			offset := w * 7919 // clients start on different keys
			return func(i int) error {
				key := keys[(offset+i+getKeys*kvWarmup)%getKeys]
				resp, err := db.Get(ctx, key, opts...)
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
		return func(w int) (func(int) error, error) {
			key := []byte(fmt.Sprintf("%s%03d", casPrefix, w))
			put, err := db.Put(ctx, string(key), value)
			if err != nil {
				return nil, err
			}
			rev := put.Header.Revision // key's mod revision
			return func(int) error {
				resp, err := db.Txn(ctx, &pb.TxnRequest{
					Compare: []*pb.Compare{{
						Key: key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
						TargetUnion: &pb.Compare_ModRevision{ModRevision: rev},
					}},
					Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: []byte(value)}}}},
					Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key}}}},
				})
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
