package grpcnet

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-db/cairn/transport"
)

// fileStore is a file-backed transport.SnapshotStore, the smallest one that
// behaves like the storage package's: complete snapshots in <term>-<index>.snap,
// a transfer in progress in <term>-<index>.part, kept across failed attempts.
type fileStore struct {
	dir string

	// wrapReader, when set, wraps every reader OpenSnapshot returns.
	wrapReader func(transport.SnapshotReader) transport.SnapshotReader
	// writeRate, when set, limits the bytes written per second, as a slow
	// disk or a slow link would.
	writeRate int64

	commits atomic.Int64
	closes  atomic.Int64
}

func newFileStore(t testing.TB) *fileStore { return &fileStore{dir: t.TempDir()} }

func (s *fileStore) path(term, index uint64, ext string) string {
	return filepath.Join(s.dir, fmt.Sprintf("%d-%d.%s", term, index, ext))
}

// put stores a complete snapshot, as the sender's state machine would have.
func (s *fileStore) put(t testing.TB, term, index uint64, data []byte) {
	t.Helper()
	if err := os.WriteFile(s.path(term, index, "snap"), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// committed returns the data of a committed snapshot, or nil.
func (s *fileStore) committed(term, index uint64) []byte {
	b, err := os.ReadFile(s.path(term, index, "snap"))
	if err != nil {
		return nil
	}
	return b
}

// partial returns the size of a transfer's kept bytes, or -1.
func (s *fileStore) partial(term, index uint64) int64 {
	st, err := os.Stat(s.path(term, index, "part"))
	if err != nil {
		return -1
	}
	return st.Size()
}

func (s *fileStore) OpenSnapshot(term, index uint64) (transport.SnapshotReader, error) {
	f, err := os.Open(s.path(term, index, "snap"))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	var r transport.SnapshotReader = &fileReader{File: f, size: st.Size()}
	if s.wrapReader != nil {
		r = s.wrapReader(r)
	}
	return r, nil
}

func (s *fileStore) ReceiveSnapshot(term, index uint64, size int64) (transport.SnapshotWriter, error) {
	part := s.path(term, index, "part")
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fileWriter{store: s, f: f, part: part, final: s.path(term, index, "snap"),
		offset: st.Size(), size: size, rate: s.writeRate, start: time.Now()}, nil
}

type fileReader struct {
	*os.File
	size int64
}

func (r *fileReader) Size() int64 { return r.size }

type fileWriter struct {
	store       *fileStore
	f           *os.File
	part, final string
	offset      int64
	size        int64
	closeOnce   sync.Once

	rate    int64 // bytes per second, 0 for no limit
	start   time.Time
	written int64
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.offset += int64(n)
	if w.rate > 0 {
		w.written += int64(n)
		due := w.start.Add(time.Duration(w.written * int64(time.Second) / w.rate))
		time.Sleep(time.Until(due))
	}
	return n, err
}

func (w *fileWriter) Offset() int64 { return w.offset }

func (w *fileWriter) Commit() error {
	if w.offset != w.size {
		return fmt.Errorf("snapshot has %d of %d bytes", w.offset, w.size)
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(w.part, w.final); err != nil {
		return err
	}
	w.store.commits.Add(1)
	return nil
}

func (w *fileWriter) Close() error {
	var err error
	w.closeOnce.Do(func() {
		err = w.f.Close()
		w.store.closes.Add(1)
	})
	return err
}

var errInjected = errors.New("injected read failure")

// countingReader counts the bytes read through it and, when failAfter >= 0,
// fails once that many bytes have been read.
type countingReader struct {
	transport.SnapshotReader
	read      *atomic.Int64
	failAfter int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.failAfter >= 0 {
		left := r.failAfter - r.read.Load()
		if left <= 0 {
			return 0, errInjected
		}
		p = p[:min(int64(len(p)), left)]
	}
	n, err := r.SnapshotReader.Read(p)
	r.read.Add(int64(n))
	return n, err
}

var _ io.ReadSeeker = (*countingReader)(nil)
