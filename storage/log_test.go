package storage

import (
	"errors"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The tests in this file mirror go.etcd.io/raft/v3's storage_test.go for
// MemoryStorage, run against every setup: a compaction point made by Compact
// or by an installed snapshot, and reads served by the cache or by Pebble.

func TestTerm(t *testing.T) {
	tests := []struct {
		i     uint64
		werr  error
		wterm uint64
	}{
		{2, raft.ErrCompacted, 0},
		{3, nil, 3},
		{4, nil, 4},
		{5, nil, 5},
		{6, raft.ErrUnavailable, 0},
	}
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			s := newLog(t, su.opts, su.how, 3, 3, 4, 5)
			for _, tt := range tests {
				term, err := s.Term(tt.i)
				if !errors.Is(err, tt.werr) || (tt.werr == nil && err != nil) || term != tt.wterm {
					t.Errorf("Term(%d) = %d, %v; want %d, %v", tt.i, term, err, tt.wterm, tt.werr)
				}
			}
		})
	}
}

func TestEntries(t *testing.T) {
	ents := index(3).terms(3, 4, 5, 6)
	size := func(es ...*raftpb.Entry) uint64 {
		var n uint64
		for _, e := range es {
			n += uint64(proto.Size(e))
		}
		return n
	}
	tests := []struct {
		name            string
		lo, hi, maxSize uint64
		werr            error
		wents           []*raftpb.Entry
	}{
		{"below first", 2, 6, noLimit, raft.ErrCompacted, nil},
		{"at compaction point", 3, 4, noLimit, raft.ErrCompacted, nil},
		{"one", 4, 5, noLimit, nil, index(4).terms(4)},
		{"two", 4, 6, noLimit, nil, index(4).terms(4, 5)},
		{"all", 4, 7, noLimit, nil, index(4).terms(4, 5, 6)},
		{"beyond last", 4, 8, noLimit, raft.ErrUnavailable, nil},
		{"empty range", 5, 5, noLimit, nil, nil},
		{"lo above hi", 6, 5, noLimit, raft.ErrUnavailable, nil},
		// Even with a zero limit the first entry is returned.
		{"limit 0", 4, 7, 0, nil, index(4).terms(4)},
		{"limit exactly 2", 4, 7, size(ents[1], ents[2]), nil, index(4).terms(4, 5)},
		{"limit 2.5", 4, 7, size(ents[1], ents[2]) + size(ents[3])/2, nil, index(4).terms(4, 5)},
		{"limit 3-1", 4, 7, size(ents[1], ents[2], ents[3]) - 1, nil, index(4).terms(4, 5)},
		{"limit exactly 3", 4, 7, size(ents[1], ents[2], ents[3]), nil, index(4).terms(4, 5, 6)},
		{"limit below first", 5, 7, 1, nil, index(5).terms(5)},
	}
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			s := newLog(t, su.opts, su.how, 3, 3, 4, 5, 6)
			for _, tt := range tests {
				got, err := s.Entries(tt.lo, tt.hi, tt.maxSize)
				if tt.werr != nil {
					if !errors.Is(err, tt.werr) || got != nil {
						t.Errorf("%s: Entries(%d, %d, %d) = %s, %v; want %v", tt.name, tt.lo, tt.hi, tt.maxSize, fmtEnts(got), err, tt.werr)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: Entries(%d, %d, %d): %v", tt.name, tt.lo, tt.hi, tt.maxSize, err)
					continue
				}
				t.Run(tt.name, func(t *testing.T) { requireEntries(t, got, tt.wents) })
			}
		})
	}
}

