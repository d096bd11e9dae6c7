package mvcc

import (
	"encoding/binary"
	"hash/crc32"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Record kinds, the first byte of a current-index or per-key history value.
const (
	recPut       byte = 1
	recTombstone byte = 2 // per-key history only: the key was deleted
)

// appendKVBody encodes every field of kv but the key (which the Pebble key
// already holds): create, mod, version, lease, then the value with its length.
func appendKVBody(b []byte, kv *mvccpb.KeyValue) []byte {
	b = binary.AppendUvarint(b, uint64(kv.CreateRevision))
	b = binary.AppendUvarint(b, uint64(kv.ModRevision))
	b = binary.AppendUvarint(b, uint64(kv.Version))
	b = binary.AppendVarint(b, kv.Lease)
	b = binary.AppendUvarint(b, uint64(len(kv.Value)))
	return append(b, kv.Value...)
}

// decodeKVBody decodes what appendKVBody wrote into a new KeyValue with the
// given key; the value is copied, so the result never aliases src.
func decodeKVBody(key, src []byte) (kv *mvccpb.KeyValue, rest []byte, ok bool) {
	var f [4]uint64
	for i := range f {
		if i == 3 {
			v, n := binary.Varint(src)
			if n <= 0 {
				return nil, nil, false
			}
			f[i], src = uint64(v), src[n:]
			continue
		}
		v, n := binary.Uvarint(src)
		if n <= 0 {
			return nil, nil, false
		}
		f[i], src = v, src[n:]
	}
	vlen, n := binary.Uvarint(src)
	if n <= 0 || uint64(len(src)-n) < vlen {
		return nil, nil, false
	}
	src = src[n:]
	kv = &mvccpb.KeyValue{
		Key:            key,
		CreateRevision: int64(f[0]),
		ModRevision:    int64(f[1]),
		Version:        int64(f[2]),
		Lease:          int64(f[3]),
	}
	if vlen > 0 {
		kv.Value = append([]byte(nil), src[:vlen]...)
	}
	return kv, src[vlen:], true
}

// encodeKV is a current-index or per-key history record of a live key.
func encodeKV(kv *mvccpb.KeyValue) []byte {
	return appendKVBody(append(make([]byte, 0, 32+len(kv.Value)), recPut), kv)
}

// decodeKV decodes a current-index or per-key history record; it returns a
// nil KeyValue for a tombstone. pebbleKey names the record in errors; user
// is the user key to put in the KeyValue (not copied).
func decodeKV(pebbleKey, user, v []byte) (*mvccpb.KeyValue, error) {
	if len(v) == 1 && v[0] == recTombstone {
		return nil, nil
	}
	if len(v) == 0 || v[0] != recPut {
		return nil, corrupt(pebbleKey, "unknown record kind")
	}
	kv, rest, ok := decodeKVBody(user, v[1:])
	if !ok || len(rest) != 0 {
		return nil, corrupt(pebbleKey, "truncated or oversized key-value record")
	}
	return kv, nil
}

// isTombstone reports whether a per-key history record is a tombstone,
// without decoding it.
func isTombstone(v []byte) bool { return len(v) == 1 && v[0] == recTombstone }

// encodeEvent is a history record: the event type, the key, the new
// key-value (puts only: a delete's Kv is the key and the mod revision, both
// known from the history key) and the previous key-value if there was one.
func encodeEvent(ev *mvccpb.Event) []byte {
	b := make([]byte, 0, 48+len(ev.Kv.Key)+len(ev.Kv.Value)+len(ev.PrevKv.GetValue()))
	b = append(b, byte(ev.Type))
	b = binary.AppendUvarint(b, uint64(len(ev.Kv.Key)))
	b = append(b, ev.Kv.Key...)
	if ev.Type == mvccpb.Event_PUT {
		b = appendKVBody(b, ev.Kv)
	}
	if ev.PrevKv == nil {
		return append(b, 0)
	}
	return appendKVBody(append(b, 1), ev.PrevKv)
}

// decodeEvent decodes a history record written at revision main.
func decodeEvent(pebbleKey []byte, main int64, v []byte) (*mvccpb.Event, error) {
	bad := func(what string) (*mvccpb.Event, error) { return nil, corrupt(pebbleKey, what) }
	if len(v) < 1 {
		return bad("empty event record")
	}
	typ := mvccpb.Event_EventType(v[0])
	if typ != mvccpb.Event_PUT && typ != mvccpb.Event_DELETE {
		return bad("unknown event type")
	}
	v = v[1:]
	klen, n := binary.Uvarint(v)
	if n <= 0 || uint64(len(v)-n) < klen {
		return bad("truncated event key")
	}
	key := append([]byte(nil), v[n:n+int(klen)]...)
	v = v[n+int(klen):]
	ev := &mvccpb.Event{Type: typ}
	if typ == mvccpb.Event_PUT {
		kv, rest, ok := decodeKVBody(key, v)
		if !ok {
			return bad("truncated event key-value")
		}
		ev.Kv, v = kv, rest
	} else {
		ev.Kv = &mvccpb.KeyValue{Key: key, ModRevision: main}
	}
	if len(v) < 1 {
		return bad("missing previous key-value flag")
	}
	switch v[0] {
	case 0:
		v = v[1:]
	case 1:
		prev, rest, ok := decodeKVBody(append([]byte(nil), key...), v[1:])
		if !ok {
			return bad("truncated previous key-value")
		}
		ev.PrevKv, v = prev, rest
	default:
		return bad("bad previous key-value flag")
	}
	if len(v) != 0 {
		return bad("trailing bytes in event record")
	}
	return ev, nil
}

// state is the revision state of the store, kept in one record under
// stateKey so that a reader gets all of it from one consistent view.
type state struct {
	rev        int64  // current revision; 1 for an empty store, as in etcd
	compactRev int64  // compacted revision; 0 if never compacted
	applied    uint64 // raft index of the last applied entry
	restoring  bool   // a Restore started and has not finished
}

// freshState is the state of a store that was never written.
var freshState = state{rev: 1}

const (
	stateVersion    = 1
	stateLen        = 1 + 1 + 8 + 8 + 8 + 4
	stateRestoring  = 1 << 0
	stateKnownFlags = stateRestoring
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodeState is version, flags, rev, compacted rev, applied index and a
// CRC-32C of those bytes: the record every restart starts from is checked.
func encodeState(st state) []byte {
	b := make([]byte, 0, stateLen)
	var flags byte
	if st.restoring {
		flags |= stateRestoring
	}
	b = append(b, stateVersion, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(st.rev))
	b = binary.BigEndian.AppendUint64(b, uint64(st.compactRev))
	b = binary.BigEndian.AppendUint64(b, st.applied)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func decodeState(v []byte) (state, error) {
	if len(v) != stateLen {
		return state{}, corrupt(stateKey, "state record has the wrong length")
	}
	if crc32.Checksum(v[:stateLen-4], crcTable) != binary.BigEndian.Uint32(v[stateLen-4:]) {
		return state{}, corrupt(stateKey, "state record checksum mismatch")
	}
	if v[0] != stateVersion {
		return state{}, corrupt(stateKey, "unknown state record version")
	}
	if v[1]&^stateKnownFlags != 0 {
		return state{}, corrupt(stateKey, "unknown state flags")
	}
	st := state{
		restoring:  v[1]&stateRestoring != 0,
		rev:        int64(binary.BigEndian.Uint64(v[2:])),
		compactRev: int64(binary.BigEndian.Uint64(v[10:])),
		applied:    binary.BigEndian.Uint64(v[18:]),
	}
	if st.rev < 1 || st.compactRev < 0 || st.compactRev > st.rev {
		return state{}, corrupt(stateKey, "impossible revisions in state record")
	}
	return st, nil
}
