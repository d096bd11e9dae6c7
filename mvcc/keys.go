package mvcc

import "encoding/binary"

// Every Pebble key this package writes starts with keyspacePrefix and a table
// tag; the raft log owns the keys starting with 0x00. The tags are listed in
// the order Pebble sorts them.
const (
	keyspacePrefix byte = 0x01

	tagHistory byte = 'h' // (main, sub) → event
	tagCurrent byte = 'k' // user key → current KeyValue
	tagLease   byte = 'l' // (lease, user key) → nothing
	tagMeta    byte = 'm' // name → metadata record
	tagKeyRev  byte = 'r' // (escaped user key, main, sub) → KeyValue or tombstone
)

var (
	keyspaceStart = []byte{keyspacePrefix}
	keyspaceEnd   = []byte{keyspacePrefix + 1}

	// stateKey holds the revision state: current and compacted revision,
	// applied index and the restore flag, written with every commit.
	stateKey = []byte{keyspacePrefix, tagMeta, 's'}

	historyStart = []byte{keyspacePrefix, tagHistory}
	historyEnd   = []byte{keyspacePrefix, tagHistory + 1}
	currentEnd   = []byte{keyspacePrefix, tagCurrent + 1}
	keyRevStart  = []byte{keyspacePrefix, tagKeyRev}
	keyRevEnd    = []byte{keyspacePrefix, tagKeyRev + 1}
)

// isFromKey reports whether end is etcd's "\x00" range end.
func isFromKey(end []byte) bool { return len(end) == 1 && end[0] == 0 }

// table is a two-byte table prefix followed by suffix.
func table(tag byte, suffix []byte) []byte {
	k := make([]byte, 2, 2+len(suffix))
	k[0], k[1] = keyspacePrefix, tag
	return append(k, suffix...)
}

// currentKey is the current-index key of user key k.
func currentKey(k []byte) []byte { return table(tagCurrent, k) }

// currentBounds returns the current-index span of the user range [key, end)
// with etcd's conventions: end == "\x00" means no upper bound. A single-key
// range (empty end) is not a span and is not handled here.
func currentBounds(key, end []byte) (lo, hi []byte) {
	lo = currentKey(key)
	if isFromKey(end) {
		return lo, currentEnd
	}
	return lo, currentKey(end)
}

// historyKey is the history key of revision (main, sub). Big-endian keeps
// Pebble's order equal to revision order.
func historyKey(main, sub int64) []byte {
	k := make([]byte, 18)
	k[0], k[1] = keyspacePrefix, tagHistory
	binary.BigEndian.PutUint64(k[2:], uint64(main))
	binary.BigEndian.PutUint64(k[10:], uint64(sub))
	return k
}

func parseHistoryKey(k []byte) (main, sub int64, ok bool) {
	if len(k) != 18 || k[0] != keyspacePrefix || k[1] != tagHistory {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(k[2:])), int64(binary.BigEndian.Uint64(k[10:])), true
}

// Per-key history keys are escape(user key) + terminator + main + sub. The
// escaping (0x00 → 0x00 0xff, terminated by 0x00 0x01) keeps two properties
// a plain concatenation would lose: every entry of one user key is
// contiguous, and user keys sort in their natural byte order, so a range of
// user keys is a range of Pebble keys.
const (
	escByte  = 0x00
	escZero  = 0xff
	escTerm  = 0x01
	escAfter = 0x02 // sorts after every entry of a key: escByte, escAfter
)

// keyRevPrefix is the prefix shared by every per-key history entry of k.
func keyRevPrefix(k []byte) []byte {
	out := make([]byte, 2, 2+len(k)+2+16)
	out[0], out[1] = keyspacePrefix, tagKeyRev
	for _, c := range k {
		if c == escByte {
			out = append(out, escByte, escZero)
			continue
		}
		out = append(out, c)
	}
	return append(out, escByte, escTerm)
}

// keyRevKey is the per-key history key of k at revision (main, sub).
func keyRevKey(k []byte, main, sub int64) []byte {
	return appendRev(keyRevPrefix(k), main, sub)
}

// keyRevAfter sorts after every per-key history entry of k and before those
// of any greater key.
func keyRevAfter(k []byte) []byte {
	p := keyRevPrefix(k)
	p[len(p)-1] = escAfter
	return p
}

func appendRev(b []byte, main, sub int64) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(main))
	return binary.BigEndian.AppendUint64(b, uint64(sub))
}

// parseKeyRevKey splits a per-key history key into the user key and the
// revision. The returned user key is a fresh slice.
func parseKeyRevKey(k []byte) (user []byte, main, sub int64, ok bool) {
	if len(k) < 2+2+16 || k[0] != keyspacePrefix || k[1] != tagKeyRev {
		return nil, 0, 0, false
	}
	body, rev := k[2:len(k)-16], k[len(k)-16:]
	if len(body) < 2 || body[len(body)-2] != escByte || body[len(body)-1] != escTerm {
		return nil, 0, 0, false
	}
	body = body[:len(body)-2]
	user = make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != escByte {
			user = append(user, c)
			continue
		}
		if i+1 >= len(body) || body[i+1] != escZero {
			return nil, 0, 0, false
		}
		user = append(user, escByte)
		i++
	}
	return user, int64(binary.BigEndian.Uint64(rev)), int64(binary.BigEndian.Uint64(rev[8:])), true
}

// leasePrefix is the prefix of every lease-index key of lease.
func leasePrefix(lease int64) []byte {
	k := make([]byte, 10)
	k[0], k[1] = keyspacePrefix, tagLease
	binary.BigEndian.PutUint64(k[2:], uint64(lease))
	return k
}

// leaseKey is the lease-index key that attaches user key k to lease.
func leaseKey(lease int64, k []byte) []byte { return append(leasePrefix(lease), k...) }
