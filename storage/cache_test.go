package storage

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func cacheIndexes(c *entryCache) []uint64 {
	var out []uint64
	for i, e := range c.ents {
		if e.GetIndex() != c.first+uint64(i) {
			return append(out, 0) // a misplaced entry shows as 0
		}
		out = append(out, e.GetIndex())
	}
	return out
}

func TestEntryCache(t *testing.T) {
	type op struct {
		name string
		do   func(c *entryCache)
	}
	app := func(i uint64, terms ...uint64) op {
		return op{"append", func(c *entryCache) { c.append(index(i).terms(terms...)) }}
	}
	tests := []struct {
		name       string
		maxEntries int
		ops        []op
		want       []uint64 // cached indexes
		wantTerm   map[uint64]uint64
	}{
		{"empty append", 8, []op{app(5)}, nil, nil},
		{"contiguous", 8, []op{app(5, 1, 1), app(7, 1)}, []uint64{5, 6, 7}, nil},
		{"count bound keeps newest", 3, []op{app(1, 1, 1, 1, 1, 1)}, []uint64{3, 4, 5}, nil},
		{"overwrite suffix", 8, []op{app(1, 1, 1, 1, 1), app(3, 2)}, []uint64{1, 2, 3}, map[uint64]uint64{3: 2, 2: 1}},
		{"overwrite from first", 8, []op{app(3, 1, 1, 1), app(3, 2)}, []uint64{3}, map[uint64]uint64{3: 2}},
		{"overwrite before first", 8, []op{app(3, 1, 1, 1), app(2, 2, 2)}, []uint64{2, 3}, map[uint64]uint64{2: 2, 3: 2}},
		{"gap restarts", 8, []op{app(1, 1, 1), app(5, 1)}, []uint64{5}, nil},
		{"dropBefore", 8, []op{app(1, 1, 1, 1, 1), {"dropBefore", func(c *entryCache) { c.dropBefore(3) }}}, []uint64{3, 4}, nil},
		{"dropBefore all", 8, []op{app(1, 1, 1), {"dropBefore", func(c *entryCache) { c.dropBefore(10) }}, app(4, 1)}, []uint64{4}, nil},
		{"truncateFrom", 8, []op{app(1, 1, 1, 1), {"truncateFrom", func(c *entryCache) { c.truncateFrom(3) }}}, []uint64{1, 2}, nil},
		{"truncateFrom past end", 8, []op{app(1, 1, 1), {"truncateFrom", func(c *entryCache) { c.truncateFrom(9) }}}, []uint64{1, 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newEntryCache(tt.maxEntries, 1<<20)
			for _, o := range tt.ops {
				o.do(c)
				if len(c.ents) > c.maxEntries {
					t.Fatalf("after %s: %d entries, limit %d", o.name, len(c.ents), c.maxEntries)
				}
			}
			got := cacheIndexes(c)
			if len(got) != len(tt.want) {
				t.Fatalf("cached %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("cached %v, want %v", got, tt.want)
				}
			}
			for i, term := range tt.wantTerm {
				if e := c.get(i); e.GetTerm() != term {
					t.Fatalf("get(%d) = %v, want term %d", i, e, term)
				}
			}
			sum := 0
			for _, e := range c.ents {
				sum += entrySize(e)
			}
			if sum != c.bytes {
				t.Fatalf("bytes = %d, entries hold %d", c.bytes, sum)
			}
		})
	}
}

func TestEntryCacheGetHas(t *testing.T) {
	c := newEntryCache(8, 1<<20)
	if c.get(0) != nil || c.has(0, 0) || c.has(1, 1) {
		t.Fatal("empty cache claims entries")
	}
	c.append(index(5).terms(1, 1, 1)) // 5, 6, 7
	for i, want := range map[uint64]bool{4: false, 5: true, 7: true, 8: false} {
		if got := c.get(i) != nil; got != want {
			t.Errorf("get(%d) present = %v, want %v", i, got, want)
		}
	}
	for _, tt := range []struct {
		lo, hi uint64
		want   bool
	}{{5, 8, true}, {5, 5, true}, {6, 7, true}, {4, 6, false}, {5, 9, false}, {8, 8, true}} {
		if got := c.has(tt.lo, tt.hi); got != tt.want {
			t.Errorf("has(%d, %d) = %v, want %v", tt.lo, tt.hi, got, tt.want)
		}
	}
}

// The backing array does not grow with the number of entries that passed
// through the cache: memory stays proportional to the bound.
func TestEntryCacheBackingArrayBounded(t *testing.T) {
	c := newEntryCache(16, 1<<30)
	for i := uint64(1); i <= 100_000; i++ {
		c.append([]*raftpb.Entry{entry(i, 1, "")})
		if cap(c.ents) > 64 {
			t.Fatalf("after %d appends the backing array holds %d slots for %d entries", i, cap(c.ents), len(c.ents))
		}
	}
}
