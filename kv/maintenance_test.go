package kv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestSizeAndDefragment: Size reports the Pebble instance, inUse never
// above total; once compaction made most of the history garbage,
// Defragment brings the live size down and leaves the data as it was.
func TestSizeAndDefragment(t *testing.T) {
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(1, 2))
	value := make([]byte, 1024)
	for i := 0; i < 2000; i++ {
		for j := range value {
			value[j] = byte(rng.Uint32())
		}
		e.put(fmt.Sprintf("key%d", i%10), string(value))
	}
	if err := e.db.Flush(); err != nil {
		t.Fatal(err)
	}
	total, inUse := e.sm.Size()
	if total < 2000*1024 || inUse < 2000*1024 || inUse > total {
		t.Fatalf("Size with 2 MB of history: total %d, in use %d", total, inUse)
	}
	want := e.get("key3")
	e.must(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: e.sm.Store().Rev()}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.sm.Defragment(ctx); err != nil {
		t.Fatalf("Defragment: %v", err)
	}
	total2, inUse2 := e.sm.Size()
	if inUse2 > inUse/10 || inUse2 > total2 {
		t.Fatalf("after compacting the history and defragmenting: total %d, in use %d (before %d, %d)", total2, inUse2, total, inUse)
	}
	if e.get("key3") != want || e.sm.Store().Rev() != 2001 {
		t.Fatal("defragment changed the data")
	}
}
