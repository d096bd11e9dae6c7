package storage

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func TestOpenEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet", "there")
	s := openStore(t, dir, Options{})
	if !s.IsEmpty() {
		t.Fatal("new store is not empty")
	}
	if s.Dir() != dir {
		t.Fatalf("Dir() = %q, want %q", s.Dir(), dir)
	}
	checkLog(t, s, 0, 0)
	hs, cs, err := s.InitialState()
	if err != nil || !proto.Equal(hs, &raftpb.HardState{}) || !proto.Equal(cs, &raftpb.ConfState{}) {
		t.Fatalf("InitialState = %v, %v, %v; want empty", hs, cs, err)
	}
	snap, err := s.Snapshot()
	if err != nil || snap.GetMetadata().GetIndex() != 0 {
		t.Fatalf("Snapshot() = %v, %v; want empty", snap, err)
	}
	if _, err := s.Entries(1, 2, noLimit); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Entries(1, 2) on an empty log: %v", err)
	}
	for _, name := range []string{"LOCK", "db", "snap"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("layout: %v", err)
		}
	}
}

// Each kind of raft state makes a store non-empty, and stays after a restart;
// an identity alone does not.
func TestIsEmpty(t *testing.T) {
	tests := []struct {
		name  string
		fill  func(t *testing.T, s *Store)
		empty bool
	}{
		{"identity only", func(t *testing.T, s *Store) {
			if err := s.CheckIdentity(Identity{ClusterName: "c", ClusterID: 1, NodeID: 1}); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"empty HardState", func(t *testing.T, s *Store) { write(t, s, true, Update{HardState: &raftpb.HardState{}}) }, true},
		{"HardState", func(t *testing.T, s *Store) { write(t, s, true, Update{HardState: hardState(1, 1, 0)}) }, false},
		{"entries", func(t *testing.T, s *Store) { write(t, s, true, Update{Entries: index(1).terms(1)}) }, false},
		{"snapshot", func(t *testing.T, s *Store) {
			meta := snapMeta(5, 1, 1)
			writeSnapFile(t, s, meta, nil, nil)
			write(t, s, true, Update{Snapshot: &raftpb.Snapshot{Metadata: meta}})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{})
			tt.fill(t, s)
			if s.IsEmpty() != tt.empty {
				t.Fatalf("IsEmpty = %v, want %v", s.IsEmpty(), tt.empty)
			}
			s = reopen(t, s, Options{})
			if s.IsEmpty() != tt.empty {
				t.Fatalf("IsEmpty after restart = %v, want %v", s.IsEmpty(), tt.empty)
			}
		})
	}
}

// A restart restores everything: HardState, entries, the compaction point and
// its term, the snapshot metadata and the identity.
func TestRestartRestoresState(t *testing.T) {
	for _, opts := range []Options{{}, {CacheEntries: 4}} {
		dir := t.TempDir()
		s := openStore(t, dir, opts)
		id := Identity{ClusterName: "prod", ClusterID: 0xfeed, NodeID: 3}
		if err := s.CheckIdentity(id); err != nil {
			t.Fatal(err)
		}
		var terms []uint64
		for i := range 100 {
			terms = append(terms, uint64(1+i/30))
		}
		write(t, s, true, Update{Entries: index(1).terms(terms...), HardState: hardState(4, 2, 90)})
		meta := snapMeta(60, 2, 1, 2, 3)
		meta.ConfState.Learners = []uint64{4}
		writeSnapFile(t, s, meta, []byte("members"), []byte("state at 60"))
		if err := s.SetSnapshot(meta); err != nil {
			t.Fatal(err)
		}
		if err := s.Compact(50); err != nil {
			t.Fatal(err)
		}
		want := readLog(t, s)
		if want.first != 51 || want.last != 100 || want.truncTerm != 2 {
			t.Fatalf("log before restart: first %d last %d term %d", want.first, want.last, want.truncTerm)
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}

		s = reopen(t, s, opts)
		got := readLog(t, s)
		if got.first != want.first || got.last != want.last || got.truncTerm != want.truncTerm {
			t.Fatalf("log after restart: first %d last %d term %d; before: %d %d %d",
				got.first, got.last, got.truncTerm, want.first, want.last, want.truncTerm)
		}
		requireEntries(t, got.ents, want.ents)
		if _, err := s.Term(49); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("Term(49) after restart: %v, want ErrCompacted", err)
		}
		hs, cs, err := s.InitialState()
		if err != nil || !proto.Equal(hs, hardState(4, 2, 90)) || !proto.Equal(cs, meta.GetConfState()) {
			t.Fatalf("InitialState after restart = %v, %v, %v", hs, cs, err)
		}
		snap, err := s.Snapshot()
		if err != nil || !proto.Equal(snap.GetMetadata(), meta) {
			t.Fatalf("Snapshot() after restart = %v, %v; want %v", snap, err, meta)
		}
		if gotID, ok, err := s.Identity(); err != nil || !ok || gotID != id {
			t.Fatalf("Identity() after restart = %+v, %v, %v; want %+v", gotID, ok, err, id)
		}
		if s.IsEmpty() {
			t.Fatal("IsEmpty after restart")
		}
		if st := s.Status(); st != (Status{FirstIndex: 51, LastIndex: 100, SnapshotIndex: 60, Commit: 90}) {
			t.Fatalf("Status after restart = %+v", st)
		}
	}
}

