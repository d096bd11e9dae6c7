package mvcc

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestRestart: closing and reopening Pebble keeps data at every revision,
// the revision, the compacted revision, the applied index, history and the
// lease index.
func TestRestart(t *testing.T) {
	e := newDiskEnv(t, Options{})
	buildHistory(t, e, 7, 120)
	if err := e.compact(30); err != nil {
		t.Fatal(err)
	}
	rev, applied := e.s.Rev(), e.s.AppliedIndex()
	before := dumps(e, 30)
	hist, err := e.s.History(30, 0)
	if err != nil {
		t.Fatal(err)
	}
	leases := map[int64][][]byte{}
	for l := int64(0); l < 3; l++ {
		if leases[l], err = e.s.KeysWithLease(l); err != nil {
			t.Fatal(err)
		}
	}

	e.restart()
	if e.s.Rev() != rev || e.s.CompactRev() != 30 || e.s.AppliedIndex() != applied {
		t.Fatalf("after restart: rev %d compact %d applied %d, want %d 30 %d", e.s.Rev(), e.s.CompactRev(), e.s.AppliedIndex(), rev, applied)
	}
	requireDumps(t, e, before, 30)
	got, err := e.s.History(30, 0)
	if err != nil {
		t.Fatal(err)
	}
	requireRevisions(t, "History after restart", got, hist)
	for l, want := range leases {
		keys, err := e.s.KeysWithLease(l)
		if err != nil {
			t.Fatal(err)
		}
		requireKeys(t, fmt.Sprintf("KeysWithLease(%d) after restart", l), keys, want)
	}
	// And it goes on from there.
	if resp := e.put("new", "v"); resp.Header.Revision != rev+1 {
		t.Fatalf("first put after restart at %d, want %d", resp.Header.Revision, rev+1)
	}
}

// TestCrashKeepsAppliedIndexWithData: commits are not synced, so a crash
// loses some; but the applied index is in the same Pebble batch as the
// data, so whatever survives is exactly the state after some commit, with
// that commit's applied index, and nothing synced is lost.
func TestCrashKeepsAppliedIndexWithData(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 2))
			fs := vfs.NewCrashableMem()
			db := openPebble(t, fs, "db")
			s, err := Open(db, Options{})
			if err != nil {
				t.Fatal(err)
			}
			e := &env{t: t, fs: fs, dir: "db", db: db, s: s}
			states := map[uint64]*pb.RangeResponse{0: e.dump(0)}
			var synced uint64
			for idx := uint64(1); idx <= 60; idx++ {
				e.apply(idx, func(b *Batch) {
					for range 1 + rng.IntN(4) {
						k := []byte{'a' + byte(rng.IntN(8))}
						var err error
						if rng.IntN(4) == 0 {
							_, err = b.DeleteRange(&pb.DeleteRangeRequest{Key: k})
						} else {
							_, err = b.Put(&pb.PutRequest{Key: k, Value: fmt.Appendf(nil, "%d", idx)})
						}
						if err != nil {
							t.Fatal(err)
						}
					}
				})
				states[idx] = e.dump(0)
				if rng.IntN(10) == 0 {
					// What the raft log's synced append does for the state
					// machine: a synced write makes every earlier one durable.
					if err := db.LogData(nil, pebble.Sync); err != nil {
						t.Fatal(err)
					}
					synced = idx
				}
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			c := &env{t: t, fs: crashed, dir: "db"}
			c.open()
			defer c.close()
			idx := c.s.AppliedIndex()
			t.Logf("synced through %d, recovered %d of 60", synced, idx)
			if idx < synced {
				t.Fatalf("recovered applied index %d, but %d was synced", idx, synced)
			}
			requireEqual(t, fmt.Sprintf("state recovered with applied index %d", idx), c.dump(0), states[idx])
		})
	}
}

// TestCorruptState: a damaged state record stops Open with an error naming
// the record.
func TestCorruptState(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("k", "v")
	for _, bad := range [][]byte{{}, []byte("short"), func() []byte {
		v := encodeState(state{rev: 5, applied: 3})
		v[5] ^= 1 // checksum no longer matches
		return v
	}()} {
		if err := e.db.Set(stateKey, bad, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		_, err := Open(e.db, Options{})
		requireErr(t, err, ErrCorrupt, fmt.Sprintf("%q", stateKey))
	}
}
