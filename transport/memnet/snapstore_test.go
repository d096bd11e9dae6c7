package memnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cairn-db/cairn/transport"
)

var errBroken = errors.New("memstore: injected read failure")

type snapKey struct{ term, index uint64 }

// memStore is an in-memory transport.SnapshotStore that keeps the bytes of
// interrupted transfers, fails readers on demand and records what the
// transport did with it.
type memStore struct {
	mu        sync.Mutex
	committed map[snapKey][]byte
	partial   map[snapKey][]byte // bytes of interrupted transfers
	// failAt, if >= 0, makes the next reader opened fail once it has
	// returned that many bytes from the start of the data.
	failAt int64
	// gate, if set, is taken by the next reader opened: its first Read past
	// the first chunk sends on gate.reached and waits for gate.release.
	gate *readGate

	seeks   []int64 // offsets readers were seeked to
	commits int
	aborts  int // writers closed without Commit
}

type readGate struct {
	reached chan struct{}
	release chan struct{}
}

func newMemStore() *memStore {
	return &memStore{
		committed: make(map[snapKey][]byte),
		partial:   make(map[snapKey][]byte),
		failAt:    -1,
	}
}

// put makes a snapshot available for sending.
func (s *memStore) put(term, index uint64, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.committed[snapKey{term, index}] = bytes.Clone(data)
}

func (s *memStore) remove(term, index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.committed, snapKey{term, index})
}

func (s *memStore) get(term, index uint64) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.committed[snapKey{term, index}]
	return d, ok
}

func (s *memStore) partialLen(term, index uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.partial[snapKey{term, index}])
}

func (s *memStore) counts() (seeks []int64, commits, aborts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.seeks...), s.commits, s.aborts
}

func (s *memStore) OpenSnapshot(term, index uint64) (transport.SnapshotReader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.committed[snapKey{term, index}]
	if !ok {
		return nil, fmt.Errorf("memstore: no snapshot %d/%d", term, index)
	}
	r := &memReader{store: s, r: bytes.NewReader(d), size: int64(len(d)), failAt: s.failAt, gate: s.gate}
	s.failAt, s.gate = -1, nil
	return r, nil
}

func (s *memStore) ReceiveSnapshot(term, index uint64, size int64) (transport.SnapshotWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := snapKey{term, index}
	return &memWriter{store: s, key: k, size: size, buf: bytes.Clone(s.partial[k])}, nil
}

type memReader struct {
	store  *memStore
	r      *bytes.Reader
	size   int64
	failAt int64
	gate   *readGate
}

func (r *memReader) Read(p []byte) (int, error) {
	pos := r.size - int64(r.r.Len())
	if r.gate != nil && pos >= chunkSize {
		g := r.gate
		r.gate = nil
		g.reached <- struct{}{}
		<-g.release
	}
	if r.failAt >= 0 {
		if pos >= r.failAt {
			return 0, errBroken
		}
		if rest := r.failAt - pos; int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	return r.r.Read(p)
}

func (r *memReader) Seek(off int64, whence int) (int64, error) {
	r.store.mu.Lock()
	r.store.seeks = append(r.store.seeks, off)
	r.store.mu.Unlock()
	return r.r.Seek(off, whence)
}

func (r *memReader) Close() error { return nil }
func (r *memReader) Size() int64  { return r.size }

type memWriter struct {
	store     *memStore
	key       snapKey
	size      int64
	buf       []byte
	committed bool
	closed    bool
}

func (w *memWriter) Write(p []byte) (int, error) {
	if w.closed || w.committed {
		return 0, errors.New("memstore: write after close or commit")
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *memWriter) Offset() int64 { return int64(len(w.buf)) }

func (w *memWriter) Commit() error {
	if int64(len(w.buf)) != w.size {
		return fmt.Errorf("memstore: commit %d bytes of %d", len(w.buf), w.size)
	}
	w.store.mu.Lock()
	defer w.store.mu.Unlock()
	w.store.committed[w.key] = w.buf
	delete(w.store.partial, w.key)
	w.store.commits++
	w.committed = true
	return nil
}

func (w *memWriter) Close() error {
	if w.closed {
		return errors.New("memstore: writer closed twice")
	}
	w.closed = true
	if w.committed {
		return nil
	}
	w.store.mu.Lock()
	defer w.store.mu.Unlock()
	w.store.partial[w.key] = w.buf // kept for the next attempt
	w.store.aborts++
	return nil
}

var _ io.ReadSeeker = (*memReader)(nil)
