// Package servercluster runs several cairn servers in one process, each
// with its own etcd v3 client endpoint on loopback, for tests that drive
// cairn with real etcd clients (clientv3, etcdctl). Peers talk over gRPC on
// loopback, or over transport/memnet when the test injects network faults.
package servercluster

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/server"
	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/transport/memnet"
)

// Options shape a cluster; zero values take test-friendly defaults.
type Options struct {
	Nodes int // default 3
	// Memnet puts the peers on an in-memory network (Cluster.Net) that
	// can partition them; client endpoints stay real.
	Memnet bool
	Raft   engine.RaftConfig
	// Tune, if set, adjusts each member's options before it starts.
	Tune   func(name string, o *server.Options)
	Logger *slog.Logger
}

// Cluster is the members, by name ("n1", "n2", ...).
type Cluster struct {
	Net     *memnet.Network
	Servers map[string]*server.Server
	names   []string
	peers   map[string]string // name → peer address
	clients map[string]string // name → client address, fixed across restarts
	dirs    map[string]string
	opts    Options
	// bound holds each member's peer listener, bound when the cluster is
	// made so that no other process takes the port before the member
	// starts; the member's first start takes it over.
	bound map[string]net.Listener
}

// New starts the members and waits until each is ready; everything stops at
// tb's cleanup.
func New(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Raft == (engine.RaftConfig{}) {
		opts.Raft = engine.RaftConfig{TickMs: 10, ElectionTick: 20, HeartbeatTick: 2}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	root := tb.TempDir()
	c := &Cluster{
		Servers: map[string]*server.Server{}, peers: map[string]string{}, clients: map[string]string{},
		dirs: map[string]string{}, opts: opts, bound: map[string]net.Listener{},
	}
	if opts.Memnet {
		c.Net = memnet.New(1)
	}
	tb.Cleanup(func() {
		for name, s := range c.Servers {
			if err := s.Shutdown(); err != nil {
				tb.Errorf("shutdown %s: %v", name, err)
			}
		}
		for _, l := range c.bound {
			l.Close()
		}
		if c.Net != nil {
			c.Net.Close()
		}
	})
	for i := 1; i <= opts.Nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		c.names = append(c.names, name)
		c.dirs[name] = filepath.Join(root, name)
		c.clients[name] = "127.0.0.1:0" // the port bound first is kept for restarts
		if opts.Memnet {
			c.peers[name] = memnet.Addr(server.MemberID("cairn", name))
		} else {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				tb.Fatal(err)
			}
			c.bound[name] = l
			c.peers[name] = l.Addr().String()
		}
	}
	for _, name := range c.names {
		c.Start(tb, name)
	}
	for _, name := range c.names {
		c.WaitReady(tb, name)
	}
	return c
}

// FreeAddr returns a loopback address with a port free at the time of the
// call.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Names lists the members in order.
func (c *Cluster) Names() []string { return c.names }

// Endpoints lists the client addresses of the members given, or of all.
func (c *Cluster) Endpoints(names ...string) []string {
	if len(names) == 0 {
		names = c.names
	}
	var out []string
	for _, n := range names {
		out = append(out, c.clients[n])
	}
	return out
}

// Options returns the options member name starts with.
func (c *Cluster) Options(name string) server.Options {
	o := server.Options{
		Name:           name,
		ListenClient:   c.clients[name],
		InitialCluster: c.peers,
		Logger:         c.opts.Logger,
	}
	o.DB.Engine = engine.Config{
		DataDir: c.dirs[name], ListenPeer: c.peers[name], Raft: c.opts.Raft, Logger: c.opts.Logger,
	}
	if c.Net != nil {
		id := server.MemberID("cairn", name)
		o.DB.Engine.NewTransport = func(snaps transport.SnapshotStore) (transport.Transport, error) {
			return c.Net.Transport(id, snaps), nil
		}
	}
	if c.opts.Tune != nil {
		c.opts.Tune(name, &o)
	}
	return o
}

// Start starts member name (again) with its options.
func (c *Cluster) Start(tb testing.TB, name string) {
	tb.Helper()
	o := c.Options(name)
	if l, ok := c.bound[name]; ok {
		o.DB.Engine.PeerListener = l
		delete(c.bound, name)
	}
	s, err := server.New(o)
	if err != nil {
		tb.Fatalf("new %s: %v", name, err)
	}
	if err := s.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	c.Servers[name] = s
	c.clients[name] = s.ClientAddr()
}

// WaitReady waits until member name is ready.
func (c *Cluster) WaitReady(tb testing.TB, name string) {
	tb.Helper()
	s := c.Servers[name]
	select {
	case <-s.Ready():
	case <-s.Done():
		tb.Fatalf("%s stopped: %v", name, s.Err())
	case <-time.After(30 * time.Second):
		tb.Fatalf("%s not ready after 30s", name)
	}
}

// Stop shuts member name down; Start brings it back with its data.
func (c *Cluster) Stop(tb testing.TB, name string) {
	tb.Helper()
	if err := c.Servers[name].Shutdown(); err != nil {
		tb.Errorf("shutdown %s: %v", name, err)
	}
	delete(c.Servers, name)
}

// Leader returns the name of the member that leads, waiting for one.
func (c *Cluster) Leader(tb testing.TB) string {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for name, s := range c.Servers {
			e := s.DB().Engine()
			if leader, _, _ := e.Leader(); leader == e.ID() {
				return name
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatal("no leader after 20s")
	return ""
}

// ID is member name's id.
func (c *Cluster) ID(name string) uint64 { return server.MemberID("cairn", name) }

// Name is the name of member id, or "".
func (c *Cluster) Name(id uint64) string {
	for _, n := range c.names {
		if c.ID(n) == id {
			return n
		}
	}
	return ""
}

// String lists the members and their endpoints.
func (c *Cluster) String() string {
	var b strings.Builder
	for _, n := range c.names {
		fmt.Fprintf(&b, "%s client=%s peer=%s\n", n, c.clients[n], c.peers[n])
	}
	return b.String()
}
