package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestModel drives random histories of appends (with conflicts), compactions,
// snapshot installs and restarts through two stores, one whose cache holds
// the whole tail of the log and one whose cache holds four entries, and
// through raft's MemoryStorage as the reference. After every step every read
// must give the model's answer, so the cache and Pebble agree with each other
// and with raft's own implementation, and the small cache never grows past
// its bound.
func TestModel(t *testing.T) {
	seeds := uint64(4)
	if testing.Short() {
		seeds = 1
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			runModel(t, seed, 1000, 150)
		})
	}
}

type modelRun struct {
	t       *testing.T
	rng     *rand.Rand
	model   *raft.MemoryStorage
	stores  []*Store
	opts    []Options
	term    uint64 // current term: every new entry gets it, so terms never decrease
	modelSn uint64 // index of the model's latest snapshot
}

func runModel(t *testing.T, seed uint64, initial, steps int) {
	m := &modelRun{
		t:     t,
		rng:   rand.New(rand.NewPCG(seed, 0xca1e)),
		model: raft.NewMemoryStorage(),
		opts:  []Options{{}, {CacheEntries: 4}},
		term:  1,
	}
	for _, o := range m.opts {
		m.stores = append(m.stores, openStore(t, t.TempDir(), o))
	}
	for m.last() < uint64(initial) {
		m.appendAt(m.last()+1, 1+m.rng.IntN(64))
	}
	m.check(true)
	for step := range steps {
		switch r := m.rng.IntN(100); {
		case r < 55:
			m.appendAt(m.last()+1, 1+m.rng.IntN(32))
		case r < 75: // a conflict: a new leader overwrites a suffix
			first, _ := m.model.FirstIndex()
			lo := max(first, m.last()-uint64(min(m.last(), 40)))
			at := lo + m.rng.Uint64N(m.last()-lo+2)
			m.term++
			m.appendAt(at, 1+m.rng.IntN(8))
		case r < 90:
			m.compact()
		case r < 95:
			m.installSnapshot()
		default:
			for i := range m.stores {
				m.stores[i] = reopen(t, m.stores[i], m.opts[i])
			}
		}
		m.check(step%25 == 0)
	}
	m.check(true)
}

func (m *modelRun) last() uint64 {
	l, _ := m.model.LastIndex()
	return l
}

func (m *modelRun) appendAt(at uint64, n int) {
	ents := make([]*raftpb.Entry, n)
	for i := range ents {
		data := make([]byte, m.rng.IntN(300))
		for j := range data {
			data[j] = byte(m.rng.Uint32())
		}
		ents[i] = &raftpb.Entry{Index: new(at + uint64(i)), Term: new(m.term), Data: data}
		if m.rng.IntN(10) == 0 {
			ents[i].Type = new(raftpb.EntryType_EntryConfChange)
		}
	}
	if err := m.model.Append(cloneEntries(ents)); err != nil {
		m.t.Fatalf("model Append: %v", err)
	}
	for _, s := range m.stores {
		write(m.t, s, m.rng.IntN(4) == 0, Update{Entries: cloneEntries(ents), HardState: hardState(m.term, 1, 0)})
	}
}

func (m *modelRun) compact() {
	first, _ := m.model.FirstIndex()
	if first > m.last() {
		return
	}
	i := first + m.rng.Uint64N(min(m.last()-first+1, 100))
	if err := m.model.Compact(i); err != nil {
		m.t.Fatalf("model Compact(%d): %v", i, err)
	}
	for _, s := range m.stores {
		if err := s.Compact(i); err != nil {
			m.t.Fatalf("Compact(%d): %v", i, err)
		}
	}
}

func (m *modelRun) installSnapshot() {
	first, _ := m.model.FirstIndex()
	idx := max(first, m.modelSn+1) + m.rng.Uint64N(m.last()+10-first)
	m.term++
	meta := snapMeta(idx, m.term, 1, 2, 3)
	if err := m.model.ApplySnapshot(&raftpb.Snapshot{Metadata: proto.CloneOf(meta)}); err != nil {
		m.t.Fatalf("model ApplySnapshot(%d): %v", idx, err)
	}
	m.modelSn = idx
	for _, s := range m.stores {
		writeSnapFile(m.t, s, meta, nil, []byte("state"))
		write(m.t, s, true, Update{Snapshot: &raftpb.Snapshot{Metadata: proto.CloneOf(meta)}})
	}
}

// check compares every store with the model: bounds, a sample of Term and
// Entries calls (or all of them when full), and the cache's invariants.
func (m *modelRun) check(full bool) {
	t := m.t
	t.Helper()
	wfirst, _ := m.model.FirstIndex()
	wlast, _ := m.model.LastIndex()
	for si, s := range m.stores {
		name := fmt.Sprintf("store %d (%+v)", si, m.opts[si])
		checkCache(t, s)
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if first != wfirst || last != wlast {
			t.Fatalf("%s: bounds [%d, %d], model [%d, %d]", name, first, last, wfirst, wlast)
		}
		lo := wfirst - min(wfirst, 2)
		terms := func(i uint64) {
			got, err := s.Term(i)
			want, werr := m.model.Term(i)
			if got != want || !errors.Is(err, werr) || (werr == nil) != (err == nil) {
				t.Fatalf("%s: Term(%d) = %d, %v; model %d, %v", name, i, got, err, want, werr)
			}
		}
		if full {
			for i := lo; i <= wlast+2; i++ {
				terms(i)
			}
			m.entries(name, s, wfirst, wlast+1, noLimit)
		} else {
			for range 8 {
				terms(lo + m.rng.Uint64N(wlast+3-lo))
			}
		}
		for range 12 {
			a := lo + m.rng.Uint64N(wlast+2-lo)
			b := a + m.rng.Uint64N(min(wlast+2-a, 200))
			var maxSize uint64
			switch m.rng.IntN(4) {
			case 0:
				maxSize = 0
			case 1:
				maxSize = noLimit
			default:
				maxSize = m.rng.Uint64N(8 << 10)
			}
			m.entries(name, s, a, b, maxSize)
		}
	}
}

