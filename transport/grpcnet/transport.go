package grpcnet

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/transport/grpcnet/peerpb"
)

// Options configures a Transport.
type Options struct {
	// NodeID is this node's raft id; streams addressed to another id are
	// refused. It must not be 0.
	NodeID uint64
	// ClusterID is carried by every stream; a peer of another cluster is
	// refused with transport.ErrWrongCluster.
	ClusterID uint64
	// ListenAddr is the TCP address to listen on, e.g. "127.0.0.1:0"; Addr
	// returns the address actually bound.
	ListenAddr string
	// Listener, if set, is used instead of listening on ListenAddr: a
	// program (or a test) that must know every peer address before the
	// nodes start binds them first. The transport closes it.
	Listener net.Listener
	// Network tunes the three connection classes. The zero value means
	// transport.DefaultNetworkOptions().
	Network transport.NetworkOptions
	// Compression switches gzip on per class for what this node sends.
	Compression transport.Compression
	// Snapshots streams snapshot data from and to disk. Without it, MsgSnap
	// can be neither sent nor received.
	Snapshots transport.SnapshotStore
	// Logger receives the transport's logs; nil discards them.
	Logger *slog.Logger
}

// minMessageSize is the smallest MaxMessageSize a class may have.
const minMessageSize = 64 << 10

// Transport is the gRPC transport.Transport. Its methods may be called
// concurrently.
type Transport struct {
	opts    Options
	log     *slog.Logger
	demux   *demux
	servers [len(transport.Classes)]*grpc.Server

	h           atomic.Pointer[handlerRef]
	unreachable reportLimiter
	// snapshotSlots bounds the snapshots being sent at once, to all peers.
	snapshotSlots chan struct{}
	receiving     receivingSet

	closed    atomic.Bool // read by Send without the lock
	closeOnce sync.Once
	serveWG   sync.WaitGroup // the grpc.Server.Serve goroutines

	mu struct {
		sync.RWMutex
		started bool
		closed  bool
		// peers is read under RLock by Send and replaced under Lock.
		peers map[uint64]*peer
	}
}

var _ transport.Transport = (*Transport)(nil)

// handlerRef boxes the Handler so that it can be swapped atomically.
type handlerRef struct{ transport.Handler }

type nopHandler struct{}

func (nopHandler) Deliver(*raftpb.Message)     {}
func (nopHandler) ReportUnreachable(uint64)    {}
func (nopHandler) ReportSnapshot(uint64, bool) {}

func (nopHandler) PeerState(uint64, transport.Class, bool)        {}
func (nopHandler) SnapshotTransferred(transport.SnapshotTransfer) {}

// New validates opts and binds the listener, so that Addr works before
// Start. Nothing is served until Start.
func New(opts Options) (*Transport, error) {
	if opts.NodeID == 0 {
		return nil, errors.New("grpcnet: NodeID must not be 0")
	}
	if opts.Network == (transport.NetworkOptions{}) {
		opts.Network = transport.DefaultNetworkOptions()
	}
	if err := opts.Network.Validate(); err != nil {
		return nil, fmt.Errorf("grpcnet: %w", err)
	}
	for _, c := range transport.Classes {
		// A batch or a snapshot chunk must fit with room for its framing.
		if n := opts.Network.Class(c).MaxMessageSize; n < minMessageSize {
			return nil, fmt.Errorf("grpcnet: network.%s.max_message_size = %d: must be at least %d", c, n, minMessageSize)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", opts.NodeID)
	ln := opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", opts.ListenAddr); err != nil {
			return nil, fmt.Errorf("grpcnet: listen on %q: %w", opts.ListenAddr, err)
		}
	}
	t := &Transport{
		opts:          opts,
		log:           log,
		demux:         newDemux(ln, opts.Network, log),
		snapshotSlots: make(chan struct{}, opts.Network.Bulk.ConcurrencyLimit),
	}
	t.h.Store(&handlerRef{nopHandler{}})
	t.unreachable.init()
	t.receiving.init()
	t.mu.peers = make(map[uint64]*peer)

	t.servers[transport.Control] = grpc.NewServer(serverOptions(transport.Control, opts.Network.Control)...)
	peerpb.RegisterPeerServer(t.servers[transport.Control], &controlService{t: t})
	t.servers[transport.Data] = grpc.NewServer(serverOptions(transport.Data, opts.Network.Data)...)
	peerpb.RegisterPeerServer(t.servers[transport.Data], &dataService{t: t})
	t.servers[transport.Bulk] = grpc.NewServer(serverOptions(transport.Bulk, opts.Network.Bulk)...)
	peerpb.RegisterPeerServer(t.servers[transport.Bulk], &bulkService{t: t})
	return t, nil
}