// Write(…, false) followed by Sync, then a restart, returns everything.
// (Whether unsynced writes survive a power failure cannot be observed in
// process; this checks that Sync is wired to Pebble and loses nothing.)
func TestNoSyncWritesThenSync(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	for i := uint64(1); i <= 500; i += 5 {
		write(t, s, false, Update{Entries: index(i).terms(1, 1, 1, 1, 1), HardState: hardState(1, 1, i)})
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, Options{})
	checkLog(t, s, 0, append([]uint64{0}, repeat(1, 500)...)...)
	if hs := s.HardState(); !proto.Equal(hs, hardState(1, 1, 496)) {
		t.Fatalf("HardState = %v", hs)
	}
}

func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	if _, ok, err := s.Identity(); ok || err != nil {
		t.Fatalf("Identity() of a new store: ok %v, err %v", ok, err)
	}
	id := Identity{ClusterName: "alpha", ClusterID: 0xabc, NodeID: 1}
	if err := s.CheckIdentity(id); err != nil {
		t.Fatalf("first CheckIdentity records: %v", err)
	}
	if err := s.CheckIdentity(id); err != nil {
		t.Fatalf("same identity again: %v", err)
	}
	s = reopen(t, s, Options{})
	if got, ok, err := s.Identity(); err != nil || !ok || got != id {
		t.Fatalf("Identity() = %+v, %v, %v", got, ok, err)
	}
	tests := []struct {
		name  string
		other Identity
		parts []string
	}{
		{"cluster name", Identity{ClusterName: "beta", ClusterID: 0xabc, NodeID: 1}, []string{`"alpha"`, `"beta"`, dir}},
		{"node id", Identity{ClusterName: "alpha", ClusterID: 0xabc, NodeID: 2}, []string{"node 1", "node 2", dir}},
		{"cluster id", Identity{ClusterName: "alpha", ClusterID: 0xdef, NodeID: 1}, []string{"abc", "def"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errContains(t, s.CheckIdentity(tt.other), ErrIdentity, tt.parts...)
			// A refused identity is not recorded.
			if got, _, _ := s.Identity(); got != id {
				t.Fatalf("Identity() = %+v after a refused check", got)
			}
		})
	}
}

