package mvcc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// The snapshot stream is the whole user keyspace, raw:
//
//	magic "cairn-mvcc-snap" 0x00, version 1
//	the state record:  uvarint len, stateKey, uvarint len, record
//	every other key:   uvarint len, key, uvarint len, value   (key order)
//	end:               uvarint 0
//	trailer:           uint64 number of records, uint32 CRC-32C of all the above
//
// Copying the tables as they are keeps history, per-key history and the
// lease index exact, so a restored store answers every read and History
// after its compacted revision exactly as the original did.
var snapMagic = []byte("cairn-mvcc-snap\x00\x01")

const (
	// maxSnapField bounds one key or value read from a stream, so that a
	// corrupt length cannot make Restore allocate without limit.
	maxSnapField = 256 << 20
	// restoreBatchBytes is how much Restore writes per Pebble batch.
	restoreBatchBytes = 4 << 20
)

// Snapshot is a point-in-time view of the whole store for a raft snapshot.
// WriteTo may run concurrently with later commits; Release frees the view.
type Snapshot struct {
	snap    *pebble.Snapshot
	st      state
	release sync.Once
}

// Snapshot captures the committed store. It is cheap (a Pebble snapshot);
// the data is read by WriteTo.
func (s *Store) Snapshot() (*Snapshot, error) {
	snap := s.db.NewSnapshot()
	st, err := readState(snap)
	if err == nil && st.restoring {
		err = ErrRestoreIncomplete
	}
	if err != nil {
		_ = snap.Close()
		return nil, fmt.Errorf("mvcc: snapshot: %w", err)
	}
	return &Snapshot{snap: snap, st: st}, nil
}

// Rev is the store revision the snapshot holds.
func (sn *Snapshot) Rev() int64 { return sn.st.rev }

// CompactRev is the compacted revision the snapshot holds.
func (sn *Snapshot) CompactRev() int64 { return sn.st.compactRev }

// AppliedIndex is the raft index the snapshot holds the state of.
func (sn *Snapshot) AppliedIndex() uint64 { return sn.st.applied }

// Release frees the Pebble snapshot. It may be called more than once.
func (sn *Snapshot) Release() {
	sn.release.Do(func() { _ = sn.snap.Close() })
}

// WriteTo streams the snapshot to w and returns the number of bytes written.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(io.MultiWriter(cw, crcWriter{&cw.crc}), 256<<10)
	var scratch []byte
	record := func(k, v []byte) error {
		scratch = binary.AppendUvarint(scratch[:0], uint64(len(k)))
		scratch = append(scratch, k...)
		scratch = binary.AppendUvarint(scratch, uint64(len(v)))
		if _, err := bw.Write(scratch); err != nil {
			return err
		}
		_, err := bw.Write(v)
		return err
	}
	if _, err := bw.Write(snapMagic); err != nil {
		return cw.n, fmt.Errorf("mvcc: write snapshot: %w", err)
	}
	count := uint64(1)
	if err := record(stateKey, encodeState(sn.st)); err != nil {
		return cw.n, fmt.Errorf("mvcc: write snapshot: %w", err)
	}
	it, err := sn.snap.NewIter(&pebble.IterOptions{LowerBound: keyspaceStart, UpperBound: keyspaceEnd})
	if err != nil {
		return cw.n, fmt.Errorf("mvcc: write snapshot: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.Equal(it.Key(), stateKey) {
			continue // written first, above
		}
		v, err := it.ValueAndErr()
		if err == nil {
			err = record(it.Key(), v)
		}
		if err != nil {
			return cw.n, fmt.Errorf("mvcc: write snapshot at %q: %w", it.Key(), err)
		}
		count++
	}
	if err := iterErr(it); err != nil {
		return cw.n, err
	}
	tail := binary.AppendUvarint(nil, 0)
	tail = binary.BigEndian.AppendUint64(tail, count)
	if _, err := bw.Write(tail); err != nil {
		return cw.n, fmt.Errorf("mvcc: write snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("mvcc: write snapshot: %w", err)
	}
	// The checksum covers everything before it, so it bypasses the hasher.
	n, err := w.Write(binary.BigEndian.AppendUint32(nil, cw.crc))
	cw.n += int64(n)
	if err != nil {
		return cw.n, fmt.Errorf("mvcc: write snapshot: %w", err)
	}
	return cw.n, nil
}