func TestFirstLastIndex(t *testing.T) {
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			s := newLog(t, su.opts, su.how, 3, 3, 4, 5)
			bounds := func(wfirst, wlast uint64) {
				t.Helper()
				first, err := s.FirstIndex()
				if err != nil || first != wfirst {
					t.Fatalf("FirstIndex = %d, %v; want %d", first, err, wfirst)
				}
				last, err := s.LastIndex()
				if err != nil || last != wlast {
					t.Fatalf("LastIndex = %d, %v; want %d", last, err, wlast)
				}
				if st := s.Status(); st.FirstIndex != wfirst || st.LastIndex != wlast {
					t.Fatalf("Status = %+v; want first %d last %d", st, wfirst, wlast)
				}
			}
			bounds(4, 5)
			appendEnts(t, s, index(6).terms(5))
			bounds(4, 6)
			if err := s.Compact(4); err != nil {
				t.Fatal(err)
			}
			bounds(5, 6)
			// Compacting everything leaves an empty log that remembers the
			// term of its last entry.
			if err := s.Compact(6); err != nil {
				t.Fatal(err)
			}
			bounds(7, 6)
			checkLog(t, s, 6, 5)
			appendEnts(t, s, index(7).terms(6))
			bounds(7, 7)
		})
	}
}

func TestCompact(t *testing.T) {
	tests := []struct {
		i       uint64
		wfail   bool
		wtrunc  uint64
		wterms  []uint64 // compaction point's term, then the entries'
		comment string
	}{
		{2, false, 3, []uint64{3, 4, 5}, "below the compaction point: no-op"},
		{3, false, 3, []uint64{3, 4, 5}, "at the compaction point: no-op"},
		{4, false, 4, []uint64{4, 5}, ""},
		{5, false, 5, []uint64{5}, "everything"},
		{6, true, 3, []uint64{3, 4, 5}, "beyond the last entry"},
	}
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			for _, tt := range tests {
				s := newLog(t, su.opts, su.how, 3, 3, 4, 5)
				err := s.Compact(tt.i)
				if (err != nil) != tt.wfail {
					t.Fatalf("Compact(%d) (%s): %v, want failure %v", tt.i, tt.comment, err, tt.wfail)
				}
				checkLog(t, s, tt.wtrunc, tt.wterms...)
				// The compaction point survives a restart.
				s = reopen(t, s, su.opts)
				checkLog(t, s, tt.wtrunc, tt.wterms...)
			}
		})
	}
}

func TestAppend(t *testing.T) {
	tests := []struct {
		name    string
		ents    []*raftpb.Entry
		wfail   bool
		wtrunc  uint64
		wterms  []uint64
		comment string
	}{
		{"all compacted", index(1).terms(1, 2), false, 3, []uint64{3, 4, 5}, ""},
		{"same entries", index(3).terms(3, 4, 5), false, 3, []uint64{3, 4, 5}, ""},
		{"conflict at 4", index(3).terms(3, 6, 6), false, 3, []uint64{3, 6, 6}, ""},
		{"extend", index(3).terms(3, 4, 5, 5), false, 3, []uint64{3, 4, 5, 5}, ""},
		// Incoming entries overlap the compacted prefix and replace a
		// longer existing suffix.
		{"overlap compacted, truncate", index(2).terms(3, 3, 5), false, 3, []uint64{3, 5}, ""},
		{"truncate existing", index(4).terms(5), false, 3, []uint64{3, 5}, ""},
		{"direct append", index(6).terms(5), false, 3, []uint64{3, 4, 5, 5}, ""},
		{"gap", index(7).terms(5), true, 3, []uint64{3, 4, 5}, "nothing written"},
	}
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := newLog(t, su.opts, su.how, 3, 3, 4, 5)
					err := s.Write([]Update{{Entries: tt.ents}}, false)
					if (err != nil) != tt.wfail {
						t.Fatalf("Write: %v, want failure %v", err, tt.wfail)
					}
					checkLog(t, s, tt.wtrunc, tt.wterms...)
					s = reopen(t, s, su.opts)
					checkLog(t, s, tt.wtrunc, tt.wterms...)
				})
			}
		})
	}
}

