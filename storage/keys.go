package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Keys owned by this package all start with reservedPrefix.
const reservedPrefix = 0x00

var (
	logPrefix       = []byte{reservedPrefix, 'l'}
	hardStateKey    = []byte{reservedPrefix, 'm', 'h', 's'}
	identityKey     = []byte{reservedPrefix, 'm', 'i', 'd'}
	snapshotKey     = []byte{reservedPrefix, 'm', 's', 'n', 'p'}
	truncatedKey    = []byte{reservedPrefix, 'm', 't', 'r', 'c'}
	logUpperBound   = []byte{reservedPrefix, 'l' + 1}
	crcTable        = crc32.MakeTable(crc32.Castagnoli)
	errShortRecord  = fmt.Errorf("record shorter than its checksum")
	errBadChecksum  = fmt.Errorf("checksum mismatch")
	errWrongIndex   = fmt.Errorf("entry index does not match its key")
	errUnknownEntry = fmt.Errorf("entry missing from the log")
)

// UserKeyspaceStart is the smallest key a co-located state machine may use.
var UserKeyspaceStart = []byte{reservedPrefix + 1}

func logKey(index uint64) []byte {
	k := make([]byte, len(logPrefix)+8)
	copy(k, logPrefix)
	binary.BigEndian.PutUint64(k[len(logPrefix):], index)
	return k
}

func logKeyIndex(k []byte) (uint64, bool) {
	if len(k) != len(logPrefix)+8 || k[0] != logPrefix[0] || k[1] != logPrefix[1] {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(logPrefix):]), true
}

// seal prefixes payload with its CRC-32C.
func seal(payload []byte) []byte {
	v := make([]byte, 4+len(payload))
	binary.LittleEndian.PutUint32(v, crc32.Checksum(payload, crcTable))
	copy(v[4:], payload)
	return v
}

// unseal checks the CRC-32C written by seal and returns the payload, which
// aliases v.
func unseal(v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, errShortRecord
	}
	payload := v[4:]
	if binary.LittleEndian.Uint32(v) != crc32.Checksum(payload, crcTable) {
		return nil, errBadChecksum
	}
	return payload, nil
}
