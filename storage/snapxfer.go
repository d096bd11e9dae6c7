package storage

import (
	"fmt"
	"os"

	"github.com/cairn-db/cairn/transport"
)

var _ transport.SnapshotStore = (*Store)(nil)

// OpenSnapshot implements transport.SnapshotStore: the raw bytes of a
// complete snapshot file, as they are sent to a peer.
func (s *Store) OpenSnapshot(term, index uint64) (transport.SnapshotReader, error) {
	path := s.snaps.path(term, index)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("storage: open snapshot %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: stat snapshot %s: %w", path, err)
	}
	return &fileReader{File: f, size: st.Size()}, nil
}

type fileReader struct {
	*os.File
	size int64
}

func (r *fileReader) Size() int64 { return r.size }

// ReceiveSnapshot implements transport.SnapshotStore. Bytes go to a .part
// file named after the snapshot and its size, so a second attempt at the same
// transfer appends to what the first one kept.
func (s *Store) ReceiveSnapshot(term, index uint64, size int64) (transport.SnapshotWriter, error) {
	if size <= 0 {
		return nil, fmt.Errorf("storage: receive snapshot %d: invalid size %d", index, size)
	}
	path := s.snaps.partPath(term, index, size)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("storage: receive snapshot %s: %w", path, err)
	}
	off, err := f.Seek(0, 2)
	if err == nil && off > size {
		// More bytes than the snapshot has: not ours to trust; start over.
		if err = f.Truncate(0); err == nil {
			off, err = f.Seek(0, 0)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: receive snapshot %s: %w", path, err)
	}
	return &partWriter{s: s, f: f, path: path, term: term, index: index, size: size, off: off}, nil
}

type partWriter struct {
	s           *Store
	f           *os.File
	path        string
	term, index uint64
	size, off   int64
	closed      bool
}

func (w *partWriter) Offset() int64 { return w.off }

func (w *partWriter) Write(p []byte) (int, error) {
	if w.off+int64(len(p)) > w.size {
		return 0, fmt.Errorf("storage: snapshot %s: %d bytes exceed the announced size %d", w.path, w.off+int64(len(p)), w.size)
	}
	n, err := w.f.Write(p)
	w.off += int64(n)
	return n, err
}

// Commit verifies the whole file and renames it into place. A file that
// fails verification is removed, so the next attempt starts from zero.
func (w *partWriter) Commit() error {
	if w.off != w.size {
		return fmt.Errorf("storage: snapshot %s: received %d of %d bytes", w.path, w.off, w.size)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("storage: sync snapshot %s: %w", w.path, err)
	}
	sf, err := openVerified(w.path)
	if err != nil {
		os.Remove(w.path)
		return err
	}
	meta := sf.Metadata
	sf.Close()
	if meta.GetTerm() != w.term || meta.GetIndex() != w.index {
		os.Remove(w.path)
		return fmt.Errorf("%w: received snapshot %s holds term %d index %d, announced term %d index %d",
			ErrCorrupt, w.path, meta.GetTerm(), meta.GetIndex(), w.term, w.index)
	}
	if err := os.Rename(w.path, w.s.snaps.path(w.term, w.index)); err != nil {
		return fmt.Errorf("storage: install snapshot %s: %w", w.path, err)
	}
	return syncDir(w.s.snaps.dir)
}

func (w *partWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.f.Close()
}
