package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

// TestMain fails the package if a test leaves a goroutine behind (Pebble's
// background work included: every Store a test opens must be closed).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// index(i).terms(t...) builds entries i, i+1, … with the given terms, as
// etcd raft's storage tests do. Each entry's data names its index and term, so
// an entry read back can be checked on its own.
type index uint64

func (i index) terms(terms ...uint64) []*raftpb.Entry {
	out := make([]*raftpb.Entry, 0, len(terms))
	for k, t := range terms {
		idx := uint64(i) + uint64(k)
		out = append(out, entry(idx, t, fmt.Sprintf("%d/%d", idx, t)))
	}
	return out
}

func entry(idx, term uint64, data string) *raftpb.Entry {
	e := &raftpb.Entry{Index: new(idx), Term: new(term)}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

func snapMeta(idx, term uint64, voters ...uint64) *raftpb.SnapshotMetadata {
	return &raftpb.SnapshotMetadata{Index: new(idx), Term: new(term), ConfState: &raftpb.ConfState{Voters: voters}}
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: new(term), Vote: new(vote), Commit: new(commit)}
}

// cloneEntries deep-copies ents: a Store keeps the entries it was given, so
// tests never hand the same values to two stores or to a model.
func cloneEntries(ents []*raftpb.Entry) []*raftpb.Entry {
	out := make([]*raftpb.Entry, len(ents))
	for i, e := range ents {
		out[i] = proto.CloneOf(e)
	}
	return out
}

// openStore opens dir and closes the store when the test ends, unless the
// test closed it itself (closeStore).
func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { closeStore(t, s) })
	return s
}

// closed records the stores a test has already closed, so that the cleanup
// registered by openStore does not close them twice (Pebble panics on that).
var closed struct {
	sync.Mutex
	m map[*Store]bool
}

func closeStore(t testing.TB, s *Store) {
	t.Helper()
	closed.Lock()
	done := closed.m[s]
	if closed.m == nil {
		closed.m = map[*Store]bool{}
	}
	closed.m[s] = true
	closed.Unlock()
	if done {
		return
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// reopen closes s and opens its directory again with the same options.
func reopen(t testing.TB, s *Store, opts Options) *Store {
	t.Helper()
	closeStore(t, s)
	return openStore(t, s.Dir(), opts)
}

func write(t testing.TB, s *Store, sync bool, updates ...Update) {
	t.Helper()
	if err := s.Write(updates, sync); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func appendEnts(t testing.TB, s *Store, ents []*raftpb.Entry) {
	t.Helper()
	write(t, s, false, Update{Entries: ents})
}

// newLog returns a store whose log matches etcd's MemoryStorage{ents:
// index(first).terms(terms...)}: terms[0] is the term of the compaction point
// first, and the remaining terms are entries first+1, …. how chooses whether
// the compaction point comes from Compact or from an installed snapshot.
func newLog(t testing.TB, opts Options, how string, first uint64, terms ...uint64) *Store {
	t.Helper()
	s := openStore(t, t.TempDir(), opts)
	switch how {
	case "compact":
		var pre []uint64
		for i := uint64(1); i <= first; i++ {
			pre = append(pre, min(i, terms[0]))
		}
		appendEnts(t, s, index(1).terms(pre...))
		if err := s.Compact(first); err != nil {
			t.Fatalf("Compact(%d): %v", first, err)
		}
	case "snapshot":
		writeSnapFile(t, s, snapMeta(first, terms[0], 1), nil, []byte("sm"))
		write(t, s, false, Update{Snapshot: &raftpb.Snapshot{Metadata: snapMeta(first, terms[0], 1)}})
	default:
		t.Fatalf("newLog: unknown setup %q", how)
	}
	if len(terms) > 1 {
		appendEnts(t, s, index(first+1).terms(terms[1:]...))
	}
	return s
}

// setups are the ways tests build the same log: the compaction point made by
// Compact or by a snapshot, and the reads served from the cache or, with a
// one-entry cache, from Pebble.
var setups = []struct {
	name string
	how  string
	opts Options
}{
	{"compact/cached", "compact", Options{}},
	{"compact/pebble", "compact", Options{CacheEntries: 1}},
	{"snapshot/cached", "snapshot", Options{}},
	{"snapshot/pebble", "snapshot", Options{CacheEntries: 1}},
}

// writeSnapFile writes a complete snapshot file for meta into s's snapshot
// directory and returns its path.
func writeSnapFile(t testing.TB, s *Store, meta *raftpb.SnapshotMetadata, ctx, data []byte) string {
	t.Helper()
	w, err := s.CreateSnapshot(meta, ctx)
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("SnapshotWriter.Write: %v", err)
	}
	if err := w.Finish(); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	return s.snaps.path(meta.GetTerm(), meta.GetIndex())
}

// logView is the whole log of a store: the compaction point and every entry.
type logView struct {
	first, last uint64
	truncTerm   uint64
	ents        []*raftpb.Entry
}

func readLog(t testing.TB, s *Store) logView {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	tt, err := s.Term(first - 1)
	if err != nil {
		t.Fatalf("Term(%d) (compaction point): %v", first-1, err)
	}
	ents, err := s.Entries(first, last+1, noLimit)
	if err != nil {
		t.Fatalf("Entries(%d, %d): %v", first, last+1, err)
	}
	return logView{first: first, last: last, truncTerm: tt, ents: ents}
}

const noLimit = ^uint64(0)

// checkLog asserts that s holds exactly index(first-1).terms(terms...): the
// compaction point at first-1 with terms[0], then the entries, through
// FirstIndex, LastIndex, Term and Entries.
func checkLog(t testing.TB, s *Store, truncIdx uint64, terms ...uint64) {
	t.Helper()
	got := readLog(t, s)
	want := index(truncIdx + 1).terms(terms[1:]...)
	if got.first != truncIdx+1 || got.last != truncIdx+uint64(len(terms)-1) || got.truncTerm != terms[0] {
		t.Fatalf("log bounds: first %d last %d term(first-1) %d; want first %d last %d term %d",
			got.first, got.last, got.truncTerm, truncIdx+1, truncIdx+uint64(len(terms)-1), terms[0])
	}
	requireEntries(t, got.ents, want)
	for i, e := range want {
		if tm, err := s.Term(e.GetIndex()); err != nil || tm != e.GetTerm() {
			t.Fatalf("Term(%d) = %d, %v; want %d (entry %d of %d)", e.GetIndex(), tm, err, e.GetTerm(), i, len(want))
		}
	}
	if _, err := s.Term(truncIdx + uint64(len(terms))); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term(last+1): %v, want ErrUnavailable", err)
	}
	if truncIdx > 0 {
		if _, err := s.Term(truncIdx - 1); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("Term(%d) below the compaction point: %v, want ErrCompacted", truncIdx-1, err)
		}
	}
}

func requireEntries(t testing.TB, got, want []*raftpb.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries %s, want %d %s", len(got), fmtEnts(got), len(want), fmtEnts(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("entry %d: got %s, want %s", i, fmtEnts(got), fmtEnts(want))
		}
	}
}

func fmtEnts(ents []*raftpb.Entry) string {
	var b strings.Builder
	b.WriteString("[")
	for i, e := range ents {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d/%d", e.GetIndex(), e.GetTerm())
	}
	b.WriteString("]")
	return b.String()
}

// errContains asserts err wraps target and its text holds every part.
func errContains(t testing.TB, err, target error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one wrapping %v", target)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("error %q does not wrap %q", err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func snapDirNames(t testing.TB, s *Store) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(s.Dir(), "snap"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func readAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
