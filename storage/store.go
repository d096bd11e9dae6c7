package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Errors Open returns for data that cannot be used.
var (
	// ErrCorrupt marks a record on disk that failed its checks.
	ErrCorrupt = errors.New("storage: corrupt data")
	// ErrIdentity marks a data directory that belongs to another cluster or node.
	ErrIdentity = errors.New("storage: data directory belongs to another cluster or node")
)

// Options configure a Store.
type Options struct {
	// CacheEntries and CacheBytes bound the in-memory cache of recent log
	// entries.
	CacheEntries int
	CacheBytes   int
	// PebbleCacheBytes is the size of Pebble's block cache.
	PebbleCacheBytes int64
	// Logger receives Pebble's messages at debug level. Nil discards them.
	Logger *slog.Logger
	// FS is the filesystem everything is stored on. Nil: the OS's. Tests use
	// vfs.NewCrashableMem to lose exactly the writes that were not synced.
	FS vfs.FS
}

func (o *Options) setDefaults() {
	if o.CacheEntries <= 0 {
		o.CacheEntries = 8192
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.PebbleCacheBytes <= 0 {
		o.PebbleCacheBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
}

// Identity names the cluster and node a data directory belongs to.
type Identity struct {
	ClusterName string `json:"cluster_name"`
	ClusterID   uint64 `json:"cluster_id"`
	NodeID      uint64 `json:"node_id"`
}

// Store is a node's durable raft state. See the package doc.
type Store struct {
	fs      vfs.FS
	dir     string
	dbDir   string
	db      *pebble.DB
	lock    *dirLock
	snaps   *snapDir
	logger  *slog.Logger
	clean   bool       // the previous process marked a clean shutdown
	writeMu sync.Mutex // serialises Write, Compact and SetSnapshot against each other

	mu struct {
		sync.Mutex
		hardState *raftpb.HardState
		snapshot  *raftpb.Snapshot // latest snapshot, metadata only
		truncIdx  uint64           // index of the last entry removed by compaction or a snapshot
		truncTerm uint64           // its term
		last      uint64           // index of the last entry; truncIdx when the log is empty
		lastTerm  uint64
		cache     *entryCache
	}
}

// Open opens or creates the store in dir, locks the directory, and checks
// every record it will serve. It fails with ErrLocked if another process
// holds the directory, and with an error wrapping ErrCorrupt that names the
// file and index of the first bad record.
func Open(dir string, opts Options) (*Store, error) {
	opts.setDefaults()
	fs := opts.FS
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create data dir %s: %w", dir, err)
	}
	lock, err := lockDir(fs, dir)
	if err != nil {
		return nil, err
	}
	s := &Store{fs: fs, dir: dir, dbDir: fs.PathJoin(dir, "db"), lock: lock, logger: opts.Logger}
	s.mu.cache = newEntryCache(opts.CacheEntries, opts.CacheBytes)
	if s.snaps, err = openSnapDir(fs, fs.PathJoin(dir, "snap")); err != nil {
		lock.release()
		return nil, err
	}
	cache := pebble.NewCache(opts.PebbleCacheBytes)
	defer cache.Unref()
	popts := &pebble.Options{
		Cache:  cache,
		FS:     fs,
		Logger: pebbleLogger{opts.Logger},
	}
	// Bloom filters on every level: the state machine looks up each key it
	// writes (its current version), and most new keys are in no sstable.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	s.db, err = pebble.Open(s.dbDir, popts)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("storage: open %s: %w", s.dbDir, err)
	}
	// The marker says the last process stopped cleanly; it is removed at
	// once, so that a crash of this process leaves none behind.
	marker := fs.PathJoin(dir, cleanMarker)
	if _, err := fs.Stat(marker); err == nil {
		s.clean = true
		if err := fs.Remove(marker); err != nil {
			s.db.Close()
			lock.release()
			return nil, fmt.Errorf("storage: remove %s: %w", marker, err)
		}
	}
	// New directories exist after a power failure only once their parents'
	// entries are synced.
	for _, d := range []string{fs.PathDir(dir), dir} {
		if err := syncDir(fs, d); err != nil {
			s.db.Close()
			lock.release()
			return nil, err
		}
	}
	if err := s.load(); err != nil {
		s.db.Close()
		lock.release()
		return nil, err
	}
	return s, nil
}

const cleanMarker = "CLEAN"

// CleanStart reports whether the previous process that used the directory
// stopped cleanly (called MarkClean), rather than crashing.
func (s *Store) CleanStart() bool { return s.clean }

// MarkClean records a clean shutdown, after every write has been synced.
// Call it last before Close.
func (s *Store) MarkClean() error {
	if err := s.Sync(); err != nil {
		return err
	}
	path := s.fs.PathJoin(s.dir, cleanMarker)
	f, err := s.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("storage: mark clean shutdown: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("storage: mark clean shutdown: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("storage: mark clean shutdown: %w", err)
	}
	return syncDir(s.fs, s.dir)
}

