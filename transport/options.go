package transport

import (
	"fmt"
	"time"
)

// ClassOptions tunes one connection class ([network.control], [network.data],
// [network.bulk] in the configuration file). The names follow the throughput
// guide of the product brief.
type ClassOptions struct {
	// ConnectTimeoutMs bounds dialing a peer.
	ConnectTimeoutMs int `toml:"connect_timeout_in_ms"`
	// RequestTimeoutMs bounds one unit of work on the class: a batch of
	// messages on Control and Data, a whole snapshot transfer on Bulk.
	RequestTimeoutMs int `toml:"request_timeout_in_ms"`
	// TCPKeepaliveSecs is the TCP keepalive period of the connection.
	TCPKeepaliveSecs int `toml:"tcp_keepalive_in_secs"`
	// KeepaliveIntervalSecs is how often an idle HTTP/2 connection is pinged.
	KeepaliveIntervalSecs int `toml:"http2_keep_alive_interval_in_secs"`
	// KeepaliveTimeoutSecs is how long a ping may go unanswered before the
	// connection is closed.
	KeepaliveTimeoutSecs int `toml:"http2_keep_alive_timeout_in_secs"`
	// ConnectionWindowSize is the HTTP/2 flow-control window of the connection.
	ConnectionWindowSize int32 `toml:"connection_window_size"`
	// StreamWindowSize is the HTTP/2 flow-control window of one stream.
	StreamWindowSize int32 `toml:"stream_window_size"`
	// MaxMessageSize is the largest gRPC message sent or received.
	MaxMessageSize int `toml:"max_message_size"`
	// MaxConcurrentStreams caps the streams one connection carries.
	MaxConcurrentStreams uint32 `toml:"max_concurrent_streams"`
	// ConcurrencyLimit caps the streams served at once on the class; extra
	// ones are refused. On Bulk it also caps outgoing snapshot transfers
	// across all peers.
	ConcurrencyLimit int `toml:"concurrency_limit"`
	// QueueSize is the number of messages queued per peer before Send drops
	// (on Bulk: snapshots pending per peer).
	QueueSize int `toml:"queue_size"`
}

// ConnectTimeout returns ConnectTimeoutMs as a duration.
func (o ClassOptions) ConnectTimeout() time.Duration {
	return time.Duration(o.ConnectTimeoutMs) * time.Millisecond
}

// RequestTimeout returns RequestTimeoutMs as a duration.
func (o ClassOptions) RequestTimeout() time.Duration {
	return time.Duration(o.RequestTimeoutMs) * time.Millisecond
}

// NetworkOptions holds the options of all three classes ([network.*]).
type NetworkOptions struct {
	Control ClassOptions `toml:"control"`
	Data    ClassOptions `toml:"data"`
	Bulk    ClassOptions `toml:"bulk"`
}

// Class returns the options of class c.
func (n NetworkOptions) Class(c Class) ClassOptions {
	switch c {
	case Control:
		return n.Control
	case Data:
		return n.Data
	default:
		return n.Bulk
	}
}

// Compression switches gzip on or off per kind of traffic
// ([raft.rpc_compression]). Receivers always accept compressed messages.
type Compression struct {
	// Replication compresses the Data class.
	Replication bool `toml:"replication"`
	// Election compresses the Control class.
	Election bool `toml:"election"`
	// Snapshot compresses the Bulk class.
	Snapshot bool `toml:"snapshot"`
	// Client compresses responses to clients (used by the server).
	Client bool `toml:"client"`
}

// Class reports whether class c is compressed.
func (c Compression) Class(cl Class) bool {
	switch cl {
	case Control:
		return c.Election
	case Data:
		return c.Replication
	default:
		return c.Snapshot
	}
}

