package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestModel runs random histories of requests against the store and the
// reference model and compares every answer, as Pebble's metamorphic tests
// do. Requests are grouped into batches of random sizes; some batches are
// abandoned instead of committed; between batches the test compares the
// committed store's reads, history and lease index with the model, and now
// and then restarts Pebble or moves the store through Snapshot and Restore
// into a fresh Pebble.
//
// CAIRN_MVCC_LONG=1 runs many more seeds and steps; CAIRN_MVCC_SEED=n runs
// one seed (to reproduce a failure).
func TestModel(t *testing.T) {
	seeds, steps := 4, 1500
	if testing.Short() {
		seeds, steps = 2, 500
	}
	if os.Getenv("CAIRN_MVCC_LONG") != "" {
		seeds, steps = 40, 10000
	}
	first := uint64(time.Now().UnixNano())
	if s := os.Getenv("CAIRN_MVCC_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CAIRN_MVCC_SEED: %v", err)
		}
		first, seeds = n, 1
	}
	for i := range seeds {
		seed := first + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runModel(t, seed, steps)
		})
	}
}

// modelOpts are small limits, so that random requests hit them.
var modelOpts = Options{MaxTxnOps: 8, MaxKeyBytes: 8, MaxValueBytes: 12}

// Keys with 0x00 and 0xff bytes exercise the per-key history escaping; one
// key is over MaxKeyBytes.
var modelKeys = []string{
	"\x00", "a", "a\x00", "a\x00\x00", "a\x01", "a\xff", "ab", "ab\x00c",
	"b", "b/1", "b/2", "c", "\xff", "\xff\x00", "\xff\xff",
}

var modelValues = []string{"", "v1", "v2", "v3", "value-4", "0"}

func runModel(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	e := newEnv(t, modelOpts)
	g := &gen{rng: rng}
	var (
		m         = newModel(modelOpts)
		committed = m.clone() // the model as of the last commit
		b         *Batch
		left      int
		revsAt    int // len(m.revs) when the batch started
		step      int
	)
	stats := map[string]int{}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d step %d: %s", seed, step, fmt.Sprintf(format, args...))
	}
	check := func(what string, gotErr, wantErr error) bool {
		t.Helper()
		op, _, _ := strings.Cut(what, " ")
		if wantErr != nil {
			stats[op+" refused: "+strings.TrimPrefix(wantErr.Error(), "mvcc: ")]++
		} else {
			stats[op+" ok"]++
		}
		switch {
		case wantErr == nil && gotErr != nil:
			fail("%s: unexpected error %v", what, gotErr)
		case wantErr != nil && !errors.Is(gotErr, wantErr):
			fail("%s: error %v, want %v", what, gotErr, wantErr)
		}
		return wantErr == nil
	}
	for step = 0; step < steps; step++ {
		g.m = m
		if b == nil {
			b, left, revsAt = e.s.NewBatch(), 1+rng.IntN(6), len(m.revs)
		}
		switch p := rng.IntN(100); {
		case p < 30:
			r := g.put()
			got, err := b.Put(r)
			want, wantErr := m.Put(r)
			if check("put "+fmtMsg(r), err, wantErr) {
				requireEqual(t, "put "+fmtMsg(r), got, want)
			}
		case p < 40:
			r := g.deleteRange()
			got, err := b.DeleteRange(r)
			want, wantErr := m.DeleteRange(r)
			if check("delete "+fmtMsg(r), err, wantErr) {
				requireEqual(t, "delete "+fmtMsg(r), got, want)
			}
		case p < 65:
			r := g.txn(0)
			got, err := b.Txn(r)
			want, next, wantErr := m.Txn(r)
			if check("txn "+fmtMsg(r), err, wantErr) {
				requireEqual(t, "txn "+fmtMsg(r), got, want)
			}
			m = next
		case p < 85:
			r := g.rangeReq()
			got, err := b.Range(r)
			want, wantErr := m.Range(r)
			if check("batch range "+fmtMsg(r), err, wantErr) {
				requireEqual(t, "batch range "+fmtMsg(r), got, want)
			}
			// The store itself must not see the batch yet.
			got, err = e.s.Range(r)
			want, wantErr = committed.Range(r)
			if check("store range during a batch "+fmtMsg(r), err, wantErr) {
				requireEqual(t, "store range during a batch "+fmtMsg(r), got, want)
			}
		case p < 86:
			rev := g.compactRev()
			got, err := b.Compact(rev)
			want, wantErr := m.Compact(rev)
			if check(fmt.Sprintf("compact %d", rev), err, wantErr) {
				requireEqual(t, "compact", got, want)
			}
		case p < 92:
			lease := int64(rng.IntN(4))
			got, err := b.KeysWithLease(lease)
			if err != nil {
				fail("batch KeysWithLease: %v", err)
			}
			requireKeys(t, "batch KeysWithLease", got, m.KeysWithLease(lease))
		default:
			lease := int64(rng.IntN(4))
			got, err := b.RevokeLease(lease)
			if err != nil {
				fail("RevokeLease(%d): %v", lease, err)
			}
			requireEqual(t, fmt.Sprintf("RevokeLease(%d)", lease), got, m.RevokeLease(lease))
		}
		if b.Rev() != m.rev || b.CompactRev() != m.compact {
			fail("batch at rev %d compact %d, model at %d %d", b.Rev(), b.CompactRev(), m.rev, m.compact)
		}

		if left--; left > 0 {
			continue
		}
		if rng.IntN(10) == 0 {
			// Abandon the batch: nothing of it may survive.
			b.Close()
			b, m = nil, committed.clone()
		} else {
			m.applied += uint64(1 + rng.IntN(3))
			revs, err := b.Commit(m.applied)
			if err != nil {
				fail("commit: %v", err)
			}
			requireRevisions(t, "commit", revs, m.revs[revsAt:])
			b, committed = nil, m.clone()
		}
		checkCommitted(t, e, m, g, fail)
		switch p := rng.IntN(100); {
		case p < 3:
			e.restart()
			stats["restart"]++
		case p < 5:
			e = moveBySnapshot(t, e, m.applied)
			stats["snapshot+restore"]++
		}
		if e.s.Rev() != m.rev || e.s.CompactRev() != m.compact || e.s.AppliedIndex() != m.applied {
			fail("store at rev %d compact %d applied %d, model at %d %d %d",
				e.s.Rev(), e.s.CompactRev(), e.s.AppliedIndex(), m.rev, m.compact, m.applied)
		}
	}
	if b != nil {
		b.Close()
	}
	t.Logf("rev %d, compacted %d, %d keys ever; %v", m.rev, m.compact, len(m.vers), stats)
}

