package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// history builds a store with ~n revisions of puts, deletes and txns over a
// few keys (with leases), one request per batch, deterministically.
func buildHistory(t testing.TB, e *env, seed uint64, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	keys := []string{"a", "a\x00", "b", "b\x00\xff", "c", "d", "e\xff"}
	for i := 0; i < n; i++ {
		k := keys[rng.IntN(len(keys))]
		e.apply(e.nextIndex(), func(b *Batch) {
			var err error
			switch rng.IntN(6) {
			case 0, 1, 2:
				_, err = b.Put(&pb.PutRequest{Key: []byte(k), Value: fmt.Appendf(nil, "v%d", i), Lease: int64(rng.IntN(3))})
			case 3:
				_, err = b.DeleteRange(&pb.DeleteRangeRequest{Key: []byte(k)})
			case 4:
				_, err = b.DeleteRange(&pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: prefixEnd([]byte(k))})
			case 5:
				k2 := keys[rng.IntN(len(keys))]
				ops := []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte("t")}}}}
				if k2 != k {
					ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k2)}}})
				}
				_, err = b.Txn(&pb.TxnRequest{Success: ops})
			}
			if err != nil {
				t.Fatalf("building history: %v", err)
			}
		})
	}
}

// dumps reads the whole store at every revision from `from` to the current.
func dumps(e *env, from int64) map[int64]*pb.RangeResponse {
	out := map[int64]*pb.RangeResponse{}
	for rev := from; rev <= e.s.Rev(); rev++ {
		out[rev] = e.dump(rev)
	}
	return out
}

func requireDumps(t *testing.T, e *env, want map[int64]*pb.RangeResponse, from int64) {
	t.Helper()
	for rev := from; rev <= e.s.Rev(); rev++ {
		w, ok := want[rev]
		if !ok {
			continue
		}
		requireEqual(t, fmt.Sprintf("store at revision %d", rev), e.dump(rev), w)
		// Per key too: single-key reads take another path.
		for _, kv := range w.Kvs {
			requireEqual(t, fmt.Sprintf("%q at revision %d", kv.Key, rev), e.get(string(kv.Key), rev), kv)
		}
	}
}

// countTable counts the Pebble keys of one table.
func countTable(t *testing.T, db *pebble.DB, lo, hi []byte) int {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

// TestCompact: after Compact(c), every read at revisions >= c answers as
// before, every read below fails with the compacted revision, history below
// c is gone, and per-key history keeps at most what reads need.
func TestCompact(t *testing.T) {
	e := newEnv(t, Options{})
	buildHistory(t, e, 1, 300)
	cur := e.s.Rev()
	before := dumps(e, 1)
	histBefore, err := e.s.History(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []int64{1, 40, 41, 150, cur - 3, cur} {
		if err := e.compact(c); err != nil {
			t.Fatalf("Compact(%d): %v", c, err)
		}
		if e.s.Rev() != cur || e.s.CompactRev() != c {
			t.Fatalf("after Compact(%d): rev %d compact %d", c, e.s.Rev(), e.s.CompactRev())
		}
		requireDumps(t, e, before, c)
		if c > 1 {
			_, err := e.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: c - 1})
			var ce *CompactedError
			if !errors.As(err, &ce) || ce.CompactRev != c || ce.Requested != c-1 {
				t.Fatalf("read below the compacted revision: %v", err)
			}
			_, err = e.s.History(c-1, 0)
			if !errors.As(err, &ce) || ce.CompactRev != c {
				t.Fatalf("History below the compacted revision: %v", err)
			}
		}
		hist, err := e.s.History(c, 0)
		if err != nil {
			t.Fatalf("History(%d): %v", c, err)
		}
		var want []Revision
		for _, r := range histBefore {
			if r.Rev >= c {
				want = append(want, r)
			}
		}
		requireRevisions(t, fmt.Sprintf("History(%d) after Compact(%d)", c, c), hist, want)
		if n := countTable(t, e.db, historyStart, historyKey(c, 0)); n != 0 {
			t.Fatalf("Compact(%d) left %d history records below it", c, n)
		}
	}
	// Compacted to the current revision: per-key history holds, per key, the
	// live version and whatever changed at the compacted revision itself.
	live := len(e.dump(0).Kvs)
	atCur := 0
	if len(histBefore) > 0 && histBefore[len(histBefore)-1].Rev == cur {
		atCur = len(histBefore[len(histBefore)-1].Events)
	}
	if n := countTable(t, e.db, keyRevStart, keyRevEnd); n > live+atCur {
		t.Fatalf("per-key history holds %d entries for %d live keys", n, live)
	}
	e.restart()
	requireDumps(t, e, before, cur)
}

// TestCompactDeleteAtCompactRev: a key deleted exactly at the compacted
// revision is gone for reads at it, and History from it still has the
// delete.
func TestCompactDeleteAtCompactRev(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("k", "1")       // 2
	e.put("k", "2")       // 3
	e.del("k", "", false) // 4
	e.put("other", "x")   // 5
	if err := e.compact(4); err != nil {
		t.Fatal(err)
	}
	if got := e.get("k", 4); got != nil {
		t.Fatalf("k at the compacted revision: %v", got)
	}
	revs, err := e.s.History(4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 2 || revs[0].Rev != 4 || revs[0].Events[0].PrevKv == nil || string(revs[0].Events[0].PrevKv.Value) != "2" {
		t.Fatalf("History(4) after Compact(4): %s", fmtRevs(revs))
	}
	if err := e.compact(5); err != nil {
		t.Fatal(err)
	}
	if n := countTable(t, e.db, keyRevPrefix([]byte("k")), keyRevAfter([]byte("k"))); n != 0 {
		t.Fatalf("a key deleted below the compacted revision keeps %d per-key entries", n)
	}
}

// TestCompactInBatch: compaction and writes in one batch, in both orders.
func TestCompactInBatch(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("k", "1") // 2
	b := e.s.NewBatch()
	defer b.Close()
	if _, err := b.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("2")}); err != nil { // 3
		t.Fatal(err)
	}
	if _, err := b.Compact(3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("3")}); err != nil { // 4
		t.Fatal(err)
	}
	got, err := b.Range(&pb.RangeRequest{Key: []byte("k"), Revision: 3})
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "2" {
		t.Fatalf("read at the compacted revision inside the batch: %v %v", got, err)
	}
	if _, err := b.Range(&pb.RangeRequest{Key: []byte("k"), Revision: 2}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read below the compacted revision inside the batch: %v", err)
	}
	if _, err := b.Commit(e.nextIndex()); err != nil {
		t.Fatal(err)
	}
	if e.s.CompactRev() != 3 || !bytes.Equal(e.get("k", 3).Value, []byte("2")) || !bytes.Equal(e.get("k", 0).Value, []byte("3")) {
		t.Fatalf("after commit: compact %d", e.s.CompactRev())
	}
}