// A conflicting append far below the end removes every later entry, from the
// cache and from Pebble, and the log keeps working from there.
func TestAppendTruncatesLongSuffix(t *testing.T) {
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			s := newLog(t, su.opts, su.how, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4) // entries 4..13
			appendEnts(t, s, index(5).terms(7))
			checkLog(t, s, 3, 3, 4, 7)
			for _, i := range []uint64{6, 10, 13} {
				if _, err := s.Term(i); !errors.Is(err, raft.ErrUnavailable) {
					t.Errorf("Term(%d) after truncation: %v, want ErrUnavailable", i, err)
				}
			}
			if _, err := s.Entries(4, 8, noLimit); !errors.Is(err, raft.ErrUnavailable) {
				t.Errorf("Entries(4, 8) after truncation: %v, want ErrUnavailable", err)
			}
			appendEnts(t, s, index(6).terms(7, 8))
			checkLog(t, s, 3, 3, 4, 7, 7, 8)
			s = reopen(t, s, su.opts)
			checkLog(t, s, 3, 3, 4, 7, 7, 8)
		})
	}
}

// Several updates in one Write apply in order, atomically.
func TestWriteUpdatesInOrder(t *testing.T) {
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			s := newLog(t, su.opts, su.how, 3, 3)
			write(t, s, true,
				Update{Entries: index(4).terms(4, 4, 4), HardState: hardState(4, 1, 4)},
				Update{Entries: index(5).terms(5)},     // replaces 5 and 6
				Update{Entries: index(6).terms(5, 5)},  // extends again
				Update{HardState: &raftpb.HardState{}}, // empty: ignored
				Update{HardState: hardState(5, 2, 5)},
			)
			checkLog(t, s, 3, 3, 4, 5, 5, 5)
			if hs := s.HardState(); !proto.Equal(hs, hardState(5, 2, 5)) {
				t.Fatalf("HardState = %v", hs)
			}
			s = reopen(t, s, su.opts)
			checkLog(t, s, 3, 3, 4, 5, 5, 5)
			if hs := s.HardState(); !proto.Equal(hs, hardState(5, 2, 5)) {
				t.Fatalf("HardState after restart = %v", hs)
			}
		})
	}
}

// A failed Write changes nothing, in memory or on disk.
func TestWriteFailureIsAtomic(t *testing.T) {
	s := newLog(t, Options{}, "compact", 3, 3, 4, 5)
	err := s.Write([]Update{
		{Entries: index(6).terms(5), HardState: hardState(9, 9, 6)},
		{Entries: index(9).terms(5)}, // gap: the whole batch is refused
	}, true)
	errContains(t, err, nil, "gap")
	checkLog(t, s, 3, 3, 4, 5)
	if hs := s.HardState(); !proto.Equal(hs, &raftpb.HardState{}) {
		t.Fatalf("HardState after failed write = %v", hs)
	}
	s = reopen(t, s, Options{})
	checkLog(t, s, 3, 3, 4, 5)
}