// checkCommitted compares reads of the committed store with the model.
func checkCommitted(t *testing.T, e *env, m *model, g *gen, fail func(string, ...any)) {
	t.Helper()
	for range 3 {
		r := g.rangeReq()
		got, err := e.s.Range(r)
		want, wantErr := m.Range(r)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				fail("store range %s: error %v, want %v", fmtMsg(r), err, wantErr)
			}
			continue
		}
		if err != nil {
			fail("store range %s: %v", fmtMsg(r), err)
		}
		requireEqual(t, "store range "+fmtMsg(r), got, want)
	}
	from := max(1, m.compact-1+g.rng.Int64N(m.rev-m.compact+3))
	maxEvents := g.rng.IntN(6)
	got, err := e.s.History(from, maxEvents)
	want, wantErr := m.History(from, maxEvents)
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			fail("History(%d, %d): error %v, want %v", from, maxEvents, err, wantErr)
		}
	} else {
		if err != nil {
			fail("History(%d, %d): %v", from, maxEvents, err)
		}
		requireRevisions(t, fmt.Sprintf("History(%d, %d)", from, maxEvents), got, want)
	}
	lease := int64(g.rng.IntN(4))
	keys, err := e.s.KeysWithLease(lease)
	if err != nil {
		fail("KeysWithLease: %v", err)
	}
	requireKeys(t, fmt.Sprintf("KeysWithLease(%d)", lease), keys, m.KeysWithLease(lease))
}

// moveBySnapshot snapshots e's store, restores it into a new Pebble and
// returns the new environment; e is closed.
func moveBySnapshot(t *testing.T, e *env, applied uint64) *env {
	t.Helper()
	sn, err := e.s.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	var buf bytes.Buffer
	_, err = sn.WriteTo(&buf)
	sn.Release()
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	e.close()
	n := newEnv(t, e.opts)
	if err := n.s.Restore(&buf, applied); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return n
}

func requireKeys(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %q, want %q", what, got, want)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: %q, want %q", what, got, want)
		}
	}
}

// gen makes random requests, mostly valid, sometimes not, over a small key
// space so that requests collide.
type gen struct {
	rng *rand.Rand
	m   *model
}

func (g *gen) pick(n int) bool { return g.rng.IntN(n) == 0 }

func (g *gen) key() []byte {
	switch {
	case g.pick(100):
		return nil // empty
	case g.pick(100):
		return []byte("too-long-key")
	}
	return []byte(modelKeys[g.rng.IntN(len(modelKeys))])
}

func (g *gen) value() []byte {
	if g.pick(60) {
		return []byte("too-long-value")
	}
	return []byte(modelValues[g.rng.IntN(len(modelValues))])
}

