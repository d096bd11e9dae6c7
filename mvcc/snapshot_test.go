package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func snapshotBytes(t *testing.T, s *Store) ([]byte, *Snapshot) {
	t.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo: %d bytes reported, %d written, %v", n, buf.Len(), err)
	}
	return buf.Bytes(), sn
}

// TestSnapshotRestore: a store restored from a snapshot answers every read
// at every revision from the compacted one to the snapshot's, and History,
// as the original did; writes made after the snapshot do not leak into it;
// and the restored store then evolves exactly as the original.
func TestSnapshotRestore(t *testing.T) {
	src := newEnv(t, Options{})
	buildHistory(t, src, 3, 150)
	if err := src.compact(40); err != nil {
		t.Fatal(err)
	}
	at := src.s.Rev()
	want := dumps(src, 40)
	hist, err := src.s.History(40, 0)
	if err != nil {
		t.Fatal(err)
	}
	leases, _ := src.s.KeysWithLease(1)

	sn, err := src.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	if sn.Rev() != at || sn.CompactRev() != 40 || sn.AppliedIndex() != src.s.AppliedIndex() {
		t.Fatalf("snapshot at rev %d compact %d applied %d", sn.Rev(), sn.CompactRev(), sn.AppliedIndex())
	}
	// Writes after the snapshot, which the snapshot must not see.
	buildHistory(t, src, 4, 20)

	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	dst := newEnv(t, Options{})
	dst.put("stale", "gone after restore")
	if err := dst.s.Restore(&buf, 1234); err != nil {
		t.Fatal(err)
	}
	if dst.s.Rev() != at || dst.s.CompactRev() != 40 || dst.s.AppliedIndex() != 1234 {
		t.Fatalf("restored: rev %d compact %d applied %d", dst.s.Rev(), dst.s.CompactRev(), dst.s.AppliedIndex())
	}
	requireDumps(t, dst, want, 40)
	got, err := dst.s.History(40, 0)
	if err != nil {
		t.Fatal(err)
	}
	requireRevisions(t, "History after restore", got, hist)
	gotLeases, _ := dst.s.KeysWithLease(1)
	requireKeys(t, "KeysWithLease after restore", gotLeases, leases)

	// The restored store evolves as the original did after the snapshot:
	// the same writes give the same data and the same history.
	buildHistory(t, dst, 4, 20)
	requireDumps(t, dst, dumps(src, at), at)
	srcHist, _ := src.s.History(at+1, 0)
	dstHist, _ := dst.s.History(at+1, 0)
	requireRevisions(t, "History of the same writes after the snapshot", dstHist, srcHist)

	// Restored data survives a restart.
	dst.restart()
	requireDumps(t, dst, dumps(src, 40), 40)
}

// TestRestoreBadStream: a damaged stream is refused; the store then refuses
// service (also after a restart) and reports applied index 0 until a
// restore completes.
func TestRestoreBadStream(t *testing.T) {
	src := newEnv(t, Options{})
	buildHistory(t, src, 5, 40)
	good, sn := snapshotBytes(t, src.s)
	sn.Release()
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x20
		return b
	}
	outside := func() []byte {
		// A well-formed stream (right checksum) holding a raft-log key.
		var buf bytes.Buffer
		buf.Write(snapMagic)
		w := &countWriter{w: &buf}
		rec := func(k, v []byte) {
			var b []byte
			b = appendLenPrefixed(appendLenPrefixed(b, k), v)
			crcWriter{&w.crc}.Write(b)
			buf.Write(b)
		}
		crcWriter{&w.crc}.Write(snapMagic)
		rec(stateKey, encodeState(state{rev: 2}))
		rec([]byte{0x00, 'l', 1}, []byte("raft entry"))
		tail := []byte{0, 0, 0, 0, 0, 0, 0, 0, 2}
		crcWriter{&w.crc}.Write(tail)
		buf.Write(tail)
		buf.Write([]byte{byte(w.crc >> 24), byte(w.crc >> 16), byte(w.crc >> 8), byte(w.crc)})
		return buf.Bytes()
	}()
	for _, tc := range []struct {
		name   string
		stream []byte
		parts  []string
	}{
		{"empty", nil, []string{"magic"}},
		{"bad magic", flip(0), []string{"magic"}},
		{"truncated in the middle", good[:len(good)/2], []string{"truncated"}},
		{"truncated trailer", good[:len(good)-2], []string{"truncated"}},
		{"flipped data byte", flip(len(good) / 2), nil},
		{"flipped checksum", flip(len(good) - 1), []string{"checksum"}},
		{"key outside the keyspace", outside, []string{"outside the mvcc keyspace"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newEnv(t, Options{})
			dst.put("k", "v")
			err := dst.s.Restore(bytes.NewReader(tc.stream), 99)
			requireErr(t, err, ErrBadSnapshot, tc.parts...)
			check := func() {
				t.Helper()
				if dst.s.AppliedIndex() != 0 {
					t.Fatalf("applied index %d during an incomplete restore", dst.s.AppliedIndex())
				}
				if _, err := dst.s.Range(&pb.RangeRequest{Key: []byte("k")}); !errors.Is(err, ErrRestoreIncomplete) {
					t.Fatalf("Range during an incomplete restore: %v", err)
				}
				if _, err := dst.s.History(1, 0); !errors.Is(err, ErrRestoreIncomplete) {
					t.Fatalf("History during an incomplete restore: %v", err)
				}
				if _, err := dst.s.Snapshot(); !errors.Is(err, ErrRestoreIncomplete) {
					t.Fatalf("Snapshot during an incomplete restore: %v", err)
				}
				b := dst.s.NewBatch()
				defer b.Close()
				if _, err := b.Put(&pb.PutRequest{Key: []byte("k")}); !errors.Is(err, ErrRestoreIncomplete) {
					t.Fatalf("Put during an incomplete restore: %v", err)
				}
			}
			check()
			dst.restart()
			check()
			if err := dst.s.Restore(bytes.NewReader(good), 7); err != nil {
				t.Fatal(err)
			}
			requireEqual(t, "after a good restore", dst.dump(0), src.dump(0))
		})
	}
}

func appendLenPrefixed(b, p []byte) []byte {
	b = fmt.Appendf(b, "%c", byte(len(p))) // lengths < 128: one uvarint byte
	return append(b, p...)
}

// TestSnapshotOpenBatchIsStale: a batch open across a Restore cannot commit.
func TestSnapshotOpenBatchIsStale(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("k", "v")
	b, sn := snapshotBytes(t, e.s)
	sn.Release()
	sn.Release() // Release is idempotent
	batch := e.s.NewBatch()
	if err := e.s.Restore(bytes.NewReader(b), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := batch.Commit(6); !errors.Is(err, ErrStaleBatch) {
		t.Fatalf("batch across a restore: %v", err)
	}
	// A writer that fails makes WriteTo fail.
	sn, err := e.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	if _, err := sn.WriteTo(failingWriter{}); err == nil {
		t.Fatal("WriteTo to a failing writer succeeded")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
