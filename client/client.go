package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/watch"
)

// Config configures a Client.
type Config struct {
	// Endpoints are the members' client addresses (host:port). clientv3
	// balances requests over them and moves to another one when one fails.
	Endpoints []string
	// DialTimeout bounds New's wait for a connection to one of the
	// endpoints; New fails if none answers in time. Zero: New does not
	// wait, and the first requests wait for a connection instead.
	DialTimeout time.Duration
	// RequestTimeout, if set, bounds every request (not a watch's life,
	// only its creation) in addition to its context.
	RequestTimeout time.Duration
	// KeepAliveTime and KeepAliveTimeout, if set, make the client ping
	// an idle connection every KeepAliveTime and drop it when no answer
	// comes within KeepAliveTimeout: how a member that vanished without
	// closing its connections (a crashed machine, a partition) is noticed.
	KeepAliveTime    time.Duration
	KeepAliveTimeout time.Duration
	// Logger receives clientv3's and gRPC's connection logs. Nil: none.
	Logger *slog.Logger
}

// DefaultDialTimeout is Connect's DialTimeout.
const DefaultDialTimeout = 5 * time.Second

// Client is a connection to a cairn cluster: cairn.KV over the etcd v3 API.
// All its methods may be called concurrently.
type Client struct {
	etcd     *clientv3.Client
	kv       pb.KVClient
	lease    pb.LeaseClient
	callOpts []grpc.CallOption
	timeout  time.Duration
	log      *slog.Logger

	ctx    context.Context // ends at Close; the watchers' lifetimes hang on it
	cancel context.CancelFunc
	wg     sync.WaitGroup // the watchers' goroutines
	nextID atomic.Int64   // the last watch id given out

	mu struct {
		sync.Mutex
		closed bool // Close has begun: no new watchers
	}
	closeOnce sync.Once
	closeErr  error
}

var _ cairn.KV = (*Client)(nil)

// ErrClosed: the Client was closed. Watchers it ended report it, and it
// matches watch.ErrClosed.
var ErrClosed = errClosed{}

type errClosed struct{}

func (errClosed) Error() string { return "client: closed" }

// Is makes ErrClosed match watch.ErrClosed: the client closed the watcher.
func (errClosed) Is(target error) bool { return target == watch.ErrClosed }

// Connect connects to a cluster through endpoints, waiting up to
// DefaultDialTimeout for one of them to answer.
func Connect(endpoints ...string) (*Client, error) {
	return New(Config{Endpoints: endpoints, DialTimeout: DefaultDialTimeout})
}

// New connects to a cluster as cfg says. The Client must be closed.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("client: no endpoints")
	}
	if cfg.DialTimeout < 0 || cfg.RequestTimeout < 0 || cfg.KeepAliveTime < 0 || cfg.KeepAliveTimeout < 0 {
		return nil, errors.New("client: negative timeout")
	}
	zl := zap.NewNop()
	if cfg.Logger != nil {
		zl = zap.New(newSlogCore(cfg.Logger.Handler()))
	}
	etcd, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    cfg.KeepAliveTime,
		DialKeepAliveTimeout: cfg.KeepAliveTimeout,
		Logger:               zl,
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{
		etcd:  etcd,
		kv:    clientv3.RetryKVClient(etcd),
		lease: clientv3.RetryLeaseClient(etcd),
		// clientv3's defaults for its own calls, which it keeps private:
		// wait for a ready connection rather than fail at once, and the
		// message size limits.
		callOpts: []grpc.CallOption{
			grpc.WaitForReady(true),
			grpc.MaxCallSendMsgSize(2 << 20),
			grpc.MaxCallRecvMsgSize(math.MaxInt32),
		},
		timeout: cfg.RequestTimeout,
		log:     cfg.Logger,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.DialTimeout > 0 {
		if err := c.waitConnected(cfg.DialTimeout); err != nil {
			c.Close()
			return nil, fmt.Errorf("client: no endpoint of %v answered within %v: %w", cfg.Endpoints, cfg.DialTimeout, err)
		}
	}
	return c, nil
}

// waitConnected waits until the connection reaches one endpoint.
func (c *Client) waitConnected(d time.Duration) error {
	ctx, cancel := context.WithTimeout(c.ctx, d)
	defer cancel()
	conn := c.etcd.ActiveConnection()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if s == connectivity.Shutdown {
			return errors.New("connection shut down")
		}
		if !conn.WaitForStateChange(ctx, s) {
			return ctx.Err()
		}
	}
	return nil
}

