package watch

import (
	"fmt"
	"log/slog"
	"time"
)

// Config tunes the hub ([raft.watch] in the configuration file). Zero values
// take the defaults documented on each field; negative values are invalid.
type Config struct {
	// EventQueueSize is the unit of work of the hub, in events, and so the
	// most events it holds in flight for anyone:
	//   - Notify dispatches at most this many events under one hold of the
	//     hub's lock; a larger group of revisions is dispatched in slices
	//     (at revision boundaries), releasing the lock in between, so Watch,
	//     Close and catching-up watchers are never locked out for long, and
	//     Notify's scratch space stays bounded.
	//   - A catching-up watcher reads History in chunks of this many events,
	//     so the hub holds at most this many events for it outside its buffer.
	// A revision with more events than this is handled whole: revisions are
	// never split. There is no queue in front of Notify: it copies pointers
	// into per-watcher buffers and returns; a full buffer moves that watcher
	// off the live path instead of making Notify wait. Default 1000.
	EventQueueSize int `toml:"event_queue_size"`
	// WatcherBufferSize is the capacity, in responses, of each watcher's
	// channel. A watcher whose buffer cannot take what Notify has for it is
	// moved off the live path and catches up from History. Each slot costs
	// about 100 bytes, allocated with the watcher. Default 32.
	WatcherBufferSize int `toml:"watcher_buffer_size"`
	// MaxWatchers bounds the watchers open at once; Watch fails with
	// ErrTooManyWatchers beyond it. Default 10000.
	MaxWatchers int `toml:"max_watchers"`
	// ProgressIntervalMs is the period of the progress notifications sent to
	// synced watchers that asked for them (WithProgressNotify). Default
	// 600000 (10 minutes, etcd's default).
	ProgressIntervalMs int `toml:"progress_interval_ms"`
	// MaxResponseBytes is the size a response should stay under. Responses
	// are cut at revision boundaries to stay under it; a single revision
	// larger than it is fragmented for watchers that asked (WithFragment)
	// and sent whole to the others. The size is estimated from the events'
	// protobuf encoding. Default 1.5 MiB (etcd's request limit).
	MaxResponseBytes int `toml:"max_response_bytes"`

	// Logger receives the hub's warnings. Nil: slog.Default().
	Logger *slog.Logger `toml:"-"`

	// OnFellBehind, if set, is told of every watcher moved off the live
	// path because its buffer could not take what it was due (counted in
	// Stats.Overflows): its id and what it watches, as etcd's range: key
	// alone (end nil), [key, end), or every key from key on (end "\x00").
	// OnCompacted, if set, is told of every watcher canceled because
	// revisions it needed were compacted (Stats.Compacted): its id and the
	// compact revision. They are called on the hub's goroutines (the
	// notifier's, a catching-up watcher's, the progress loop's), never with
	// the hub's lock held; they must return quickly and may not call the
	// hub. They own the slices they are given.
	OnFellBehind func(id int64, key, end []byte)  `toml:"-"`
	OnCompacted  func(id int64, compactRev int64) `toml:"-"`
}

// Defaults of Config.
const (
	DefaultEventQueueSize     = 1000
	DefaultWatcherBufferSize  = 32
	DefaultMaxWatchers        = 10000
	DefaultProgressIntervalMs = 600000
	DefaultMaxResponseBytes   = 3 << 19 // 1.5 MiB
)

// DefaultConfig returns the configuration every zero field falls back to.
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.EventQueueSize == 0 {
		c.EventQueueSize = DefaultEventQueueSize
	}
	if c.WatcherBufferSize == 0 {
		c.WatcherBufferSize = DefaultWatcherBufferSize
	}
	if c.MaxWatchers == 0 {
		c.MaxWatchers = DefaultMaxWatchers
	}
	if c.ProgressIntervalMs == 0 {
		c.ProgressIntervalMs = DefaultProgressIntervalMs
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate fills in the defaults and names the first field out of range.
func (c *Config) Validate() error {
	c.setDefaults()
	for _, f := range []struct {
		name string
		v    int
	}{
		{"event_queue_size", c.EventQueueSize},
		{"watcher_buffer_size", c.WatcherBufferSize},
		{"max_watchers", c.MaxWatchers},
		{"progress_interval_ms", c.ProgressIntervalMs},
		{"max_response_bytes", c.MaxResponseBytes},
	} {
		if f.v < 0 {
			return fmt.Errorf("%w: raft.watch.%s = %d: must not be negative", ErrInvalidConfig, f.name, f.v)
		}
	}
	return nil
}

func (c *Config) progressInterval() time.Duration {
	return time.Duration(c.ProgressIntervalMs) * time.Millisecond
}
