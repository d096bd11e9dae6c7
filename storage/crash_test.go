package storage

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The tests in this file run the store on Pebble's crashable in-memory
// filesystem. CrashClone(vfs.CrashCloneCfg{}) returns the filesystem as a
// power failure at that moment would leave it: exactly the data and
// directory entries that were synced.

const crashDir = "/data"

func memStore(t testing.TB, fs vfs.FS, opts Options) *Store {
	t.Helper()
	opts.FS = fs
	return openStore(t, crashDir, opts)
}

// crash opens a store on the state a power failure would leave now.
func crash(t testing.TB, fs *vfs.MemFS, cfg vfs.CrashCloneCfg) (*vfs.MemFS, *Store, error) {
	t.Helper()
	clone := fs.CrashClone(cfg)
	s, err := Open(crashDir, Options{FS: clone})
	if err == nil {
		t.Cleanup(func() { closeStore(t, s) })
	}
	return clone, s, err
}

func mustCrash(t testing.TB, fs *vfs.MemFS) (*vfs.MemFS, *Store) {
	t.Helper()
	clone, s, err := crash(t, fs, vfs.CrashCloneCfg{})
	if err != nil {
		t.Fatalf("Open after a crash: %v", err)
	}
	return clone, s
}

// A synced Write survives a crash, an unsynced one may not, and Sync makes
// every earlier unsynced Write durable. The store opens cleanly in each case.
func TestCrashSyncAndNoSync(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := memStore(t, fs, Options{})
	write(t, s, true, Update{Entries: index(1).terms(1, 1, 1), HardState: hardState(1, 1, 2)})

	write(t, s, false, Update{Entries: index(4).terms(1, 2), HardState: hardState(2, 1, 4)})
	_, c := mustCrash(t, fs)
	checkLog(t, c, 0, 0, 1, 1, 1)
	if hs := c.HardState(); !proto.Equal(hs, hardState(1, 1, 2)) {
		t.Fatalf("HardState after a crash = %v, want the synced one", hs)
	}

	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	_, c = mustCrash(t, fs)
	checkLog(t, c, 0, 0, 1, 1, 1, 1, 2)
	if hs := c.HardState(); !proto.Equal(hs, hardState(2, 1, 4)) {
		t.Fatalf("HardState after Sync and a crash = %v", hs)
	}

	// A synced write makes the unsynced ones before it durable too.
	write(t, s, false, Update{Entries: index(6).terms(2)})
	write(t, s, true, Update{HardState: hardState(2, 1, 6)})
	_, c = mustCrash(t, fs)
	checkLog(t, c, 0, 0, 1, 1, 1, 1, 2, 2)
}

