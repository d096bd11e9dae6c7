package storage

import (
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-db/cairn/transport"
)

var _ transport.SnapshotStore = (*Store)(nil)

// OpenSnapshot implements transport.SnapshotStore: the raw bytes of a
// complete snapshot file, as they are sent to a peer.
func (s *Store) OpenSnapshot(term, index uint64) (transport.SnapshotReader, error) {
	path := s.snaps.path(term, index)
	f, err := s.fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("storage: open snapshot %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: stat snapshot %s: %w", path, err)
	}
	return &fileReader{SectionReader: io.NewSectionReader(f, 0, st.Size()), f: f}, nil
}

type fileReader struct {
	*io.SectionReader
	f vfs.File
}

func (r *fileReader) Close() error { return r.f.Close() }

// ReceiveSnapshot implements transport.SnapshotStore. Bytes go to a .part
// file named after the snapshot and its size, so a second attempt at the same
// transfer appends to what the first one kept.
func (s *Store) ReceiveSnapshot(term, index uint64, size int64) (transport.SnapshotWriter, error) {
	if size <= 0 {
		return nil, fmt.Errorf("storage: receive snapshot %d: invalid size %d", index, size)
	}
	path := s.snaps.partPath(term, index, size)
	var off int64
	if st, err := s.fs.Stat(path); err == nil {
		off = st.Size()
	}
	if off > size {
		// More bytes than the snapshot has: not ours to trust; start over.
		s.fs.Remove(path)
		off = 0
	}
	f, err := s.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("storage: receive snapshot %s: %w", path, err)
	}
	return &partWriter{s: s, f: f, path: path, term: term, index: index, size: size, off: off}, nil
}

type partWriter struct {
	s           *Store
	f           vfs.File
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
	n, err := w.f.WriteAt(p, w.off)
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
	fs := w.s.fs
	sf, err := openVerified(fs, w.path)
	if err != nil {
		fs.Remove(w.path)
		return err
	}
	meta := sf.Metadata
	sf.Close()
	if meta.GetTerm() != w.term || meta.GetIndex() != w.index {
		fs.Remove(w.path)
		return fmt.Errorf("%w: received snapshot %s holds term %d index %d, announced term %d index %d",
			ErrCorrupt, w.path, meta.GetTerm(), meta.GetIndex(), w.term, w.index)
	}
	if err := fs.Rename(w.path, w.s.snaps.path(w.term, w.index)); err != nil {
		return fmt.Errorf("storage: install snapshot %s: %w", w.path, err)
	}
	return w.s.snaps.sync()
}

func (w *partWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.f.Close()
}