// DefaultNetworkOptions returns settings that work on a laptop and on a LAN.
func DefaultNetworkOptions() NetworkOptions {
	return NetworkOptions{
		Control: ClassOptions{
			ConnectTimeoutMs:      500,
			RequestTimeoutMs:      1000,
			TCPKeepaliveSecs:      60,
			KeepaliveIntervalSecs: 10,
			KeepaliveTimeoutSecs:  5,
			ConnectionWindowSize:  1 << 20,
			StreamWindowSize:      1 << 20,
			MaxMessageSize:        4 << 20,
			MaxConcurrentStreams:  64,
			ConcurrencyLimit:      64,
			QueueSize:             256,
		},
		Data: ClassOptions{
			ConnectTimeoutMs:      500,
			RequestTimeoutMs:      5000,
			TCPKeepaliveSecs:      60,
			KeepaliveIntervalSecs: 10,
			KeepaliveTimeoutSecs:  5,
			ConnectionWindowSize:  6 << 20,
			StreamWindowSize:      4 << 20,
			MaxMessageSize:        64 << 20,
			MaxConcurrentStreams:  128,
			ConcurrencyLimit:      128,
			QueueSize:             4096,
		},
		Bulk: ClassOptions{
			ConnectTimeoutMs:      1000,
			RequestTimeoutMs:      60000,
			TCPKeepaliveSecs:      60,
			KeepaliveIntervalSecs: 15,
			KeepaliveTimeoutSecs:  10,
			ConnectionWindowSize:  32 << 20,
			StreamWindowSize:      16 << 20,
			MaxMessageSize:        8 << 20,
			MaxConcurrentStreams:  16,
			ConcurrencyLimit:      4,
			QueueSize:             16,
		},
	}
}

// WithDefaults returns n with every zero field taken from
// DefaultNetworkOptions, so a caller sets only what it changes.
func (n NetworkOptions) WithDefaults() NetworkOptions {
	d := DefaultNetworkOptions()
	n.Control.fill(d.Control)
	n.Data.fill(d.Data)
	n.Bulk.fill(d.Bulk)
	return n
}

func (o *ClassOptions) fill(d ClassOptions) {
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&o.ConnectTimeoutMs, d.ConnectTimeoutMs)
	setInt(&o.RequestTimeoutMs, d.RequestTimeoutMs)
	setInt(&o.TCPKeepaliveSecs, d.TCPKeepaliveSecs)
	setInt(&o.KeepaliveIntervalSecs, d.KeepaliveIntervalSecs)
	setInt(&o.KeepaliveTimeoutSecs, d.KeepaliveTimeoutSecs)
	setInt(&o.MaxMessageSize, d.MaxMessageSize)
	setInt(&o.ConcurrencyLimit, d.ConcurrencyLimit)
	setInt(&o.QueueSize, d.QueueSize)
	if o.ConnectionWindowSize == 0 {
		o.ConnectionWindowSize = d.ConnectionWindowSize
	}
	if o.StreamWindowSize == 0 {
		o.StreamWindowSize = d.StreamWindowSize
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = d.MaxConcurrentStreams
	}
}

// DefaultCompression compresses snapshots only: on a LAN, compressing
// high-frequency traffic costs more CPU than it saves bandwidth.
func DefaultCompression() Compression {
	return Compression{Snapshot: true}
}

// Validate checks every class and names the first bad key.
func (n NetworkOptions) Validate() error {
	for _, c := range Classes {
		if err := n.Class(c).validate("network." + c.String()); err != nil {
			return err
		}
	}
	return nil
}

func (o ClassOptions) validate(section string) error {
	positive := []struct {
		key string
		v   int64
	}{
		{"connect_timeout_in_ms", int64(o.ConnectTimeoutMs)},
		{"request_timeout_in_ms", int64(o.RequestTimeoutMs)},
		{"tcp_keepalive_in_secs", int64(o.TCPKeepaliveSecs)},
		{"http2_keep_alive_interval_in_secs", int64(o.KeepaliveIntervalSecs)},
		{"http2_keep_alive_timeout_in_secs", int64(o.KeepaliveTimeoutSecs)},
		{"max_message_size", int64(o.MaxMessageSize)},
		{"max_concurrent_streams", int64(o.MaxConcurrentStreams)},
		{"concurrency_limit", int64(o.ConcurrencyLimit)},
		{"queue_size", int64(o.QueueSize)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("%s.%s = %d: must be greater than 0", section, p.key, p.v)
		}
	}
	// HTTP/2 (RFC 7540) fixes these bounds; grpc-go ignores windows below 64 KiB.
	if o.ConnectionWindowSize < 64<<10 {
		return fmt.Errorf("%s.connection_window_size = %d: must be at least 65536", section, o.ConnectionWindowSize)
	}
	if o.StreamWindowSize < 64<<10 {
		return fmt.Errorf("%s.stream_window_size = %d: must be at least 65536", section, o.StreamWindowSize)
	}
	// A batch of raft messages or a snapshot chunk must fit in one message.
	if o.MaxMessageSize < 64<<10 {
		return fmt.Errorf("%s.max_message_size = %d: must be at least 65536", section, o.MaxMessageSize)
	}
	return nil
}