func TestInstallSnapshot(t *testing.T) {
	tests := []struct {
		name   string
		snapAt uint64 // index of the snapshot; its term is 7
	}{
		{"ahead of the log", 20},
		{"inside the log", 5},
		{"at the last entry", 8},
	}
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := newLog(t, su.opts, su.how, 3, 3, 4, 5, 5, 5, 6) // entries 4..8
					write(t, s, true, Update{HardState: hardState(6, 1, 4)})
					meta := snapMeta(tt.snapAt, 7, 1, 2, 3)
					writeSnapFile(t, s, meta, []byte("ctx"), []byte("state"))
					// A HardState in the same update with a lower commit
					// does not move the commit index below the snapshot.
					write(t, s, true, Update{Snapshot: &raftpb.Snapshot{Metadata: meta}, HardState: hardState(7, 2, 1)})

					check := func(s *Store) {
						t.Helper()
						// The log is empty and starts after the snapshot,
						// whose term answers for its index.
						checkLog(t, s, tt.snapAt, 7)
						if _, err := s.Entries(tt.snapAt, tt.snapAt+1, noLimit); !errors.Is(err, raft.ErrCompacted) {
							t.Fatalf("Entries at the snapshot index: %v, want ErrCompacted", err)
						}
						if _, err := s.Entries(tt.snapAt+1, tt.snapAt+2, noLimit); !errors.Is(err, raft.ErrUnavailable) {
							t.Fatalf("Entries after the snapshot: %v, want ErrUnavailable", err)
						}
						snap, err := s.Snapshot()
						if err != nil || !proto.Equal(snap.GetMetadata(), meta) {
							t.Fatalf("Snapshot() = %v, %v; want metadata %v", snap, err, meta)
						}
						hs, cs, err := s.InitialState()
						if err != nil || !proto.Equal(hs, hardState(7, 2, tt.snapAt)) || !proto.Equal(cs, meta.GetConfState()) {
							t.Fatalf("InitialState = %v, %v, %v; want commit %d and voters 1,2,3", hs, cs, err, tt.snapAt)
						}
						if st := s.Status(); st.SnapshotIndex != tt.snapAt || st.Commit != tt.snapAt {
							t.Fatalf("Status = %+v", st)
						}
					}
					check(s)
					s = reopen(t, s, su.opts)
					check(s)
					// The log continues after the snapshot, not before.
					err := s.Write([]Update{{Entries: index(tt.snapAt + 2).terms(7)}}, false)
					errContains(t, err, nil, "gap")
					appendEnts(t, s, index(tt.snapAt-1).terms(7, 7, 7, 8)) // overlaps the snapshot
					checkLog(t, s, tt.snapAt, 7, 7, 8)
				})
			}
		})
	}
}

// Entries after a snapshot in the same update are appended after it.
func TestInstallSnapshotWithEntries(t *testing.T) {
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			s := newLog(t, su.opts, su.how, 3, 3, 4, 5)
			meta := snapMeta(10, 6, 1)
			writeSnapFile(t, s, meta, nil, nil)
			write(t, s, true, Update{
				Snapshot:  &raftpb.Snapshot{Metadata: meta},
				Entries:   index(9).terms(6, 6, 7, 7), // 9 and 10 are covered by the snapshot
				HardState: hardState(7, 1, 11),
			})
			checkLog(t, s, 10, 6, 7, 7)
			if c := s.HardState().GetCommit(); c != 11 {
				t.Fatalf("commit = %d, want 11", c)
			}
			s = reopen(t, s, su.opts)
			checkLog(t, s, 10, 6, 7, 7)
		})
	}
}

// A snapshot with index 0 (raft's empty snapshot) installs nothing.
func TestWriteEmptySnapshotIgnored(t *testing.T) {
	s := newLog(t, Options{}, "compact", 3, 3, 4, 5)
	write(t, s, false, Update{Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{}}})
	checkLog(t, s, 3, 3, 4, 5)
	if snap, _ := s.Snapshot(); snap.GetMetadata().GetIndex() != 0 {
		t.Fatalf("Snapshot() = %v after an empty snapshot", snap)
	}
}

// The store keeps its own HardState and snapshot metadata: a caller that
// reuses the values it passed to Write or SetSnapshot does not change what
// the store reports (only entries are documented as kept by reference).
func TestWriteDoesNotAliasCallerState(t *testing.T) {
	s := newLog(t, Options{}, "compact", 3, 3, 4, 5)
	hs := hardState(5, 1, 4)
	write(t, s, true, Update{HardState: hs})
	hs.Commit = new(uint64(999))
	hs.Term = new(uint64(999))
	if got := s.HardState(); !proto.Equal(got, hardState(5, 1, 4)) {
		t.Errorf("HardState() = %v after the caller reused its value", got)
	}

	meta := snapMeta(5, 5, 1, 2, 3)
	writeSnapFile(t, s, meta, nil, nil)
	if err := s.SetSnapshot(meta); err != nil {
		t.Fatal(err)
	}
	meta.ConfState.Voters = append(meta.ConfState.Voters[:0], 7)
	if _, cs, _ := s.InitialState(); !proto.Equal(cs, &raftpb.ConfState{Voters: []uint64{1, 2, 3}}) {
		t.Errorf("InitialState ConfState = %v after the caller reused its metadata", cs)
	}
}