func (m *modelRun) entries(name string, s *Store, lo, hi, maxSize uint64) {
	t := m.t
	t.Helper()
	got, err := s.Entries(lo, hi, maxSize)
	first, _ := m.model.FirstIndex()
	last, _ := m.model.LastIndex()
	switch {
	case lo < first:
		if !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("%s: Entries(%d, %d) below first %d: %s, %v; want ErrCompacted", name, lo, hi, first, fmtEnts(got), err)
		}
	case hi > last+1:
		if !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("%s: Entries(%d, %d) beyond last %d: %s, %v; want ErrUnavailable", name, lo, hi, last, fmtEnts(got), err)
		}
	case lo == hi:
		// MemoryStorage says ErrUnavailable for an empty range of an empty
		// log; raft.Storage asks for no entries and no error.
		if err != nil || len(got) != 0 {
			t.Fatalf("%s: Entries(%d, %d) = %s, %v; want none", name, lo, hi, fmtEnts(got), err)
		}
	default:
		want, werr := m.model.Entries(lo, hi, maxSize)
		if werr != nil {
			t.Fatalf("model Entries(%d, %d, %d): %v", lo, hi, maxSize, werr)
		}
		if err != nil {
			t.Fatalf("%s: Entries(%d, %d, %d): %v", name, lo, hi, maxSize, err)
		}
		requireEntries(t, got, want)
	}
}

// checkCache asserts the cache's invariants: at most CacheEntries entries,
// its byte count exact and within bound (one oversized entry excepted), a
// contiguous run ending at the last index, and the same entries as Pebble.
func checkCache(t testing.TB, s *Store) {
	t.Helper()
	s.mu.Lock()
	c := s.mu.cache
	n, first, bytes := len(c.ents), c.first, c.bytes
	ents := append([]*raftpb.Entry(nil), c.ents...)
	truncIdx, last := s.mu.truncIdx, s.mu.last
	s.mu.Unlock()
	if n > c.maxEntries {
		t.Fatalf("cache holds %d entries, limit %d", n, c.maxEntries)
	}
	sum := 0
	for _, e := range ents {
		sum += entrySize(e)
	}
	if sum != bytes {
		t.Fatalf("cache counts %d bytes, its entries hold %d", bytes, sum)
	}
	if bytes > c.maxBytes && n > 1 {
		t.Fatalf("cache holds %d bytes in %d entries, limit %d", bytes, n, c.maxBytes)
	}
	if n == 0 {
		return
	}
	if first <= truncIdx || first+uint64(n)-1 != last {
		t.Fatalf("cache holds [%d, %d], log is (%d, %d]", first, first+uint64(n)-1, truncIdx, last)
	}
	disk, err := s.readEntries(first, last+1, noLimit)
	if err != nil {
		t.Fatalf("read [%d, %d] from Pebble: %v", first, last, err)
	}
	requireEntries(t, ents, disk)
}

func TestCacheBoundOnLongLog(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{CacheEntries: 4})
	for i := uint64(1); i <= 1000; i += 10 {
		appendEnts(t, s, index(i).terms(1, 1, 1, 1, 1, 1, 1, 1, 1, 1))
		checkCache(t, s)
	}
	s.mu.Lock()
	n, first := len(s.mu.cache.ents), s.mu.cache.first
	s.mu.Unlock()
	if n != 4 || first != 997 {
		t.Fatalf("cache holds %d entries from %d, want 4 from 997", n, first)
	}
	// Reads of old entries come from Pebble and leave the cache alone.
	got, err := s.Entries(1, 1001, noLimit)
	if err != nil {
		t.Fatal(err)
	}
	requireEntries(t, got, index(1).terms(repeat(1, 1000)...))
	checkCache(t, s)
	// So does a restart: the cache is filled with the tail only.
	s = reopen(t, s, Options{CacheEntries: 4})
	checkCache(t, s)
	s.mu.Lock()
	n = len(s.mu.cache.ents)
	s.mu.Unlock()
	if n != 4 {
		t.Fatalf("cache holds %d entries after restart, want 4", n)
	}
}

// The byte bound holds too, and an entry larger than it is still cached
// alone, so the newest entry is always served from memory.
func TestCacheByteBound(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{CacheEntries: 1000, CacheBytes: 1000})
	for i := uint64(1); i <= 100; i++ {
		appendEnts(t, s, []*raftpb.Entry{{Index: new(i), Term: new(uint64(1)), Data: make([]byte, 100)}})
		checkCache(t, s)
	}
	s.mu.Lock()
	n := len(s.mu.cache.ents)
	s.mu.Unlock()
	if n != 1000/124 {
		t.Fatalf("cache holds %d entries of 124 bytes within 1000 bytes, want %d", n, 1000/124)
	}
	appendEnts(t, s, []*raftpb.Entry{{Index: new(uint64(101)), Term: new(uint64(1)), Data: make([]byte, 5000)}})
	checkCache(t, s)
	if e := func() *raftpb.Entry { s.mu.Lock(); defer s.mu.Unlock(); return s.mu.cache.get(101) }(); e == nil {
		t.Fatal("oversized newest entry not cached")
	}
}

func repeat(v uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = v
	}
	return out
}