// Close closes Pebble and releases the directory lock.
func (s *Store) Close() error {
	err := s.db.Close()
	if lerr := s.lock.release(); err == nil {
		err = lerr
	}
	return err
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// DB returns the Pebble instance, for a state machine that keeps its data
// beside the log. It must only use keys at or above UserKeyspaceStart.
func (s *Store) DB() *pebble.DB { return s.db }

// Identity returns the identity recorded in the directory, or ok=false if
// none has been recorded yet.
func (s *Store) Identity() (id Identity, ok bool, err error) {
	payload, found, err := s.getSealed(identityKey)
	if err != nil || !found {
		return Identity{}, false, err
	}
	if err := json.Unmarshal(payload, &id); err != nil {
		return Identity{}, false, fmt.Errorf("%w: identity in %s: %v", ErrCorrupt, s.dbDir, err)
	}
	return id, true, nil
}

// CheckIdentity records want in an empty directory, or checks that the
// directory already belongs to want. A mismatch wraps ErrIdentity and says
// both identities.
func (s *Store) CheckIdentity(want Identity) error {
	have, ok, err := s.Identity()
	if err != nil {
		return err
	}
	if ok {
		if have != want {
			return fmt.Errorf("%w: %s holds cluster %q (id %x) node %d, but this node is cluster %q (id %x) node %d",
				ErrIdentity, s.dir, have.ClusterName, have.ClusterID, have.NodeID, want.ClusterName, want.ClusterID, want.NodeID)
		}
		return nil
	}
	payload, err := json.Marshal(want)
	if err != nil {
		return err
	}
	if err := s.db.Set(identityKey, seal(payload), pebble.Sync); err != nil {
		return fmt.Errorf("storage: record identity in %s: %w", s.dbDir, err)
	}
	return nil
}

// IsEmpty reports whether the store has never held raft state: no entries,
// no HardState and no snapshot. A new node bootstraps only an empty store.
func (s *Store) IsEmpty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.last == 0 && isEmptyHardState(s.mu.hardState) && s.mu.snapshot.GetMetadata().GetIndex() == 0
}

// load reads the HardState, the snapshot metadata and the whole log, checking
// every record.
func (s *Store) load() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.hardState = &raftpb.HardState{}
	if err := s.getProto(hardStateKey, s.mu.hardState); err != nil {
		return err
	}
	s.mu.snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{ConfState: &raftpb.ConfState{}}}
	if err := s.getProto(snapshotKey, s.mu.snapshot); err != nil {
		return err
	}
	if idx := s.mu.snapshot.GetMetadata().GetIndex(); idx > 0 {
		if err := s.snaps.verify(s.mu.snapshot.GetMetadata().GetTerm(), idx); err != nil {
			return err
		}
	}
	var trunc raftpb.Entry
	if err := s.getProto(truncatedKey, &trunc); err != nil {
		return err
	}
	s.mu.truncIdx, s.mu.truncTerm = trunc.GetIndex(), trunc.GetTerm()
	s.mu.last, s.mu.lastTerm = s.mu.truncIdx, s.mu.truncTerm

	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKey(0), UpperBound: logUpperBound})
	if err != nil {
		return fmt.Errorf("storage: read log in %s: %w", s.dbDir, err)
	}
	defer it.Close()
	expect := s.mu.truncIdx + 1
	for valid := it.First(); valid; valid = it.Next() {
		idx, ok := logKeyIndex(it.Key())
		if !ok {
			return fmt.Errorf("%w: %s: malformed log key %x", ErrCorrupt, s.dbDir, it.Key())
		}
		if idx != expect {
			return fmt.Errorf("%w: %s: log entry %d missing (found %d next)", ErrCorrupt, s.dbDir, expect, idx)
		}
		e, err := decodeEntry(idx, it.Value())
		if err != nil {
			return fmt.Errorf("%w: %s: log entry %d: %v", ErrCorrupt, s.dbDir, idx, err)
		}
		if e.GetTerm() < s.mu.lastTerm {
			return fmt.Errorf("%w: %s: log entry %d has term %d, below the term %d before it", ErrCorrupt, s.dbDir, idx, e.GetTerm(), s.mu.lastTerm)
		}
		s.mu.cache.append([]*raftpb.Entry{e})
		s.mu.last, s.mu.lastTerm = idx, e.GetTerm()
		expect++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("%w: %s: reading log after entry %d: %v", ErrCorrupt, s.dbDir, expect-1, err)
	}
	if c := s.mu.hardState.GetCommit(); c > s.mu.last {
		return fmt.Errorf("%w: %s: HardState commits index %d but the log ends at %d", ErrCorrupt, s.dbDir, c, s.mu.last)
	}
	return nil
}

func decodeEntry(idx uint64, v []byte) (*raftpb.Entry, error) {
	payload, err := unseal(v)
	if err != nil {
		return nil, err
	}
	e := &raftpb.Entry{}
	if err := proto.Unmarshal(payload, e); err != nil {
		return nil, err
	}
	if e.GetIndex() != idx {
		return nil, errWrongIndex
	}
	return e, nil
}

// getSealed reads a checksummed value; found is false if the key is absent.
func (s *Store) getSealed(key []byte) (payload []byte, found bool, err error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: read %s: %w", s.dbDir, err)
	}
	defer closer.Close()
	p, err := unseal(v)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %s: key %q: %v", ErrCorrupt, s.dbDir, key[1:], err)
	}
	return append([]byte(nil), p...), true, nil
}

// getProto reads a checksummed proto into m, leaving m as is if absent.
func (s *Store) getProto(key []byte, m proto.Message) error {
	payload, found, err := s.getSealed(key)
	if err != nil || !found {
		return err
	}
	if err := proto.Unmarshal(payload, m); err != nil {
		return fmt.Errorf("%w: %s: key %q: %v", ErrCorrupt, s.dbDir, key[1:], err)
	}
	return nil
}

func sealProto(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		// Marshalling a raftpb message only fails on invalid UTF-8 in proto3
		// strings, which raftpb (proto2, no strings) cannot hold.
		panic(fmt.Sprintf("storage: marshal %T: %v", m, err))
	}
	return seal(b)
}

func isEmptyHardState(hs *raftpb.HardState) bool {
	return hs.GetTerm() == 0 && hs.GetVote() == 0 && hs.GetCommit() == 0
}

// pebbleLogger sends Pebble's chatter to slog at debug level.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	panic(fmt.Sprintf("pebble: "+format, args...))
}