// keyRange returns a key and a range end: one key, a range, a prefix, from
// key, everything; sometimes backwards.
func (g *gen) keyRange() (key, end []byte) {
	key = g.key()
	switch g.rng.IntN(6) {
	case 0, 1:
		return key, nil
	case 2:
		end = g.key()
		if bytes.Compare(end, key) < 0 && !g.pick(8) {
			key, end = end, key
		}
		if len(key) == 0 {
			key = []byte("a")
		}
		return key, end
	case 3:
		return key, prefixEnd(key)
	case 4:
		return key, []byte{0}
	}
	return []byte{0}, []byte{0}
}

// compactRev returns a revision to compact to: mostly well behind the
// current one, so that past revisions stay readable for a while.
func (g *gen) compactRev() int64 {
	if g.pick(5) {
		return g.rev()
	}
	return g.m.compact + g.rng.Int64N((g.m.rev-g.m.compact)/2+1)
}

// rev returns a revision around the interesting ones: below and at the
// compacted one, up to one past the current one, sometimes negative.
func (g *gen) rev() int64 {
	if g.pick(40) {
		return -1
	}
	lo := max(0, g.m.compact-1)
	return lo + g.rng.Int64N(g.m.rev-lo+2)
}

func (g *gen) lease() int64 {
	if g.pick(2) {
		return 0
	}
	return int64(1 + g.rng.IntN(3))
}

func (g *gen) put() *pb.PutRequest {
	r := &pb.PutRequest{Key: g.key(), Value: g.value(), Lease: g.lease(), PrevKv: g.pick(2)}
	if g.pick(12) {
		r.IgnoreValue = true
		if !g.pick(6) {
			r.Value = nil
		}
	}
	if g.pick(12) {
		r.IgnoreLease = true
		if !g.pick(6) {
			r.Lease = 0
		}
	}
	return r
}

func (g *gen) deleteRange() *pb.DeleteRangeRequest {
	key, end := g.keyRange()
	return &pb.DeleteRangeRequest{Key: key, RangeEnd: end, PrevKv: g.pick(2)}
}

func (g *gen) rangeReq() *pb.RangeRequest {
	key, end := g.keyRange()
	r := &pb.RangeRequest{Key: key, RangeEnd: end}
	if g.pick(3) {
		r.Limit = g.rng.Int64N(5) - 1
	}
	if g.pick(3) {
		r.Revision = g.rev()
	}
	if g.pick(3) {
		r.SortOrder = pb.RangeRequest_SortOrder(g.rng.IntN(3))
		r.SortTarget = pb.RangeRequest_SortTarget(g.rng.IntN(5))
		if g.pick(30) {
			r.SortTarget = 9
		}
	}
	r.KeysOnly = g.pick(8)
	r.CountOnly = g.pick(8)
	if g.pick(6) {
		r.MinModRevision = g.rev()
	}
	if g.pick(6) {
		r.MaxModRevision = g.rev()
	}
	if g.pick(6) {
		r.MinCreateRevision = g.rev()
	}
	if g.pick(6) {
		r.MaxCreateRevision = g.rev()
	}
	return r
}

func (g *gen) compare() *pb.Compare {
	key, end := g.keyRange()
	c := &pb.Compare{Key: key, Result: pb.Compare_CompareResult(g.rng.IntN(4))}
	if g.pick(3) {
		c.RangeEnd = end
	}
	c.Target = pb.Compare_CompareTarget(g.rng.IntN(5))
	target := c.Target
	if g.pick(10) {
		target = pb.Compare_CompareTarget(g.rng.IntN(5)) // a union that may not match
	}
	switch target {
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: g.value()}
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: g.rng.Int64N(4)}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: g.rev()}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: g.rev()}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: g.lease()}
	}
	if g.pick(60) {
		c.Result = 7
	}
	return c
}

func (g *gen) ops(depth int) []*pb.RequestOp {
	n := g.rng.IntN(4)
	if g.pick(80) {
		n = 9 // over MaxTxnOps
	}
	ops := make([]*pb.RequestOp, n)
	for i := range ops {
		op := &pb.RequestOp{}
		switch p := g.rng.IntN(10); {
		case p < 3:
			op.Request = &pb.RequestOp_RequestRange{RequestRange: g.rangeReq()}
		case p < 6:
			op.Request = &pb.RequestOp_RequestPut{RequestPut: g.put()}
		case p < 8:
			op.Request = &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: g.deleteRange()}
		case depth < 2:
			op.Request = &pb.RequestOp_RequestTxn{RequestTxn: g.txn(depth + 1)}
		default:
			if g.pick(10) {
				break // an empty operation
			}
			op.Request = &pb.RequestOp_RequestPut{RequestPut: g.put()}
		}
		ops[i] = op
	}
	return ops
}

func (g *gen) txn(depth int) *pb.TxnRequest {
	r := &pb.TxnRequest{Success: g.ops(depth), Failure: g.ops(depth)}
	for range g.rng.IntN(3) {
		r.Compare = append(r.Compare, g.compare())
	}
	return r
}