// Etcd is the clientv3 client underneath, for clientv3's own API and its
// concurrency package. It is closed by Close.
func (c *Client) Etcd() *clientv3.Client { return c.etcd }

// Endpoints lists the endpoints the client uses.
func (c *Client) Endpoints() []string { return c.etcd.Endpoints() }

// Close ends the client's watchers (with ErrClosed), waits for them, and
// closes the connection. Requests in flight fail. Closing twice is
// harmless.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.mu.closed = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		if err := c.etcd.Close(); err != nil && !errors.Is(err, context.Canceled) {
			c.closeErr = fmt.Errorf("client: close: %w", err)
		}
	})
	return c.closeErr
}

// call bounds ctx by the request timeout, if any.
func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return ctx, func() {}
}

// Put sets key to value.
func (c *Client) Put(ctx context.Context, key, value string, opts ...cairn.OpOption) (*pb.PutResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.kv.Put(ctx, cairn.PutRequest(key, value, opts...), c.callOpts...)
	return resp, clientv3.ContextError(ctx, err)
}

// Get reads key, or a range of keys with WithPrefix, WithRange or
// WithFromKey. It is linearizable unless WithSerializable.
func (c *Client) Get(ctx context.Context, key string, opts ...cairn.OpOption) (*pb.RangeResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	if p := cairn.ReadPolicyOf(opts...); p != "" {
		// The server reads the policy from this metadata key
		// (server.ReadConsistencyKey).
		ctx = metadata.AppendToOutgoingContext(ctx, "cairn-read-consistency", p.ShortName())
	}
	resp, err := c.kv.Range(ctx, cairn.RangeRequest(key, opts...), c.callOpts...)
	return resp, clientv3.ContextError(ctx, err)
}

// Delete removes key, or a range of keys.
func (c *Client) Delete(ctx context.Context, key string, opts ...cairn.OpOption) (*pb.DeleteRangeResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.kv.DeleteRange(ctx, cairn.DeleteRequest(key, opts...), c.callOpts...)
	return resp, clientv3.ContextError(ctx, err)
}

// Txn applies a transaction atomically, as one revision.
func (c *Client) Txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.kv.Txn(ctx, req, c.callOpts...)
	return resp, clientv3.ContextError(ctx, err)
}

// Compact discards the history below rev.
func (c *Client) Compact(ctx context.Context, rev int64) (*pb.CompactionResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.kv.Compact(ctx, &pb.CompactionRequest{Revision: rev}, c.callOpts...)
	return resp, clientv3.ContextError(ctx, err)
}

// Grant creates a lease of ttl seconds, with an id the server picks.
func (c *Client) Grant(ctx context.Context, ttl int64) (*pb.LeaseGrantResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: ttl}, c.callOpts...)
	return resp, clientv3.ContextError(ctx, err)
}

// Revoke ends lease id and deletes its keys, in one revision.
func (c *Client) Revoke(ctx context.Context, id int64) (*pb.LeaseRevokeResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id}, c.callOpts...)
	return resp, clientv3.ContextError(ctx, err)
}

// KeepAlive renews lease id once (clientv3's KeepAliveOnce). An unknown or
// expired lease fails with rpctypes.ErrLeaseNotFound. To keep a lease alive
// for as long as a program runs, call it every TTL/3, or use
// Etcd().KeepAlive.
func (c *Client) KeepAlive(ctx context.Context, id int64) (*pb.LeaseKeepAliveResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.etcd.KeepAliveOnce(ctx, clientv3.LeaseID(id))
	if err != nil {
		return nil, err
	}
	return &pb.LeaseKeepAliveResponse{Header: resp.ResponseHeader, ID: int64(resp.ID), TTL: resp.TTL}, nil
}

// TimeToLive tells lease id's granted and remaining TTL, and with keys its
// attached keys. A lease that is gone fails with rpctypes.ErrLeaseNotFound.
func (c *Client) TimeToLive(ctx context.Context, id int64, keys bool) (*pb.LeaseTimeToLiveResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id, Keys: keys}, c.callOpts...)
	if err == nil && resp.GetTTL() == -1 {
		// etcd's servers answer TTL -1 for a lease that is gone; the
		// embedded DB returns an error, and so does the client.
		return nil, rpctypes.ErrLeaseNotFound
	}
	return resp, clientv3.ContextError(ctx, err)
}

// Leases lists every lease.
func (c *Client) Leases(ctx context.Context) (*pb.LeaseLeasesResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{}, c.callOpts...)
	return resp, clientv3.ContextError(ctx, err)
}
