package mvcc

import (
	"fmt"
	"os"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Benchmarks run on disk (a temporary directory), commits without fsync as
// in production: go test -run XXX -bench . -benchmem ./mvcc/
//
// CAIRN_MVCC_BENCH_DEFAULT=1 uses Pebble's default options (8 MB block
// cache, no bloom filters) instead of a 256 MB cache and 10-bit bloom
// filters, which is what a node should run with.

func benchEnv(b *testing.B) *env {
	b.Helper()
	if os.Getenv("CAIRN_MVCC_BENCH_DEFAULT") != "" {
		return newDiskEnv(b, Options{})
	}
	e := &env{t: b, fs: vfs.Default, dir: b.TempDir()}
	o := &pebble.Options{CacheSize: 256 << 20, Logger: quietLogger{}}
	o.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	db, err := pebble.Open(e.dir, o)
	if err != nil {
		b.Fatal(err)
	}
	e.db = db
	if e.s, err = Open(db, Options{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.close)
	return e
}

// BenchmarkPut: puts of 128-byte values to distinct keys, 64 per commit.
func BenchmarkPut(b *testing.B) {
	e := benchEnv(b)
	value := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	idx := uint64(0)
	for i := 0; i < b.N; {
		batch := e.s.NewBatch()
		for end := min(i+64, b.N); i < end; i++ {
			if _, err := batch.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "key-%010d", i), Value: value}); err != nil {
				b.Fatal(err)
			}
		}
		idx++
		if _, err := batch.Commit(idx); err != nil {
			b.Fatal(err)
		}
	}
}

// preload writes n keys named by name(i), 512 per commit.
func preload(b *testing.B, e *env, n int, name func(i int) []byte) {
	value := make([]byte, 128)
	for i := 0; i < n; {
		batch := e.s.NewBatch()
		for end := min(i+512, n); i < end; i++ {
			if _, err := batch.Put(&pb.PutRequest{Key: name(i), Value: value}); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := batch.Commit(e.nextIndex()); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.db.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRangeSingleKey: Range of one key at the current revision among
// 100,000.
func BenchmarkRangeSingleKey(b *testing.B) {
	e := benchEnv(b)
	const n = 100000
	name := func(i int) []byte { return fmt.Appendf(nil, "key-%010d", i) }
	preload(b, e, n, name)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := e.s.Range(&pb.RangeRequest{Key: name((i * 7919) % n)})
		if err != nil || len(resp.Kvs) != 1 {
			b.Fatal(resp, err)
		}
	}
}

// BenchmarkRangePrefix100: Range of a 100-key prefix among 100,000 keys.
func BenchmarkRangePrefix100(b *testing.B) {
	e := benchEnv(b)
	const prefixes = 1000
	preload(b, e, prefixes*100, func(i int) []byte { return fmt.Appendf(nil, "p%04d/%03d", i/100, i%100) })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := fmt.Appendf(nil, "p%04d/", (i*7919)%prefixes)
		resp, err := e.s.Range(&pb.RangeRequest{Key: p, RangeEnd: prefixEnd(p)})
		if err != nil || len(resp.Kvs) != 100 {
			b.Fatal(resp, err)
		}
	}
}

// BenchmarkTxnCAS: compare-and-swap txns (mod revision = expected, then
// put, else get) on distinct keys, 64 per commit.
func BenchmarkTxnCAS(b *testing.B) {
	e := benchEnv(b)
	const n = 10000
	name := func(i int) []byte { return fmt.Appendf(nil, "key-%010d", i) }
	preload(b, e, n, name)
	mods := make([]int64, n)
	for i := range mods {
		mods[i] = int64(2 + i) // preload wrote key i at revision 2+i
	}
	value := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		batch := e.s.NewBatch()
		for end := min(i+64, b.N); i < end; i++ {
			k := i % n
			resp, err := batch.Txn(&pb.TxnRequest{
				Compare: []*pb.Compare{{Key: name(k), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: mods[k]}}},
				Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: name(k), Value: value}}}},
				Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: name(k)}}}},
			})
			if err != nil || !resp.Succeeded {
				b.Fatal(resp, err)
			}
			mods[k] = resp.Header.Revision
		}
		if _, err := batch.Commit(e.nextIndex()); err != nil {
			b.Fatal(err)
		}
	}
}
