package engine

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"time"

	"github.com/cairn-db/cairn/storage"
	"github.com/cairn-db/cairn/transport"
)

// Peer is a member of the initial cluster.
type Peer struct {
	ID   uint64
	Addr string
}

// Config configures an Engine. Zero values take the defaults documented on
// each field; Validate names the first bad field.
type Config struct {
	// NodeID identifies this node in its cluster; never 0, never reused.
	NodeID uint64
	// ClusterName identifies the cluster. A data directory or a peer of
	// another cluster is refused. Default "cairn".
	ClusterName string
	// DataDir holds the node's log, state and snapshots. Required.
	DataDir string
	// ListenPeer is the address the gRPC transport listens on for peers.
	// Default "127.0.0.1:2380". Ignored when Transport is set.
	ListenPeer string
	// PeerListener, if set, is the gRPC transport's listener, bound by the
	// caller (ListenPeer then only names it): tests that must know every
	// peer's address before the nodes start bind them first, with no
	// window in which another process could take a port. The engine closes
	// it.
	PeerListener net.Listener
	// InitialCluster lists the members a new cluster starts with, this node
	// included. Empty means a one-node cluster of this node at ListenPeer.
	// It is only used to bootstrap an empty data directory.
	InitialCluster []Peer
	// Join starts the node empty, waiting to be added to a running cluster
	// by AddVoter or AddLearner on one of its members.
	Join bool

	Raft        RaftConfig
	Persistence PersistenceConfig
	Snapshot    SnapshotConfig
	// ReadConsistency is the read policy and its tuning
	// ([raft.read_consistency]); see ReadPolicy.
	ReadConsistency ReadConsistencyConfig
	Network         transport.NetworkOptions
	// Compression switches gzip per kind of peer traffic. Its zero value
	// compresses nothing; DefaultConfig compresses snapshots.
	Compression transport.Compression
	Storage     storage.Options

	// StateMachine receives committed entries. Required.
	StateMachine StateMachine
	// NewTransport, if set, replaces the gRPC transport (tests use
	// transport/memnet). It is called once the node's storage is open, with
	// the snapshot store the transport streams snapshots from and to. The
	// engine starts and closes the transport.
	NewTransport func(snaps transport.SnapshotStore) (transport.Transport, error)
	// Reporter receives the engine's events. Nil: none are built.
	Reporter Reporter
	// FlushLagThreshold is the MemFirst flush lag, in entries (last index −
	// durable index), over which EventFlushLagHigh is reported; once the lag
	// is back to half of it or less, EventFlushLagNormal is. Default: 4 ×
	// the flush policy's Batch threshold (4000 with the default policy),
	// 4000 under "Immediate": well above the lag the policy lets build up
	// in normal operation, so that the event means the flusher cannot keep
	// up with the writes.
	FlushLagThreshold uint64
	// SlowFsyncThreshold is the duration of a synced write of the log (the
	// write and its fsync, as FsyncObserver times it) over which
	// EventSlowFsync is reported. Default 100 ms: a tenth of the default
	// election timeout, and far beyond what a healthy SSD needs (a few ms).
	// etcd logs a warning at 1 s for its WAL's fsync; an event is cheap and
	// discrete, so cairn reports earlier, when a disk slows commits enough
	// to matter but well before it threatens leadership.
	SlowFsyncThreshold time.Duration
	// FsyncObserver, if set, is called with the duration of every synced
	// write of the log (the write and its fsync: DiskFirst's log writer,
	// MemFirst's flusher), on the goroutine that wrote, right after the
	// write. It must be fast and never block. Nil: nothing is timed.
	FsyncObserver func(time.Duration)
	// Logger receives structured logs. Nil: slog.Default().
	Logger *slog.Logger
}

// RaftConfig tunes the raft node ([raft] in the configuration file).
type RaftConfig struct {
	// TickMs is the length of one raft tick in milliseconds. Default 100.
	TickMs int `toml:"tick_ms"`
	// ElectionTick is the election timeout in ticks. Default 10.
	ElectionTick int `toml:"election_tick"`
	// HeartbeatTick is the heartbeat interval in ticks. Default 1.
	HeartbeatTick int `toml:"heartbeat_tick"`
	// MaxSizePerMsg bounds the entries in one append message. Default 1 MiB.
	MaxSizePerMsg uint64 `toml:"max_size_per_msg"`
	// MaxInflightMsgs bounds append messages in flight to one follower. Default 256.
	MaxInflightMsgs int `toml:"max_inflight_msgs"`
	// MaxUncommittedBytes bounds the leader's uncommitted log; proposals past it
	// are dropped. Default 64 MiB.
	MaxUncommittedBytes uint64 `toml:"max_uncommitted_bytes"`
	// MaxProposalBytes bounds one proposal. Default 1.5 MiB (etcd's request limit).
	MaxProposalBytes int `toml:"max_proposal_bytes"`
	// DisablePreVote and DisableCheckQuorum turn off what is on by default:
	// a partitioned node rejoining does not disrupt the leader (PreVote), and a
	// leader that lost its quorum steps down (CheckQuorum).
	DisablePreVote     bool `toml:"disable_pre_vote"`
	DisableCheckQuorum bool `toml:"disable_check_quorum"`
}

// Tick returns TickMs as a duration.
func (r RaftConfig) Tick() time.Duration { return time.Duration(r.TickMs) * time.Millisecond }