type countWriter struct {
	w   io.Writer
	n   int64
	crc uint32
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type crcWriter struct{ crc *uint32 }

func (c crcWriter) Write(p []byte) (int, error) {
	*c.crc = crc32.Update(*c.crc, crcTable, p)
	return len(p), nil
}

// Restore replaces the whole store with the snapshot read from r, and
// records appliedIndex as the applied index. It first wipes the keyspace and
// marks the store as restoring, durably; then it writes the stream in
// batches; then, after checking the stream's checksum, it writes the final
// state, durably. Until that last write the store refuses reads and writes
// with ErrRestoreIncomplete and AppliedIndex is 0, also after a crash and
// reopen, so an interrupted restore is redone, never half-served. A batch
// open during Restore becomes stale.
func (s *Store) Restore(r io.Reader, appliedIndex uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.seq++
	// gen stays odd until the final state is written: meanwhile readers
	// read the state record, which says "restoring".
	s.beginWriteLocked()

	restoring := state{rev: 1, restoring: true}
	wipe := s.db.NewBatch()
	err := wipe.DeleteRange(keyspaceStart, keyspaceEnd, nil)
	if err == nil {
		err = wipe.Set(stateKey, encodeState(restoring), nil)
	}
	if err == nil {
		err = wipe.Commit(pebble.Sync)
	}
	_ = wipe.Close()
	if err != nil {
		return fmt.Errorf("mvcc: restore: wipe: %w", err)
	}
	s.st.Store(&restoring)

	st, err := s.load(r)
	if err != nil {
		return fmt.Errorf("mvcc: restore: %w", err)
	}
	st.applied, st.restoring = appliedIndex, false
	final := s.db.NewBatch()
	err = final.Set(stateKey, encodeState(st), nil)
	if err == nil {
		err = final.Commit(pebble.Sync)
	}
	_ = final.Close()
	if err != nil {
		return fmt.Errorf("mvcc: restore: final state: %w", err)
	}
	s.st.Store(&st)
	s.endWriteLocked()
	return nil
}

// load writes the records of a snapshot stream into the (wiped) keyspace
// and returns the snapshot's state.
func (s *Store) load(r io.Reader) (state, error) {
	sr := &snapReader{r: bufio.NewReaderSize(r, 256<<10)}
	magic := make([]byte, len(snapMagic))
	if err := sr.full(magic); err != nil || !bytes.Equal(magic, snapMagic) {
		return state{}, fmt.Errorf("%w: not a cairn mvcc snapshot (bad magic)", ErrBadSnapshot)
	}
	var (
		st    state
		count uint64
		b     = s.db.NewBatch()
	)
	defer func() { _ = b.Close() }()
	for {
		k, err := sr.field()
		if err != nil {
			return state{}, err
		}
		if len(k) == 0 {
			break
		}
		v, err := sr.field()
		if err != nil {
			return state{}, err
		}
		count++
		if count == 1 {
			if !bytes.Equal(k, stateKey) {
				return state{}, fmt.Errorf("%w: first record %q is not the state", ErrBadSnapshot, k)
			}
			if st, err = decodeState(v); err != nil {
				return state{}, fmt.Errorf("%w: state record: %w", ErrBadSnapshot, err)
			}
			if st.restoring {
				return state{}, fmt.Errorf("%w: snapshot of a store in the middle of a restore", ErrBadSnapshot)
			}
			continue
		}
		if bytes.Compare(k, keyspaceStart) < 0 || bytes.Compare(k, keyspaceEnd) >= 0 || bytes.Equal(k, stateKey) {
			return state{}, fmt.Errorf("%w: record %d has key %q outside the mvcc keyspace", ErrBadSnapshot, count, k)
		}
		if err := b.Set(k, v, nil); err != nil {
			return state{}, err
		}
		if b.Len() >= restoreBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return state{}, err
			}
			_ = b.Close()
			b = s.db.NewBatch()
		}
	}
	var tail [8]byte
	if err := sr.full(tail[:]); err != nil {
		return state{}, err
	}
	want := sr.crc
	var sum [4]byte
	if err := sr.full(sum[:]); err != nil {
		return state{}, err
	}
	if n := binary.BigEndian.Uint64(tail[:]); n != count {
		return state{}, fmt.Errorf("%w: %d records, trailer says %d", ErrBadSnapshot, count, n)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return state{}, fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	if count == 0 {
		return state{}, fmt.Errorf("%w: no state record", ErrBadSnapshot)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return state{}, err
	}
	return st, nil
}

// snapReader reads a snapshot stream and keeps the CRC-32C of what it read.
type snapReader struct {
	r   *bufio.Reader
	crc uint32
}

func (sr *snapReader) ReadByte() (byte, error) {
	c, err := sr.r.ReadByte()
	if err == nil {
		sr.crc = crc32.Update(sr.crc, crcTable, []byte{c})
	}
	return c, err
}

func (sr *snapReader) full(p []byte) error {
	if _, err := io.ReadFull(sr.r, p); err != nil {
		return fmt.Errorf("%w: truncated: %w", ErrBadSnapshot, err)
	}
	sr.crc = crc32.Update(sr.crc, crcTable, p)
	return nil
}

// field reads one length-prefixed field.
func (sr *snapReader) field() ([]byte, error) {
	n, err := binary.ReadUvarint(sr)
	if err != nil {
		return nil, fmt.Errorf("%w: truncated length: %w", ErrBadSnapshot, err)
	}
	if n > maxSnapField {
		return nil, fmt.Errorf("%w: field of %d bytes", ErrBadSnapshot, n)
	}
	p := make([]byte, n)
	return p, sr.full(p)
}
