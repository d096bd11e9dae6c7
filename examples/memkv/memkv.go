// Package memkv is a small in-memory key-value state machine: the example
// that shows how to implement engine.StateMachine, and the state machine
// the engine's own tests run.
//
// Commands are built with Set and Delete and proposed with engine.Propose;
// Apply returns a Result for each. The state lives in memory, so
// AppliedIndex is always 0 and the engine restores it from the latest
// snapshot and the log after a restart. A running hash over every applied
// command lets tests check that all nodes applied the same sequence.
package memkv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"sync"

	"github.com/cairn-db/cairn/engine"
)

const (
	opSet byte = 1
	opDel byte = 2
)

// Set returns the command that sets key to value.
func Set(key, value string) []byte { return encode(opSet, key, value) }

// Delete returns the command that deletes key.
func Delete(key string) []byte { return encode(opDel, key, "") }

func encode(op byte, key, value string) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+len(value))
	b = append(b, op)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, value...)
}

// Result is what Apply returns for one command.
type Result struct {
	Index uint64
	// Prev is the value before the command, Existed whether there was one.
	Prev    string
	Existed bool
	// Err is set for a command the state machine could not decode; the
	// entry is still applied (as nothing), so every node agrees.
	Err error
}

// ErrBadCommand is returned in Result.Err for a malformed command.
var ErrBadCommand = errors.New("memkv: malformed command")

// Store is the state machine. It is safe for concurrent reads (Get, Len,
// Hash) while the engine applies.
type Store struct {
	mu      sync.RWMutex
	data    map[string]string
	applied uint64
	hash    uint64 // running FNV-1a over (index, command) of every applied entry

	// OnApply, if set, is called for each applied entry, from the apply loop.
	OnApply func(engine.Entry)
}

// New returns an empty store.
func New() *Store { return &Store{data: map[string]string{}} }

var _ engine.StateMachine = (*Store)(nil)

// Apply implements engine.StateMachine.
func (s *Store) Apply(entries []engine.Entry) ([]any, error) {
	out := make([]any, len(entries))
	s.mu.Lock()
	for i, e := range entries {
		r := Result{Index: e.Index}
		op, key, value, err := decode(e.Data)
		switch {
		case err != nil:
			r.Err = err
		case op == opSet:
			r.Prev, r.Existed = s.data[key]
			s.data[key] = value
		case op == opDel:
			r.Prev, r.Existed = s.data[key]
			delete(s.data, key)
		}
		s.hash = chain(s.hash, e.Index, e.Data)
		s.applied = e.Index
		out[i] = r
	}
	s.mu.Unlock()
	if s.OnApply != nil {
		for _, e := range entries {
			s.OnApply(e)
		}
	}
	return out, nil
}

func chain(h, index uint64, data []byte) uint64 {
	f := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], h)
	binary.LittleEndian.PutUint64(b[8:], index)
	f.Write(b[:])
	f.Write(data)
	return f.Sum64()
}

func decode(b []byte) (op byte, key, value string, err error) {
	if len(b) < 2 || (b[0] != opSet && b[0] != opDel) {
		return 0, "", "", ErrBadCommand
	}
	n, l := binary.Uvarint(b[1:])
	if l <= 0 || n > uint64(len(b)-1-l) {
		return 0, "", "", ErrBadCommand
	}
	rest := b[1+l:]
	return b[0], string(rest[:n]), string(rest[n:]), nil
}

// AppliedIndex implements engine.StateMachine: nothing is kept on disk.
func (s *Store) AppliedIndex() (uint64, error) { return 0, nil }

// Get returns the value of key.
func (s *Store) Get(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.data[key]
	return v, ok
}

// Len returns the number of keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.data)
}

// Hash returns the index of the last applied entry and the running hash of
// all applied entries up to it. Two nodes that applied the same sequence
// report the same hash at the same index.
func (s *Store) Hash() (index, hash uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied, s.hash
}

// Snapshot implements engine.StateMachine by copying the map: simple, and
// fine for an example; a large state machine would use a copy-on-write
// structure or a storage engine's snapshot instead.
func (s *Store) Snapshot() (engine.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &snapshot{data: maps.Clone(s.data), applied: s.applied, hash: s.hash}, nil
}

type snapshot struct {
	data    map[string]string
	applied uint64
	hash    uint64
}

func (sn *snapshot) Release() {}

// WriteTo writes: applied u64 | hash u64 | count u64 | (klen uvarint, key, vlen uvarint, value)*.
func (sn *snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	var b [binary.MaxVarintLen64]byte
	binary.Write(bw, binary.LittleEndian, sn.applied)
	binary.Write(bw, binary.LittleEndian, sn.hash)
	binary.Write(bw, binary.LittleEndian, uint64(len(sn.data)))
	for k, v := range sn.data {
		bw.Write(b[:binary.PutUvarint(b[:], uint64(len(k)))])
		bw.WriteString(k)
		bw.Write(b[:binary.PutUvarint(b[:], uint64(len(v)))])
		bw.WriteString(v)
	}
	err := bw.Flush()
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore implements engine.StateMachine.
func (s *Store) Restore(r io.Reader, index uint64) error {
	br := bufio.NewReader(r)
	var applied, hash, count uint64
	if err := binary.Read(br, binary.LittleEndian, &applied); err != nil {
		return fmt.Errorf("memkv: restore: %w", err)
	}
	if err := binary.Read(br, binary.LittleEndian, &hash); err != nil {
		return fmt.Errorf("memkv: restore: %w", err)
	}
	if err := binary.Read(br, binary.LittleEndian, &count); err != nil {
		return fmt.Errorf("memkv: restore: %w", err)
	}
	data := make(map[string]string, min(count, 1<<20))
	readString := func() (string, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return "", err
		}
		if n > 1<<30 {
			return "", fmt.Errorf("length %d too large", n)
		}
		buf := make([]byte, n)
		_, err = io.ReadFull(br, buf)
		return string(buf), err
	}
	for i := uint64(0); i < count; i++ {
		k, err := readString()
		if err != nil {
			return fmt.Errorf("memkv: restore key %d of %d: %w", i, count, err)
		}
		v, err := readString()
		if err != nil {
			return fmt.Errorf("memkv: restore value %d of %d: %w", i, count, err)
		}
		data[k] = v
	}
	s.mu.Lock()
	// applied is the last command the snapshot holds, which may precede
	// index (the snapshot's entry may be a membership change).
	s.data, s.applied, s.hash = data, applied, hash
	s.mu.Unlock()
	return nil
}
