package mvcc

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestMemoryDoesNotGrowWithKeys: with Pebble's memtable and cache bounded,
// the Go heap after 120,000 keys is within a few MB of the heap after
// 20,000. Any per-key structure in memory (an index like etcd's treeIndex
// costs well over 100 bytes per key) would add 10+ MB for the 100,000 keys
// in between.
func TestMemoryDoesNotGrowWithKeys(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("writes 120,000 keys; heap figures mean nothing under the race detector")
	}
	cache := pebble.NewCache(1 << 20)
	defer cache.Unref()
	db, err := pebble.Open(t.TempDir(), &pebble.Options{
		Cache:        cache,
		MemTableSize: 1 << 20,
		Logger:       quietLogger{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 64)
	idx := uint64(0)
	write := func(from, to int) {
		for i := from; i < to; {
			b := s.NewBatch()
			for end := min(i+500, to); i < end; i++ {
				if _, err := b.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "key-%08d", i), Value: value}); err != nil {
					t.Fatal(err)
				}
			}
			idx++
			if _, err := b.Commit(idx); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	write(0, 20000)
	base := heap()
	write(20000, 120000)
	after := heap()
	t.Logf("heap after 20,000 keys: %.1f MB; after 120,000: %.1f MB", float64(base)/(1<<20), float64(after)/(1<<20))
	if after > base+4<<20 {
		t.Fatalf("heap grew by %.1f MB for 100,000 more keys", float64(after-base)/(1<<20))
	}
	resp, err := s.Range(&pb.RangeRequest{Key: []byte("key-"), RangeEnd: []byte("key."), CountOnly: true})
	if err != nil || resp.Count != 120000 {
		t.Fatalf("count: %v %v", resp, err)
	}
}