// SnapshotConfig is the snapshot and log compaction policy ([raft.snapshot]).
type SnapshotConfig struct {
	// Threshold is the number of applied entries after which a new snapshot is
	// taken. Default 10000.
	Threshold uint64 `toml:"threshold"`
	// CatchUpMargin is the number of entries kept in the log behind a
	// snapshot, so that a follower slightly behind catches up from the log
	// instead of needing the snapshot. Default 5000.
	CatchUpMargin uint64 `toml:"catch_up_margin"`
}

// DefaultSlowFsyncThreshold is Config.SlowFsyncThreshold's default.
const DefaultSlowFsyncThreshold = 100 * time.Millisecond

// DefaultConfig returns a configuration that runs a one-node cluster on a
// laptop; DataDir and StateMachine still need setting.
func DefaultConfig() Config {
	c := Config{Compression: transport.DefaultCompression()}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.ClusterName == "" {
		c.ClusterName = "cairn"
	}
	if c.NodeID == 0 && len(c.InitialCluster) == 0 && !c.Join {
		c.NodeID = 1
	}
	if c.ListenPeer == "" {
		c.ListenPeer = "127.0.0.1:2380"
	}
	r := &c.Raft
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&r.TickMs, 100)
	def(&r.ElectionTick, 10)
	def(&r.HeartbeatTick, 1)
	def(&r.MaxInflightMsgs, 256)
	def(&r.MaxProposalBytes, 3<<19)
	if r.MaxSizePerMsg == 0 {
		r.MaxSizePerMsg = 1 << 20
	}
	if r.MaxUncommittedBytes == 0 {
		r.MaxUncommittedBytes = 64 << 20
	}
	if c.Persistence.Strategy == "" {
		c.Persistence.Strategy = DiskFirst
	}
	if c.Persistence.FlushPolicy == (FlushPolicy{}) {
		c.Persistence.FlushPolicy = DefaultFlushPolicy()
	}
	if c.FlushLagThreshold == 0 {
		c.FlushLagThreshold = 4000
		if fp := c.Persistence.FlushPolicy; !fp.Immediate && fp.Threshold > 0 {
			c.FlushLagThreshold = 4 * uint64(fp.Threshold)
		}
	}
	if c.SlowFsyncThreshold == 0 {
		c.SlowFsyncThreshold = DefaultSlowFsyncThreshold
	}
	if c.Snapshot.Threshold == 0 {
		c.Snapshot.Threshold = 10000
	}
	if c.Snapshot.CatchUpMargin == 0 {
		c.Snapshot.CatchUpMargin = 5000
	}
	c.ReadConsistency.setDefaults(c.Raft)
	c.Network = c.Network.WithDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ErrInvalidConfig marks every configuration error.
var ErrInvalidConfig = errors.New("engine: invalid config")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// Validate applies defaults and checks c, naming the first bad field.
func (c *Config) Validate() error {
	c.setDefaults()
	switch {
	case c.NodeID == 0:
		return invalid("node id must be set (and not 0) for a cluster member")
	case c.DataDir == "":
		return invalid("data dir must be set")
	case c.StateMachine == nil:
		return invalid("a state machine must be set")
	case c.Raft.TickMs < 1:
		return invalid("raft.tick_ms = %d: must be at least 1", c.Raft.TickMs)
	case c.Raft.HeartbeatTick < 1:
		return invalid("raft.heartbeat_tick = %d: must be at least 1", c.Raft.HeartbeatTick)
	case c.Raft.ElectionTick <= c.Raft.HeartbeatTick:
		return invalid("raft.election_tick = %d: must be greater than raft.heartbeat_tick (%d)", c.Raft.ElectionTick, c.Raft.HeartbeatTick)
	case c.Raft.MaxInflightMsgs < 1:
		return invalid("raft.max_inflight_msgs = %d: must be at least 1", c.Raft.MaxInflightMsgs)
	case c.Raft.MaxProposalBytes < 1:
		return invalid("raft.max_proposal_bytes = %d: must be at least 1", c.Raft.MaxProposalBytes)
	case c.SlowFsyncThreshold < 0:
		return invalid("slow fsync threshold = %v: must not be negative", c.SlowFsyncThreshold)
	case c.Snapshot.CatchUpMargin > c.Snapshot.Threshold*10:
		return invalid("raft.snapshot.catch_up_margin = %d: must be at most 10 × threshold (%d)", c.Snapshot.CatchUpMargin, c.Snapshot.Threshold)
	}
	if err := c.Persistence.Validate(); err != nil {
		return err
	}
	if err := c.ReadConsistency.validate(c.Raft); err != nil {
		return err
	}
	if err := c.Network.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	seen := map[uint64]bool{}
	self := false
	for _, p := range c.InitialCluster {
		if p.ID == 0 {
			return invalid("initial cluster: member id 0 is not allowed")
		}
		if seen[p.ID] {
			return invalid("initial cluster: member id %d listed twice", p.ID)
		}
		if p.Addr == "" {
			return invalid("initial cluster: member %d has no address", p.ID)
		}
		seen[p.ID] = true
		self = self || p.ID == c.NodeID
	}
	if len(c.InitialCluster) > 0 && !self && !c.Join {
		return invalid("initial cluster does not include this node (id %d)", c.NodeID)
	}
	return nil
}

// ClusterID derives the cluster's numeric id from its name.
func (c *Config) ClusterID() uint64 {
	h := fnv.New64a()
	h.Write([]byte(c.ClusterName))
	return h.Sum64()
}
