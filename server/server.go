package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"google.golang.org/grpc"

	"github.com/cairn-db/cairn"
)

// Server is one cairn member serving the etcd v3 API. New checks the
// options; Start opens the node and the client listener; Ready is closed
// once the member has caught up with its cluster; Shutdown stops both.
type Server struct {
	opts Options
	log  *slog.Logger

	db   *cairn.DB
	lis  net.Listener
	grpc *grpc.Server
	http *httpServer // the metrics listener (http.go); nil when MetricsAddr is ""

	readyc chan struct{}
	donec  chan struct{}
	ctx    context.Context // ends at Shutdown, for the server's own work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	clusterID uint64
	quota     quota
	peersMu   sync.Mutex
	peers     map[string]*grpc.ClientConn // client connections to other members, by address

	mu   sync.Mutex
	err  error
	once sync.Once
}

// ErrInvalidOptions marks every options error.
var ErrInvalidOptions = errors.New("server: invalid options")

// New checks opts and returns a server that is not started.
func New(opts Options) (*Server, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, readyc: make(chan struct{}), donec: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// DB is the node underneath, for embedding programs; nil before Start.
func (s *Server) DB() *cairn.DB { return s.db }

// ClientAddr is the address the client API listens on, once started.
func (s *Server) ClientAddr() string {
	if s.lis == nil {
		return ""
	}
	return s.lis.Addr().String()
}

// Ready is closed once the member knows its leader, has caught up and has
// published its name and client URL to the cluster.
func (s *Server) Ready() <-chan struct{} { return s.readyc }

// Done is closed when the server stopped, by Shutdown or because the node
// failed; Err then says why.
func (s *Server) Done() <-chan struct{} { return s.donec }

// Err is why the server stopped: nil after a Shutdown, the node's error
// otherwise.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Server) invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
}
