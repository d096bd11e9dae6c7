package mvcc

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestKeyRevOrder: per-key history keys sort by user key first (in the user
// keys' own byte order, whatever bytes they hold), then by revision, and
// parse back.
func TestKeyRevOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 0x01, 0x02, 'a', 0xfe, 0xff}
	randKey := func() []byte {
		k := make([]byte, 1+rng.IntN(4))
		for i := range k {
			k[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return k
	}
	for range 20000 {
		a, b := randKey(), randKey()
		ra, rb := rng.Int64N(1<<40), rng.Int64N(1<<40)
		sa, sb := rng.Int64N(3), rng.Int64N(3)
		ka, kb := keyRevKey(a, ra, sa), keyRevKey(b, rb, sb)
		want := bytes.Compare(a, b)
		if want == 0 {
			want = cmpInt(ra, rb)
			if want == 0 {
				want = cmpInt(sa, sb)
			}
		}
		if got := bytes.Compare(ka, kb); got != want {
			t.Fatalf("order of (%q,%d,%d) and (%q,%d,%d): %d, want %d", a, ra, sa, b, rb, sb, got, want)
		}
		// Every entry of a sorts below keyRevAfter(a), which sorts below
		// every entry of a greater key.
		if bytes.Compare(ka, keyRevAfter(a)) >= 0 {
			t.Fatalf("%q: entry not below keyRevAfter", a)
		}
		if bytes.Compare(a, b) < 0 && bytes.Compare(keyRevAfter(a), kb) > 0 {
			t.Fatalf("keyRevAfter(%q) above an entry of %q", a, b)
		}
		user, main, sub, ok := parseKeyRevKey(ka)
		if !ok || !bytes.Equal(user, a) || main != ra || sub != sa {
			t.Fatalf("parse(%x) = %q %d %d %v", ka, user, main, sub, ok)
		}
	}
	for _, bad := range [][]byte{nil, {keyspacePrefix, tagKeyRev}, append(keyRevPrefix([]byte("a")), 1, 2, 3), {keyspacePrefix, tagKeyRev, 0x00, 0x05, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, _, _, ok := parseKeyRevKey(bad); ok {
			t.Fatalf("parsed a malformed key %x", bad)
		}
	}
	if prefixEnd([]byte{0xff, 0xff}) != nil || !bytes.Equal(prefixEnd([]byte("a\xff")), []byte("b")) {
		t.Fatal("prefixEnd")
	}
}

// TestRecordCodec: records round-trip, and damaged records are errors (not
// panics) naming the key.
func TestRecordCodec(t *testing.T) {
	kvs := []*mvccpb.KeyValue{
		{Key: []byte("k"), CreateRevision: 2, ModRevision: 9, Version: 4, Lease: -7, Value: []byte("value")},
		{Key: []byte("k"), CreateRevision: 1 << 60, ModRevision: 1 << 61, Version: 1, Lease: 1 << 62},
	}
	for _, kv := range kvs {
		got, err := decodeKV([]byte("pk"), kv.Key, encodeKV(kv))
		if err != nil {
			t.Fatal(err)
		}
		requireEqual(t, "kv round trip", got, kv)
		for _, ev := range []*mvccpb.Event{
			{Type: mvccpb.Event_PUT, Kv: kv},
			{Type: mvccpb.Event_PUT, Kv: kv, PrevKv: kvs[0]},
			{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: kv.Key, ModRevision: 12}, PrevKv: kv},
		} {
			got, err := decodeEvent([]byte("pk"), 12, encodeEvent(ev))
			if err != nil {
				t.Fatal(err)
			}
			requireEqual(t, "event round trip", got, ev)
			raw := encodeEvent(ev)
			for i := range raw {
				if _, err := decodeEvent([]byte("pk"), 12, raw[:i]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("truncated event at %d: %v", i, err)
				}
			}
		}
	}
	if got, err := decodeKV(nil, nil, []byte{recTombstone}); got != nil || err != nil {
		t.Fatalf("tombstone: %v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {9}, {recPut}, append(encodeKV(kvs[0]), 0)} {
		_, err := decodeKV([]byte("the-key"), nil, bad)
		requireErr(t, err, ErrCorrupt, "the-key")
	}
	st := state{rev: 10, compactRev: 4, applied: 99, restoring: true}
	got, err := decodeState(encodeState(st))
	if err != nil || got != st {
		t.Fatalf("state round trip: %+v %v", got, err)
	}
	if _, err := decodeState(encodeState(state{rev: 3, compactRev: 4})); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("compacted above current accepted: %v", err)
	}
}

// FuzzDecode: no byte string makes a decoder panic.
func FuzzDecode(f *testing.F) {
	f.Add(encodeKV(&mvccpb.KeyValue{Key: []byte("k"), Value: []byte("v"), Version: 1}))
	f.Add(encodeEvent(&mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte("k")}, PrevKv: &mvccpb.KeyValue{Version: 1}}))
	f.Add(encodeState(state{rev: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeKV(nil, nil, b)
		_, _ = decodeEvent(nil, 1, b)
		_, _ = decodeState(b)
		_, _ = eventKey(nil, b)
		_, _, _, _ = parseKeyRevKey(b)
	})
}
