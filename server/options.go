package server

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/cairn-db/cairn"
)

// Options configures a Server. Zero values take the defaults documented on
// each field.
type Options struct {
	// DB configures the node underneath: the engine (DB.Engine) and the
	// key-value state machine (DB.KV). Its Engine.NodeID, InitialCluster and
	// Join are filled in by the server from the fields below when left zero.
	DB cairn.Config

	// Name is this member's name, unique in its cluster (etcd's --name).
	// Default "default".
	Name string
	// InitialCluster maps member names to peer addresses (host:port) for a
	// new cluster, this member included. Empty: a one-node cluster of this
	// member at DB.Engine.ListenPeer. Member ids derive from the cluster
	// name and the member names (MemberID).
	InitialCluster map[string]string
	// Join lists client addresses (host:port) of a running cluster. A node
	// with an empty data directory asks them for its member id (a member
	// added with its peer address and not started yet) or adds itself, then
	// starts empty and catches up. With existing data, Join is ignored.
	Join []string

	// ListenClient is the address the etcd v3 gRPC API listens on.
	// Default "127.0.0.1:2379"; port 0 picks a free port (see ClientAddr).
	ListenClient string
	// AdvertiseClient is the client URL published to other members and to
	// clients (etcd's --advertise-client-urls). Default: http:// and the
	// address ListenClient is bound to.
	AdvertiseClient string

	// QuotaBytes is the storage size past which the NOSPACE alarm is raised
	// and writes are refused until the alarm is disarmed ([storage]
	// quota_bytes). Default 8 GiB.
	QuotaBytes int64
	// MaxRequestBytes bounds one client request. Default: the engine's
	// raft.max_proposal_bytes (1.5 MiB).
	MaxRequestBytes int
	// CompressResponses gzips responses to clients that accept it
	// ([raft.rpc_compression] client). Default off.
	CompressResponses bool

	// MetricsAddr is the address (host:port) of the HTTP listener that
	// serves /metrics (Prometheus), /health and /ready ([metrics] address);
	// port 0 picks a free port (see MetricsAddr). Default "": no listener,
	// and nothing is measured.
	MetricsAddr string
	// Pprof also serves net/http/pprof under /debug/pprof/ on the metrics
	// listener ([metrics] pprof). Default off.
	Pprof bool

	// Logger receives structured logs. Nil: DB.Engine.Logger, or slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultName         = "default"
	DefaultListenClient = "127.0.0.1:2379"
	DefaultQuotaBytes   = 8 << 30
)

func (o *Options) setDefaults() error {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.ListenClient == "" {
		o.ListenClient = DefaultListenClient
	}
	if o.QuotaBytes == 0 {
		o.QuotaBytes = DefaultQuotaBytes
	}
	e := &o.DB.Engine
	if e.Logger == nil {
		e.Logger = o.Logger
	}
	if e.Logger == nil {
		e.Logger = slog.Default()
	}
	if o.Logger == nil {
		o.Logger = e.Logger
	}
	if e.Raft.MaxProposalBytes == 0 {
		e.Raft.MaxProposalBytes = 3 << 19
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = e.Raft.MaxProposalBytes
	}
	switch {
	case o.QuotaBytes < 0:
		return fmt.Errorf("%w: storage.quota_bytes = %d: must be positive", ErrInvalidOptions, o.QuotaBytes)
	case o.MaxRequestBytes < 0:
		return fmt.Errorf("%w: storage.max_request_bytes = %d: must be positive", ErrInvalidOptions, o.MaxRequestBytes)
	case e.DataDir == "":
		return fmt.Errorf("%w: cluster.data_dir must be set", ErrInvalidOptions)
	case len(o.InitialCluster) > 0 && len(o.Join) > 0:
		return fmt.Errorf("%w: cluster.initial_cluster and cluster.join are exclusive: a new cluster or joining a running one", ErrInvalidOptions)
	}
	if _, err := hostPort(o.ListenClient); err != nil {
		return fmt.Errorf("%w: cluster.listen_client = %q: want host:port: %v", ErrInvalidOptions, o.ListenClient, err)
	}
	if o.AdvertiseClient != "" {
		if _, err := hostPort(o.AdvertiseClient); err != nil {
			return fmt.Errorf("%w: cluster.advertise_client = %q: want a URL or host:port: %v", ErrInvalidOptions, o.AdvertiseClient, err)
		}
	}
	if o.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.MetricsAddr); err != nil {
			return fmt.Errorf("%w: metrics.address = %q: want host:port: %v", ErrInvalidOptions, o.MetricsAddr, err)
		}
	} else if o.Pprof {
		return fmt.Errorf("%w: metrics.pprof = true needs metrics.address: pprof is served on the metrics listener", ErrInvalidOptions)
	}
	if len(o.InitialCluster) > 0 {
		if _, ok := o.InitialCluster[o.Name]; !ok {
			return fmt.Errorf("%w: cluster.initial_cluster does not list this member (cluster.member_name = %q)", ErrInvalidOptions, o.Name)
		}
		for name, addr := range o.InitialCluster {
			// A custom transport (tests' memnet) has its own addresses.
			if _, err := hostPort(addr); err != nil && e.NewTransport == nil || name == "" || addr == "" {
				return fmt.Errorf("%w: cluster.initial_cluster: %s=%s: want name=host:port", ErrInvalidOptions, name, addr)
			}
		}
	}
	for _, j := range o.Join {
		if _, err := hostPort(j); err != nil {
			return fmt.Errorf("%w: cluster.join: %q: want host:port of a running member", ErrInvalidOptions, j)
		}
	}
	return nil
}