// Everything acknowledged as durable is there after a crash: the identity,
// snapshot files once Finish or Commit returned, and SetSnapshot.
func TestCrashKeepsDurableState(t *testing.T) {
	fs := vfs.NewCrashableMem()
	_, c := mustCrash(t, fs) // a crash before anything exists
	if !c.IsEmpty() {
		t.Fatal("crashed empty store not empty")
	}

	s := memStore(t, fs, Options{})
	id := Identity{ClusterName: "c", ClusterID: 7, NodeID: 2}
	if err := s.CheckIdentity(id); err != nil {
		t.Fatal(err)
	}
	write(t, s, true, Update{Entries: index(1).terms(repeat(1, 20)...), HardState: hardState(1, 2, 15)})
	meta := snapMeta(10, 1, 1, 2)
	w, err := s.CreateSnapshot(meta, []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("state")); err != nil {
		t.Fatal(err)
	}
	// Before Finish a crash leaves no snapshot, and Open removes the
	// temporary file.
	clone, c := mustCrash(t, fs)
	if names, _ := clone.List(crashDir + "/snap"); len(names) != 0 {
		t.Fatalf("snap dir after a crash during CreateSnapshot: %v", names)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	_, c = mustCrash(t, fs)
	sf, err := c.OpenSnapshotFile(1, 10)
	if err != nil {
		t.Fatalf("finished snapshot lost in a crash: %v", err)
	}
	sf.Close()

	if err := s.SetSnapshot(meta); err != nil {
		t.Fatal(err)
	}
	_, c = mustCrash(t, fs)
	if st := c.Status(); st.SnapshotIndex != 10 {
		t.Fatalf("SetSnapshot lost in a crash: %+v", st)
	}
	if got, ok, err := c.Identity(); err != nil || !ok || got != id {
		t.Fatalf("identity after a crash: %+v, %v, %v", got, ok, err)
	}

	// A received snapshot is durable once Commit returns.
	src := openStore(t, t.TempDir(), Options{})
	body := readFile(t, writeSnapFile(t, src, snapMeta(30, 2, 1), nil, pattern(5000)))
	pw, err := s.ReceiveSnapshot(2, 30, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	if _, err := pw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := pw.Commit(); err != nil {
		t.Fatal(err)
	}
	_, c = mustCrash(t, fs)
	sf, err = c.OpenSnapshotFile(2, 30)
	if err != nil {
		t.Fatalf("committed transfer lost in a crash: %v", err)
	}
	sf.Close()
}

// Installing a snapshot prunes the older snapshot files. If the Write that
// installs it is not synced, a crash brings back the record of the older
// snapshot, so its file must still be there: the store has to open.
//
// Here the older file's removal is made durable by a later directory sync
// (the next snapshot file finished). On a real filesystem an unlink usually
// reaches the disk on its own within seconds, long before Pebble's next sync.
func TestCrashAfterUnsyncedSnapshotInstall(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := memStore(t, fs, Options{})
	write(t, s, true, Update{Entries: index(1).terms(repeat(1, 10)...), HardState: hardState(1, 1, 10)})
	old := snapMeta(10, 1, 1)
	writeSnapFile(t, s, old, nil, []byte("old"))
	if err := s.SetSnapshot(old); err != nil { // synced
		t.Fatal(err)
	}

	newer := snapMeta(50, 2, 1)
	writeSnapFile(t, s, newer, nil, []byte("received"))
	write(t, s, false, Update{Snapshot: &raftpb.Snapshot{Metadata: newer}})
	// Any later directory sync; here, the next local snapshot being written.
	writeSnapFile(t, s, snapMeta(60, 2, 1), nil, []byte("later"))

	clone, c, err := crash(t, fs, vfs.CrashCloneCfg{})
	if err != nil {
		names, _ := clone.List(crashDir + "/snap")
		t.Fatalf("Open after a crash: %v\nsnap dir: %v", err, names)
	}
	// Either the install is durable or the old snapshot is intact.
	switch st := c.Status(); st.SnapshotIndex {
	case 50:
		checkLog(t, c, 50, 2)
	case 10:
		checkLog(t, c, 0, append([]uint64{0}, repeat(1, 10)...)...)
	default:
		t.Fatalf("Status after a crash = %+v", st)
	}
}

// TestCrashRandom crashes random histories at random points, keeping a random
// half of what was not synced. The store must always open, and hold the state
// after one of the writes made since the last synced one: never less than
// what was acknowledged as durable, never a state that did not exist.
func TestCrashRandom(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0xc4a5))
			fs := vfs.NewCrashableMem()
			s := memStore(t, fs, Options{CacheEntries: 8})
			type state struct {
				log logView
				hs  *raftpb.HardState
			}
			snapshot := func(s *Store) state { return state{readLog(t, s), s.HardState()} }
			states := []state{snapshot(s)}
			durable := 0 // index in states of the last state known durable
			term, last := uint64(1), uint64(0)
			for step := range 150 {
				sync := rng.IntN(3) == 0
				switch r := rng.IntN(10); {
				case r < 6:
					at := last + 1
					if rng.IntN(4) == 0 && last > 0 {
						term++
						first, _ := s.FirstIndex()
						at = max(first, last-uint64(rng.IntN(int(min(last, 5)))))
					}
					n := 1 + rng.IntN(10)
					ents := make([]*raftpb.Entry, n)
					for i := range ents {
						ents[i] = &raftpb.Entry{Index: new(at + uint64(i)), Term: new(term), Data: pattern(rng.IntN(2000))}
					}
					last = at + uint64(n) - 1
					write(t, s, sync, Update{Entries: ents, HardState: hardState(term, 1, 0)})
				case r < 8:
					first, _ := s.FirstIndex()
					if first <= last {
						if err := s.Compact(first + uint64(rng.IntN(int(last-first+1)))); err != nil {
							t.Fatal(err)
						}
					}
					sync = false
				default:
					if err := s.Sync(); err != nil {
						t.Fatal(err)
					}
					sync = true
				}
				states = append(states, snapshot(s))
				if sync {
					durable = len(states) - 1
				}
				if rng.IntN(4) != 0 {
					continue
				}
				_, c, err := crash(t, fs, vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng})
				if err != nil {
					t.Fatalf("step %d: Open after a crash: %v", step, err)
				}
				got := snapshot(c)
				match := slices.IndexFunc(states[durable:], func(st state) bool {
					return st.log.first == got.log.first && st.log.last == got.log.last &&
						st.log.truncTerm == got.log.truncTerm && proto.Equal(st.hs, got.hs) &&
						slices.EqualFunc(st.log.ents, got.log.ents, func(a, b *raftpb.Entry) bool { return proto.Equal(a, b) })
				})
				if match < 0 {
					t.Fatalf("step %d: after a crash the log is [%d, %d] with HardState %v: not a state since the last synced write (%d states)",
						step, got.log.first, got.log.last, got.hs, len(states)-durable)
				}
				checkCache(t, c)
				closeStore(t, c)
			}
		})
	}
}
