package storage

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

const (
	benchBatch     = 64
	benchEntrySize = 256
)

// benchEntries returns n entries from index at, sharing one payload (a Store
// never modifies the entries it keeps).
func benchEntries(at uint64, n int, payload []byte) []*raftpb.Entry {
	ents := make([]*raftpb.Entry, n)
	for i := range ents {
		ents[i] = &raftpb.Entry{Index: new(at + uint64(i)), Term: new(uint64(1)), Data: payload}
	}
	return ents
}

// BenchmarkWrite appends batches of 64 entries of 256 bytes with a HardState,
// as the log writer does for each MsgStorageAppend.
//
//	go test ./storage/ -run '^$' -bench BenchmarkWrite -benchtime 2s
func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct {
		name string
		sync bool
	}{{"sync", true}, {"nosync", false}} {
		b.Run(bc.name, func(b *testing.B) {
			s := openStore(b, b.TempDir(), Options{})
			payload := pattern(benchEntrySize)
			next := uint64(1)
			b.SetBytes(benchBatch * benchEntrySize)
			b.ReportAllocs()
			for b.Loop() {
				u := Update{Entries: benchEntries(next, benchBatch, payload), HardState: hardState(1, 1, next-1)}
				if err := s.Write([]Update{u}, bc.sync); err != nil {
					b.Fatal(err)
				}
				next += benchBatch
			}
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkEntriesCached reads 64-entry ranges that the cache holds, as raft
// does to replicate to followers that keep up.
func BenchmarkEntriesCached(b *testing.B) {
	benchEntriesRead(b, Options{})
}

// BenchmarkEntriesPebble reads the same ranges with a one-entry cache, so
// every read goes to Pebble (a follower catching up).
func BenchmarkEntriesPebble(b *testing.B) {
	benchEntriesRead(b, Options{CacheEntries: 1})
}

func benchEntriesRead(b *testing.B, opts Options) {
	const n = 4096
	s := openStore(b, b.TempDir(), opts)
	payload := pattern(benchEntrySize)
	for at := uint64(1); at <= n; at += benchBatch {
		if err := s.Write([]Update{{Entries: benchEntries(at, benchBatch, payload)}}, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	lo := uint64(1)
	for b.Loop() {
		ents, err := s.Entries(lo, lo+benchBatch, noLimit)
		if err != nil || len(ents) != benchBatch {
			b.Fatalf("Entries(%d, %d) = %d entries, %v", lo, lo+benchBatch, len(ents), err)
		}
		lo += benchBatch
		if lo+benchBatch > n+1 {
			lo = 1
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "entries/s")
}
