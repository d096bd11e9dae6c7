package kv

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/mvcc"
)

// A backup (etcd's Maintenance.Snapshot, `etcdctl snapshot save`) is the
// state machine's snapshot stream, the one raft snapshots carry (see
// mvcc.Snapshot.WriteTo: every table of the keyspace, with its own record
// count and CRC-32C), zero bytes up to a multiple of 512 bytes, and the
// SHA-256 of every byte before it: etcd's snapshot stream ends with one, and
// etcd's clients (etcdctl snapshot save) look for it 32 bytes past a
// 512-byte boundary.

// backupAlign is the block size etcd's clients expect the body in.
const backupAlign = 512

// ErrBadBackup: a backup failed its checks; the error says which.
var ErrBadBackup = errors.New("kv: bad backup")

// BackupInfo describes a backup checked by VerifyBackup.
type BackupInfo struct {
	Rev        int64 // the store revision it holds
	CompactRev int64 // its compacted revision
	Size       int64 // bytes, padding and SHA-256 included
	StreamSize int64 // bytes of the snapshot stream alone
	SHA256     [sha256.Size]byte
}

// WriteBackup writes a consistent point-in-time copy of the whole state
// machine (key-value data and history, leases, member attributes, alarms)
// to w, followed by its SHA-256, and returns the number of bytes written.
// It may run alongside Apply: the copy is of the last apply before the call.
func (sm *StateMachine) WriteBackup(w io.Writer) (int64, error) {
	done, err := sm.reading()
	if err != nil {
		return 0, err
	}
	snap, err := sm.store.Snapshot()
	done()
	if err != nil {
		return 0, fmt.Errorf("kv: backup: %w", err)
	}
	defer snap.Release()
	h := sha256.New()
	mw := io.MultiWriter(w, h)
	n, err := snap.WriteTo(mw)
	if err != nil {
		return n, fmt.Errorf("kv: backup: %w", err)
	}
	if pad := (backupAlign - n%backupAlign) % backupAlign; pad > 0 {
		m, err := mw.Write(make([]byte, pad))
		n += int64(m)
		if err != nil {
			return n, fmt.Errorf("kv: backup: write padding: %w", err)
		}
	}
	m, err := w.Write(h.Sum(nil))
	n += int64(m)
	if err != nil {
		return n, fmt.Errorf("kv: backup: write SHA-256: %w", err)
	}
	return n, nil
}

// VerifyBackup reads a backup from r to its end and checks it: first its
// SHA-256, then the snapshot stream's own checks (mvcc.VerifySnapshot). It
// writes nothing. Errors match ErrBadBackup and name the problem: a
// truncated file, a SHA-256 mismatch (with what the stream's checks make
// of it), trailing bytes, a malformed stream.
func VerifyBackup(r io.Reader) (BackupInfo, error) {
	tr := newTrailerReader(r, sha256.Size)
	snap, verr := mvcc.VerifyPaddedSnapshot(tr, backupAlign)
	// Whatever the stream's checks found, hash the rest: the SHA-256 speaks
	// first.
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return BackupInfo{}, fmt.Errorf("kv: read backup: %w", err)
	}
	size := tr.passed + int64(len(tr.trailer()))
	if len(tr.trailer()) < sha256.Size {
		return BackupInfo{}, fmt.Errorf("%w: truncated: %d bytes, shorter than its SHA-256 trailer", ErrBadBackup, size)
	}
	info := BackupInfo{Rev: snap.Rev, CompactRev: snap.CompactRev, Size: size, StreamSize: snap.Bytes}
	tr.sum.Sum(info.SHA256[:0])
	if !bytes.Equal(info.SHA256[:], tr.trailer()) {
		if verr != nil {
			return BackupInfo{}, fmt.Errorf("%w: SHA-256 mismatch: the file (%d bytes) is corrupt or truncated: %w", ErrBadBackup, size, verr)
		}
		return BackupInfo{}, fmt.Errorf("%w: SHA-256 mismatch: the file (%d bytes) is corrupt", ErrBadBackup, size)
	}
	if verr != nil {
		return BackupInfo{}, fmt.Errorf("%w: %w", ErrBadBackup, verr)
	}
	return info, nil
}

// RestoreBackup verifies the backup in r (VerifyBackup), then loads it into
// db, the Pebble instance of a new node (storage.Store.DB of a fresh data
// directory), before the node first starts. The store is restored with
// applied index 0, so that the new cluster's raft log applies on top of it
// from its first entry; every member of the new cluster restores the same
// backup. Member attributes are dropped: they belong to the old cluster's
// members, and the new members publish their own. Alarms are kept, as etcd
// keeps them. A db whose state machine was ever written is refused, and so
// is a backup that fails its checks, before anything is written.
func RestoreBackup(db *pebble.DB, r io.ReadSeeker) (BackupInfo, error) {
	store, err := mvcc.Open(db, mvcc.Options{})
	if err != nil {
		return BackupInfo{}, fmt.Errorf("kv: restore backup: %w", err)
	}
	if rev, applied := store.Rev(), store.AppliedIndex(); rev != 1 || applied != 0 {
		return BackupInfo{}, fmt.Errorf("kv: restore backup: the store is not empty (revision %d, applied index %d); restore into a new data directory", rev, applied)
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("kv: restore backup: %w", err)
	}
	info, err := VerifyBackup(r)
	if err != nil {
		return BackupInfo{}, err
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return BackupInfo{}, fmt.Errorf("kv: restore backup: %w", err)
	}
	if err := store.Restore(io.LimitReader(r, info.StreamSize), 0); err != nil {
		return BackupInfo{}, fmt.Errorf("kv: restore backup: %w", err)
	}
	b := db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(memberPrefix, []byte{memberPrefix[0], memberPrefix[1] + 1}, nil); err != nil {
		return BackupInfo{}, fmt.Errorf("kv: restore backup: drop member attributes: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return BackupInfo{}, fmt.Errorf("kv: restore backup: drop member attributes: %w", err)
	}
	return info, nil
}

// trailerReader passes on everything r holds but its last n bytes, and
// hashes what it passes on; once r is exhausted, trailer returns the bytes
// held back (fewer than n if r held fewer).
type trailerReader struct {
	r        io.Reader
	n        int
	buf      []byte // buf[off:end] is read from r, not passed on yet
	off, end int
	eof      bool
	sum      hash.Hash
	passed   int64
}

func newTrailerReader(r io.Reader, n int) *trailerReader {
	return &trailerReader{r: r, n: n, buf: make([]byte, 64<<10+n), sum: sha256.New()}
}

func (t *trailerReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for t.end-t.off <= t.n {
		if t.eof {
			return 0, io.EOF
		}
		if t.off > 0 {
			t.end = copy(t.buf, t.buf[t.off:t.end])
			t.off = 0
		}
		m, err := t.r.Read(t.buf[t.end:])
		t.end += m
		if errors.Is(err, io.EOF) {
			t.eof = true
		} else if err != nil {
			return 0, err
		}
	}
	k := copy(p, t.buf[t.off:t.end-t.n])
	t.sum.Write(p[:k])
	t.off += k
	t.passed += int64(k)
	return k, nil
}

// trailer is the held-back tail; it is complete once Read returned io.EOF.
func (t *trailerReader) trailer() []byte { return t.buf[t.off:t.end] }
