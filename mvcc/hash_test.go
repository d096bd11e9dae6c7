package mvcc

import (
	"bytes"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func hashKV(t *testing.T, e *env, rev int64) uint32 {
	t.Helper()
	h, cur, compact, err := e.s.HashKV(rev)
	if err != nil {
		t.Fatalf("HashKV(%d): %v", rev, err)
	}
	if cur != e.s.Rev() || compact != e.s.CompactRev() {
		t.Fatalf("HashKV(%d) reports revisions %d/%d, store is at %d/%d", rev, cur, compact, e.s.Rev(), e.s.CompactRev())
	}
	return h
}

func storeHash(t *testing.T, e *env) uint32 {
	t.Helper()
	h, err := e.s.Hash()
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return h
}

// TestHashKVSameOpsSameHash: stores fed the same requests hash alike at
// every revision, also across compactions made in different steps, and a
// store that stopped at revision R hashes like a longer one at R.
func TestHashKVSameOpsSameHash(t *testing.T) {
	a, b := newEnv(t, Options{}), newEnv(t, Options{})
	buildHistory(t, a, 7, 60)
	buildHistory(t, b, 7, 60)
	short := newEnv(t, Options{})
	buildHistory(t, short, 7, 30)
	if a.s.Rev() != b.s.Rev() || a.s.Rev() <= short.s.Rev() {
		t.Fatalf("revisions %d, %d, %d", a.s.Rev(), b.s.Rev(), short.s.Rev())
	}
	for rev := int64(1); rev <= a.s.Rev(); rev++ {
		if ha, hb := hashKV(t, a, rev), hashKV(t, b, rev); ha != hb {
			t.Fatalf("HashKV(%d): %x and %x for the same history", rev, ha, hb)
		}
	}
	if hashKV(t, a, 0) != hashKV(t, a, a.s.Rev()) {
		t.Fatal("HashKV(0) is not HashKV(current revision)")
	}
	if hs, ha := hashKV(t, short, 0), hashKV(t, a, short.s.Rev()); hs != ha {
		t.Fatalf("a store at revision %d hashes %x, a longer one at that revision %x", short.s.Rev(), hs, ha)
	}
	if storeHash(t, a) != storeHash(t, b) {
		t.Fatal("Hash differs for the same history")
	}

	// a compacts in two steps, b in one: the history from the compacted
	// revision on is the same, and so is HashKV.
	mid := a.s.Rev() / 3
	last := 2 * a.s.Rev() / 3
	if err := a.compact(mid); err != nil {
		t.Fatal(err)
	}
	if err := a.compact(last); err != nil {
		t.Fatal(err)
	}
	if err := b.compact(last); err != nil {
		t.Fatal(err)
	}
	for rev := last; rev <= a.s.Rev(); rev++ {
		if ha, hb := hashKV(t, a, rev), hashKV(t, b, rev); ha != hb {
			t.Fatalf("after compaction to %d, HashKV(%d): %x and %x", last, rev, ha, hb)
		}
	}
	// The applied index is not part of the history.
	c := newEnv(t, Options{})
	buildHistory(t, c, 7, 60)
	c.apply(c.nextIndex(), func(b *Batch) {}) // index only: no revision
	if err := c.compact(last); err != nil {
		t.Fatal(err)
	}
	if hashKV(t, c, last) != hashKV(t, b, last) {
		t.Fatal("same history, different applied index: HashKV differs")
	}
}

// TestHashKVDiffers: one different value, one extra delete, or one
// different lease changes the hash from the revision where they differ.
func TestHashKVDiffers(t *testing.T) {
	base := func() *env {
		e := newEnv(t, Options{})
		e.put("a", "1")
		e.put("b", "2")
		e.put("c", "3")
		return e
	}
	cases := map[string]func(e *env){
		"value": func(e *env) { e.put("d", "5") },
		"key":   func(e *env) { e.put("e", "4") },
		"lease": func(e *env) { e.put("d", "4", func(r *pb.PutRequest) { r.Lease = 9 }) },
		"delete": func(e *env) {
			e.del("a", "", false)
		},
	}
	for name, f := range cases {
		ref := base()
		ref.put("d", "4")
		e := base()
		if hashKV(t, e, 0) != hashKV(t, ref, 3+1) {
			t.Fatalf("%s: identical prefixes hash differently", name)
		}
		f(e)
		if e.s.Rev() != ref.s.Rev() {
			t.Fatalf("%s: revisions %d and %d", name, e.s.Rev(), ref.s.Rev())
		}
		if hashKV(t, e, 0) == hashKV(t, ref, 0) {
			t.Errorf("%s: different data, same HashKV %x", name, hashKV(t, e, 0))
		}
		if storeHash(t, e) == storeHash(t, ref) {
			t.Errorf("%s: different data, same Hash", name)
		}
		// Once the difference is at or below the compacted revision, the
		// values compaction keeps still tell the stores apart.
		for _, x := range []*env{e, ref} {
			x.put("z", "same")
			if err := x.compact(x.s.Rev()); err != nil {
				t.Fatal(err)
			}
		}
		if hashKV(t, e, 0) == hashKV(t, ref, 0) {
			t.Errorf("%s: different data below the compacted revision, same HashKV", name)
		}
	}
}

func TestHashKVErrors(t *testing.T) {
	e := newEnv(t, Options{})
	for i := 0; i < 10; i++ {
		e.put("k", "v")
	}
	if err := e.compact(5); err != nil {
		t.Fatal(err)
	}
	_, cur, compact, err := e.s.HashKV(4)
	requireErr(t, err, ErrCompacted, "requested 4", "compacted at 5")
	if cur != e.s.Rev() || compact != 5 {
		t.Fatalf("compacted error reports revisions %d/%d", cur, compact)
	}
	_, _, _, err = e.s.HashKV(e.s.Rev() + 1)
	requireErr(t, err, ErrFutureRev, "requested 12", "current 11")
	_, _, _, err = e.s.HashKV(-1)
	requireErr(t, err, ErrInvalidRevision, "-1")
	if _, _, _, err := e.s.HashKV(5); err != nil {
		t.Fatalf("HashKV at the compacted revision: %v", err)
	}
}

// TestHashIgnoresAppliedIndex: the applied index is the node's own; the
// revisions and every table count.
func TestHashIgnoresAppliedIndex(t *testing.T) {
	a, b := newEnv(t, Options{}), newEnv(t, Options{})
	buildHistory(t, a, 3, 40)
	buildHistory(t, b, 3, 40)
	b.apply(b.nextIndex()+5, func(*Batch) {})
	if a.s.AppliedIndex() == b.s.AppliedIndex() {
		t.Fatal("the applied indexes should differ")
	}
	if storeHash(t, a) != storeHash(t, b) {
		t.Fatal("Hash depends on the applied index")
	}
	// A record of another table (the lease table) counts.
	b.apply(b.nextIndex(), func(bt *Batch) {
		if err := bt.Set([]byte{keyspacePrefix, 'L', 1}, []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	})
	if storeHash(t, a) == storeHash(t, b) {
		t.Fatal("Hash ignores a foreign table")
	}
	if hashKV(t, a, 0) != hashKV(t, b, 0) {
		t.Fatal("HashKV covers a foreign table")
	}
}

// TestHashSurvivesSnapshotAndRestart: a store restored from a snapshot, or
// reopened, hashes as the original.
func TestHashSurvivesSnapshotAndRestart(t *testing.T) {
	src := newEnv(t, Options{})
	buildHistory(t, src, 5, 80)
	if err := src.compact(src.s.Rev() / 2); err != nil {
		t.Fatal(err)
	}
	wantKV, want := hashKV(t, src, 0), storeHash(t, src)
	data, sn := snapshotBytes(t, src.s)
	sn.Release()
	dst := newEnv(t, Options{})
	if err := dst.s.Restore(bytes.NewReader(data), 1234); err != nil {
		t.Fatal(err)
	}
	if hashKV(t, dst, 0) != wantKV || storeHash(t, dst) != want {
		t.Fatal("a restored store hashes differently")
	}
	src.restart()
	if hashKV(t, src, 0) != wantKV || storeHash(t, src) != want {
		t.Fatal("a reopened store hashes differently")
	}
}

// TestVerifySnapshot: a good stream passes and reports its revisions; a
// flipped byte, a truncated stream or trailing bytes are refused.
func TestVerifySnapshot(t *testing.T) {
	src := newEnv(t, Options{})
	buildHistory(t, src, 2, 30)
	data, sn := snapshotBytes(t, src.s)
	sn.Release()
	info, err := VerifySnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if info.Rev != src.s.Rev() || info.AppliedIndex != src.s.AppliedIndex() || info.Records < 2 {
		t.Fatalf("info %+v", info)
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x40
	_, err = VerifySnapshot(bytes.NewReader(flipped))
	requireErr(t, err, ErrBadSnapshot)
	_, err = VerifySnapshot(bytes.NewReader(data[:len(data)-3]))
	requireErr(t, err, ErrBadSnapshot, "truncated")
	_, err = VerifySnapshot(bytes.NewReader(append(bytes.Clone(data), 0)))
	requireErr(t, err, ErrBadSnapshot, "trailing")
}
