package mvcc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// SnapshotInfo describes a snapshot stream checked by VerifySnapshot.
type SnapshotInfo struct {
	Rev          int64  // the store revision it holds
	CompactRev   int64  // its compacted revision
	AppliedIndex uint64 // the raft index it was taken at
	Records      uint64 // records, the state record included
	Bytes        int64  // the stream's length, padding excluded
}

// VerifySnapshot reads a snapshot stream written by Snapshot.WriteTo, to
// the end of r, and runs every check Restore runs (magic, framing, the
// state record, keys inside the keyspace, record count, checksum) without
// writing anything; r must hold nothing after the stream. Errors match
// ErrBadSnapshot and say what is wrong.
func VerifySnapshot(r io.Reader) (SnapshotInfo, error) {
	return verifySnapshot(r, 0)
}

// VerifyPaddedSnapshot is VerifySnapshot for a stream followed by zero
// bytes up to the next multiple of align bytes (as etcd's backups are
// padded to 512-byte blocks); anything else after the stream is refused.
func VerifyPaddedSnapshot(r io.Reader, align int) (SnapshotInfo, error) {
	return verifySnapshot(r, align)
}

func verifySnapshot(r io.Reader, align int) (SnapshotInfo, error) {
	cr := &countingReader{r: r}
	sr := &snapReader{r: bufio.NewReaderSize(cr, 256<<10)}
	magic := make([]byte, len(snapMagic))
	if err := sr.full(magic); err != nil || !bytes.Equal(magic, snapMagic) {
		return SnapshotInfo{}, fmt.Errorf("%w: not a cairn mvcc snapshot (bad magic)", ErrBadSnapshot)
	}
	var info SnapshotInfo
	for {
		k, err := sr.field()
		if err != nil {
			return SnapshotInfo{}, err
		}
		if len(k) == 0 {
			break
		}
		v, err := sr.field()
		if err != nil {
			return SnapshotInfo{}, err
		}
		info.Records++
		if info.Records == 1 {
			if !bytes.Equal(k, stateKey) {
				return SnapshotInfo{}, fmt.Errorf("%w: first record %q is not the state", ErrBadSnapshot, k)
			}
			st, err := decodeState(v)
			if err != nil {
				return SnapshotInfo{}, fmt.Errorf("%w: state record: %w", ErrBadSnapshot, err)
			}
			if st.restoring {
				return SnapshotInfo{}, fmt.Errorf("%w: snapshot of a store in the middle of a restore", ErrBadSnapshot)
			}
			info.Rev, info.CompactRev, info.AppliedIndex = st.rev, st.compactRev, st.applied
			continue
		}
		if bytes.Compare(k, keyspaceStart) < 0 || bytes.Compare(k, keyspaceEnd) >= 0 || bytes.Equal(k, stateKey) {
			return SnapshotInfo{}, fmt.Errorf("%w: record %d has key %q outside the mvcc keyspace", ErrBadSnapshot, info.Records, k)
		}
	}
	var tail [8]byte
	if err := sr.full(tail[:]); err != nil {
		return SnapshotInfo{}, err
	}
	want := sr.crc
	var sum [4]byte
	if err := sr.full(sum[:]); err != nil {
		return SnapshotInfo{}, err
	}
	if n := binary.BigEndian.Uint64(tail[:]); n != info.Records {
		return SnapshotInfo{}, fmt.Errorf("%w: %d records, trailer says %d", ErrBadSnapshot, info.Records, n)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return SnapshotInfo{}, fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	if info.Records == 0 {
		return SnapshotInfo{}, fmt.Errorf("%w: no state record", ErrBadSnapshot)
	}
	info.Bytes = cr.n - int64(sr.r.Buffered())
	var pad int64
	for {
		c, err := sr.r.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return SnapshotInfo{}, fmt.Errorf("mvcc: verify snapshot: %w", err)
		}
		if pad++; align == 0 || c != 0 || pad >= int64(align) {
			return SnapshotInfo{}, fmt.Errorf("%w: trailing bytes after the checksum", ErrBadSnapshot)
		}
	}
	if align > 0 && (info.Bytes+pad)%int64(align) != 0 {
		return SnapshotInfo{}, fmt.Errorf("%w: %d bytes of padding do not end on a %d-byte boundary", ErrBadSnapshot, pad, align)
	}
	return info, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