func TestIdentityCorrupt(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	if err := s.DB().Set(identityKey, seal([]byte("{not json")), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Identity()
	errContains(t, err, ErrCorrupt, s.dbDir)
	errContains(t, s.CheckIdentity(Identity{ClusterName: "x"}), ErrCorrupt)
	if err := s.DB().Set(identityKey, []byte{1, 2, 3, 4, 5}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Identity()
	errContains(t, err, ErrCorrupt, s.dbDir, "checksum")
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	appendEnts(t, s, index(1).terms(1, 1))
	_, err := Open(dir, Options{})
	errContains(t, err, ErrLocked, dir)
	// The refused Open did not disturb the store that holds the lock.
	appendEnts(t, s, index(3).terms(1))
	checkLog(t, s, 0, 0, 1, 1, 1)
	closeStore(t, s)
	s = openStore(t, dir, Options{})
	checkLog(t, s, 0, 0, 1, 1, 1)
}

// An Open that fails after taking the lock releases it: a second attempt
// reports the same problem, not ErrLocked.
func TestFailedOpenReleasesLock(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	appendEnts(t, s, index(1).terms(1, 1, 1))
	if err := s.DB().Set(logKey(2), []byte("junk"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	for range 2 {
		_, err := Open(s.Dir(), Options{})
		errContains(t, err, ErrCorrupt)
		if errors.Is(err, ErrLocked) {
			t.Fatalf("second Open: %v", err)
		}
	}
}

func TestOpenOnAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("Open of a regular file succeeded")
	}
}

// corruptLog builds a closed store with entries 1..20 (terms 1..2), lets
// damage change Pebble directly, and returns the error of the next Open.
func corruptLog(t *testing.T, damage func(db *pebble.DB)) (dir string, err error) {
	t.Helper()
	s := openStore(t, t.TempDir(), Options{CacheEntries: 4})
	appendEnts(t, s, index(1).terms(append(repeat(1, 10), repeat(2, 10)...)...))
	write(t, s, true, Update{HardState: hardState(2, 1, 5)})
	damage(s.DB())
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s2, err := Open(s.Dir(), Options{})
	if err == nil {
		s2.Close()
	}
	return s.dbDir, err
}

func getValue(t *testing.T, db *pebble.DB, k []byte) []byte {
	t.Helper()
	v, closer, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	return append([]byte(nil), v...)
}

func set(t *testing.T, db *pebble.DB, k, v []byte) {
	t.Helper()
	if err := db.Set(k, v, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDetectsCorruptLog(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, db *pebble.DB)
		parts  []string
	}{
		{"garbage value", func(t *testing.T, db *pebble.DB) {
			set(t, db, logKey(7), []byte("this is not a sealed entry"))
		}, []string{"log entry 7", "checksum"}},
		{"short value", func(t *testing.T, db *pebble.DB) {
			set(t, db, logKey(7), []byte{1, 2})
		}, []string{"log entry 7", "shorter"}},
		{"flipped payload byte", func(t *testing.T, db *pebble.DB) {
			v := getValue(t, db, logKey(13))
			v[len(v)-1] ^= 0x01
			set(t, db, logKey(13), v)
		}, []string{"log entry 13", "checksum"}},
		{"flipped checksum byte", func(t *testing.T, db *pebble.DB) {
			v := getValue(t, db, logKey(13))
			v[0] ^= 0x80
			set(t, db, logKey(13), v)
		}, []string{"log entry 13", "checksum"}},
		{"sealed entry under the wrong key", func(t *testing.T, db *pebble.DB) {
			set(t, db, logKey(7), getValue(t, db, logKey(8)))
		}, []string{"log entry 7", "does not match"}},
		{"sealed garbage proto", func(t *testing.T, db *pebble.DB) {
			set(t, db, logKey(7), seal([]byte{0xff, 0xff, 0xff}))
		}, []string{"log entry 7"}},
		{"missing in the middle", func(t *testing.T, db *pebble.DB) {
			if err := db.Delete(logKey(9), pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}, []string{"log entry 9 missing"}},
		{"missing first", func(t *testing.T, db *pebble.DB) {
			if err := db.Delete(logKey(1), pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}, []string{"log entry 1 missing"}},
		{"term going down", func(t *testing.T, db *pebble.DB) {
			set(t, db, logKey(15), seal(mustMarshal(t, entry(15, 1, ""))))
		}, []string{"log entry 15", "term 1"}},
		{"commit beyond the log", func(t *testing.T, db *pebble.DB) {
			if err := db.DeleteRange(logKey(4), logKey(21), pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}, []string{"commits index 5", "ends at 3"}},
		{"HardState", func(t *testing.T, db *pebble.DB) {
			set(t, db, hardStateKey, []byte("garbage!"))
		}, []string{"mhs"}},
		{"compaction point", func(t *testing.T, db *pebble.DB) {
			set(t, db, truncatedKey, seal([]byte{0xff}))
		}, []string{"mtrc"}},
		{"snapshot record", func(t *testing.T, db *pebble.DB) {
			set(t, db, snapshotKey, []byte("garbage!"))
		}, []string{"msnp"}},
		{"malformed log key", func(t *testing.T, db *pebble.DB) {
			set(t, db, append(logKey(30), 0), seal(nil))
		}, []string{"malformed log key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbDir, err := corruptLog(t, func(db *pebble.DB) { tt.damage(t, db) })
			errContains(t, err, ErrCorrupt, append(tt.parts, dbDir)...)
		})
	}
}

// A corrupt record found after Open, when the entry is read from Pebble, is
// reported with its index instead of being served.
func TestReadDetectsCorruptEntry(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{CacheEntries: 2})
	appendEnts(t, s, index(1).terms(repeat(1, 10)...))
	v := getValue(t, s.DB(), logKey(4))
	v[len(v)-1] ^= 0xff
	set(t, s.DB(), logKey(4), v)
	_, err := s.Entries(2, 6, noLimit)
	errContains(t, err, ErrCorrupt, s.dbDir, "log entry 4")
	_, err = s.Term(4)
	errContains(t, err, ErrCorrupt, s.dbDir, "log entry 4")
	if err := s.DB().Delete(logKey(5), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	_, err = s.Term(5)
	errContains(t, err, ErrCorrupt, s.dbDir, "log entry 5")
	// Entries before the damage are still served.
	got, err := s.Entries(1, 4, noLimit)
	if err != nil {
		t.Fatal(err)
	}
	requireEntries(t, got, index(1).terms(1, 1, 1))
}

// The recorded latest snapshot is verified at Open: a damaged or missing file
// stops it with an error that names the file.
func TestOpenDetectsCorruptSnapshot(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		target error
		parts  []string
	}{
		{"truncated by one byte", func(t *testing.T, path string) { truncateBy(t, path, 1) }, ErrCorrupt, []string{"truncated"}},
		{"truncated to half", func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			truncateBy(t, path, st.Size()/2)
		}, ErrCorrupt, []string{"truncated"}},
		{"truncated to nothing", func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			truncateBy(t, path, st.Size())
		}, ErrCorrupt, []string{"truncated"}},
		{"flipped data byte", func(t *testing.T, path string) { flipByte(t, path, -100) }, ErrCorrupt, []string{"checksum"}},
		{"flipped header byte", func(t *testing.T, path string) { flipByte(t, path, 20) }, ErrCorrupt, []string{"checksum"}},
		{"flipped length byte", func(t *testing.T, path string) { flipByte(t, path, -20) }, ErrCorrupt, []string{"checksum"}},
		{"flipped checksum byte", func(t *testing.T, path string) { flipByte(t, path, -11) }, ErrCorrupt, []string{"checksum"}},
		{"flipped end marker", func(t *testing.T, path string) { flipByte(t, path, -1) }, ErrCorrupt, []string{"end marker"}},
		{"missing", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, fs.ErrNotExist, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{})
			appendEnts(t, s, index(1).terms(repeat(1, 20)...))
			meta := snapMeta(10, 1, 1)
			path := writeSnapFile(t, s, meta, []byte("ctx"), make([]byte, 4096))
			if err := s.SetSnapshot(meta); err != nil {
				t.Fatal(err)
			}
			closeStore(t, s)
			tt.damage(t, path)
			_, err := Open(s.Dir(), Options{})
			errContains(t, err, tt.target, append(tt.parts, path)...)
		})
	}
}

func truncateBy(t *testing.T, path string, n int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-n); err != nil {
		t.Fatal(err)
	}
}

// flipByte inverts the byte at off, counted from the end when negative.
func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	b := readFile(t, path)
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
