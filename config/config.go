package config

import (
	"io"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/watch"
)

// Config mirrors the configuration file: one field per section. Start from
// Default (or Load); a zero Config is not valid.
type Config struct {
	Cluster Cluster                  `toml:"cluster"`
	Raft    Raft                     `toml:"raft"`
	Network transport.NetworkOptions `toml:"network"`
	Storage Storage                  `toml:"storage"`
	Log     Log                      `toml:"log"`
	Metrics Metrics                  `toml:"metrics"`
}

// Cluster is [cluster]: who this member is, where it keeps its data and
// listens, and which cluster it starts or joins.
type Cluster struct {
	// Name is the cluster's name; members and data directories of another
	// cluster are refused.
	Name string `toml:"name"`
	// MemberName is this member's name, unique in its cluster.
	MemberName string `toml:"member_name"`
	// DataDir holds the member's log, state and snapshots.
	DataDir string `toml:"data_dir"`
	// ListenClient is the host:port the etcd v3 API listens on.
	ListenClient string `toml:"listen_client"`
	// ListenPeer is the host:port other members connect to.
	ListenPeer string `toml:"listen_peer"`
	// AdvertiseClient is the client URL published to the cluster. Empty:
	// derived from the address ListenClient is bound to.
	AdvertiseClient string `toml:"advertise_client"`
	// InitialCluster lists the members of a new cluster as
	// "name=host:port,name=host:port" (peer addresses), this member
	// included. Empty: a one-node cluster of this member.
	InitialCluster string `toml:"initial_cluster"`
	// Join lists client addresses (host:port) of a running cluster to join.
	Join []string `toml:"join"`
}

// Raft is [raft] and its subsections.
type Raft struct {
	engine.RaftConfig
	Persistence     engine.PersistenceConfig     `toml:"persistence"`
	Snapshot        engine.SnapshotConfig        `toml:"snapshot"`
	ReadConsistency engine.ReadConsistencyConfig `toml:"read_consistency"`
	Watch           watch.Config                 `toml:"watch"`
	RPCCompression  transport.Compression        `toml:"rpc_compression"`
}

// Storage is [storage].
type Storage struct {
	// QuotaBytes is the storage size past which writes are refused (the
	// NOSPACE alarm).
	QuotaBytes int64 `toml:"quota_bytes"`
	// CacheSize is the size of Pebble's block cache, in bytes.
	CacheSize int64 `toml:"cache_size"`
	// MaxRequestBytes bounds one client request.
	MaxRequestBytes int `toml:"max_request_bytes"`
	// SlowFsyncMs is the duration of a synced log write past which a
	// slow-fsync event is reported.
	SlowFsyncMs int `toml:"slow_fsync_ms"`
	// FlushLagThreshold is the MemFirst flush lag, in entries, past which a
	// flush-lag-high event is reported.
	FlushLagThreshold uint64 `toml:"flush_lag_threshold"`
}

// Log is [log].
type Log struct {
	// Level is the least severe level logged: debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text (key=value) or json.
	Format string `toml:"format"`
	// Output receives the logs. Nil: os.Stderr. Not read from the file.
	Output io.Writer `toml:"-"`
}

// Metrics is [metrics]: the HTTP listener of /metrics (Prometheus),
// /health and /ready.
type Metrics struct {
	// Address is the host:port the listener binds. Empty: no listener, and
	// nothing is measured.
	Address string `toml:"address"`
	// Pprof also serves net/http/pprof under /debug/pprof/ on it.
	Pprof bool `toml:"pprof"`
}

// Default returns the configuration of a one-node cluster on a laptop: data
// in ./cairn-data, clients on 127.0.0.1:2379, peers on 127.0.0.1:2380.
func Default() Config {
	e := engine.DefaultConfig()
	w := watch.DefaultConfig()
	w.Logger = nil // built by ServerOptions from [log]
	return Config{
		Cluster: Cluster{
			Name:         e.ClusterName,
			MemberName:   "default",
			DataDir:      "cairn-data",
			ListenClient: "127.0.0.1:2379",
			ListenPeer:   e.ListenPeer,
		},
		Raft: Raft{
			RaftConfig:      e.Raft,
			Persistence:     e.Persistence,
			Snapshot:        e.Snapshot,
			ReadConsistency: e.ReadConsistency,
			Watch:           w,
			RPCCompression:  e.Compression,
		},
		Network: e.Network,
		Storage: Storage{
			QuotaBytes:        8 << 30,
			CacheSize:         64 << 20,
			SlowFsyncMs:       int(engine.DefaultSlowFsyncThreshold / time.Millisecond),
			FlushLagThreshold: 4000,
			MaxRequestBytes:   e.Raft.MaxProposalBytes,
		},
		Log: Log{Level: "info", Format: "text"},
	}
}
