package grpcnet

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip" // registers gzip: servers always accept it
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/transport"
)

// maxHeaderListSize bounds the HTTP/2 headers of a peer stream; ours carry
// no metadata and short status messages, so anything larger is not a peer.
const maxHeaderListSize = 64 << 10

// minPingInterval is the most frequent client ping a server tolerates. grpc-go
// clients never ping more often than every 10s, so 5s accepts any peer's
// configuration while still refusing a ping flood.
const minPingInterval = 5 * time.Second

// connectBackoff paces grpc-go's own reconnects. Its default (1s growing to
// 120s) would keep a restarted peer out of the cluster for minutes.
var connectBackoff = backoff.Config{
	BaseDelay:  100 * time.Millisecond,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   2 * time.Second,
}

// gracePeriod bounds GracefulStop of a class's server at Close. Control and
// Data streams never end on their own (peers keep them open), so only a batch
// being delivered is worth waiting for; a snapshot interrupted at Close
// resumes on the next attempt, so Bulk waits a little longer but not for the
// whole transfer.
func gracePeriod(c transport.Class) time.Duration {
	if c == transport.Bulk {
		return time.Second
	}
	return 100 * time.Millisecond
}

func serverOptions(c transport.Class, o transport.ClassOptions) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(o.StreamWindowSize),
		grpc.InitialConnWindowSize(o.ConnectionWindowSize),
		grpc.MaxRecvMsgSize(o.MaxMessageSize),
		grpc.MaxSendMsgSize(o.MaxMessageSize),
		grpc.MaxConcurrentStreams(o.MaxConcurrentStreams),
		grpc.MaxHeaderListSize(maxHeaderListSize),
		grpc.ConnectionTimeout(o.ConnectTimeout()),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    time.Duration(o.KeepaliveIntervalSecs) * time.Second,
			Timeout: time.Duration(o.KeepaliveTimeoutSecs) * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             minPingInterval,
			PermitWithoutStream: true,
		}),
		grpc.ChainStreamInterceptor(limitStreams(c, o.ConcurrencyLimit)),
		// Close must not return while a handler may still call Deliver.
		grpc.WaitForHandlers(true),
	}
}

func dialOptions(c transport.Class, o transport.ClassOptions, compress bool) []grpc.DialOption {
	call := []grpc.CallOption{
		grpc.MaxCallRecvMsgSize(o.MaxMessageSize),
		grpc.MaxCallSendMsgSize(o.MaxMessageSize),
	}
	if compress {
		call = append(call, grpc.UseCompressor(gzip.Name))
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer(c, o)),
		// The class tag would confuse an HTTP proxy, and peers talk directly.
		grpc.WithNoProxy(),
		grpc.WithInitialWindowSize(o.StreamWindowSize),
		grpc.WithInitialConnWindowSize(o.ConnectionWindowSize),
		grpc.WithMaxHeaderListSize(maxHeaderListSize),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                time.Duration(o.KeepaliveIntervalSecs) * time.Second,
			Timeout:             time.Duration(o.KeepaliveTimeoutSecs) * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           connectBackoff,
			MinConnectTimeout: o.ConnectTimeout(),
		}),
		grpc.WithDefaultCallOptions(call...),
		// Raft retransmits by itself; a transparent retry would only reorder.
		grpc.WithDisableRetry(),
		grpc.WithDisableServiceConfig(),
	}
}

// limitStreams enforces ClassOptions.ConcurrencyLimit on a class's server: a
// stream over the limit is refused at once rather than queued, because its
// sender retries (raft resends, snapshots are reported as failed).
func limitStreams(c transport.Class, n int) grpc.StreamServerInterceptor {
	sem := make(chan struct{}, n)
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		select {
		case sem <- struct{}{}:
		default:
			return status.Error(codes.ResourceExhausted,
				fmt.Sprintf("grpcnet: %s: %d streams in progress already", c, n))
		}
		defer func() { <-sem }()
		return h(srv, ss)
	}
}

// stallTimer cancels a stream when one step of it stalls: grpc-go's Send
// blocks on flow control for as long as the peer does not read.
type stallTimer struct {
	t       *time.Timer
	timeout time.Duration
}

func newStallTimer(timeout time.Duration, cancel context.CancelFunc) *stallTimer {
	t := time.AfterFunc(timeout, cancel)
	t.Stop()
	return &stallTimer{t: t, timeout: timeout}
}

func (s *stallTimer) arm()    { s.t.Reset(s.timeout) }
func (s *stallTimer) disarm() { s.t.Stop() }