// Addr returns the address the transport listens on.
func (t *Transport) Addr() string { return t.demux.ln.Addr().String() }

// Start serves peers and hands what they send to h. It may be called once.
func (t *Transport) Start(h transport.Handler) error {
	if h == nil {
		return errors.New("grpcnet: Start with a nil Handler")
	}
	// Everything is started under the lock so that Close, which takes it
	// first, either sees no goroutine or waits for all of them.
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return transport.ErrClosed
	}
	if t.mu.started {
		return errors.New("grpcnet: Start called twice")
	}
	t.mu.started = true
	t.h.Store(&handlerRef{h})
	for _, c := range transport.Classes {
		srv, lis := t.servers[c], t.demux.classes[c]
		t.serveWG.Add(1)
		go func() {
			defer t.serveWG.Done()
			// Close closes the listeners first: ErrClosed is a clean stop too.
			if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
				t.log.Error("grpcnet: server stopped", "class", c.String(), "err", err)
			}
		}()
	}
	t.demux.start()
	return nil
}

// AddPeer makes peer id reachable at addr. Calling it again with another
// address replaces the peer's connections; messages still queued for the old
// address are dropped.
func (t *Transport) AddPeer(id uint64, addr string) {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return
	}
	old := t.mu.peers[id]
	if old != nil && old.addr == addr {
		t.mu.Unlock()
		return
	}
	p, err := newPeer(t, id, addr)
	if err != nil {
		delete(t.mu.peers, id)
		t.mu.Unlock()
		t.log.Error("grpcnet: add peer", "peer", id, "addr", addr, "err", err)
	} else {
		t.mu.peers[id] = p
		t.mu.Unlock()
	}
	if old != nil {
		old.stop()
	}
}

// RemovePeer forgets peer id, closes its connections and stops its
// goroutines; messages still queued for it are dropped.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.mu.peers[id]
	delete(t.mu.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Send queues msgs for their peers and returns at once. A message that cannot
// be queued is dropped and reported (see the package doc); after Close,
// messages are dropped silently.
func (t *Transport) Send(msgs []*raftpb.Message) {
	if t.closed.Load() {
		return
	}
	var dropped []*raftpb.Message
	t.mu.RLock()
	if t.mu.closed {
		// Close won the race with the check above.
		t.mu.RUnlock()
		return
	}
	for _, m := range msgs {
		if m == nil {
			continue
		}
		p := t.mu.peers[m.GetTo()]
		if p == nil || !p.enqueue(m) {
			dropped = append(dropped, m)
		}
	}
	t.mu.RUnlock()
	// The handler is called without the lock: it is the engine's code.
	for _, m := range dropped {
		t.drop(m.GetTo(), m)
	}
}

// drop reports a message that will not be sent.
func (t *Transport) drop(to uint64, m *raftpb.Message) {
	h := t.handler()
	if m.GetType() == raftpb.MsgSnap {
		h.ReportSnapshot(to, false)
	}
	if t.unreachable.allow(to) {
		h.ReportUnreachable(to)
	}
}

func (t *Transport) handler() transport.Handler { return t.h.Load().Handler }

// Close stops the peers, the listener and the servers, and waits for every
// goroutine the transport started. It is idempotent and always returns nil.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		t.mu.Lock()
		t.mu.closed = true
		peers := t.mu.peers
		t.mu.peers = nil
		t.mu.Unlock()

		var wg sync.WaitGroup
		for _, p := range peers {
			wg.Go(p.stop)
		}
		wg.Wait()
		t.demux.close()
		for _, c := range transport.Classes {
			wg.Go(func() { stopServer(t.servers[c], gracePeriod(c)) })
		}
		wg.Wait()
		t.serveWG.Wait()
	})
	return nil
}
