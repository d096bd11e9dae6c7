package server

import (
	"context"
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
)

// grpcOverhead is what a request may carry beyond MaxRequestBytes of
// payload (etcd's allowance for the gRPC envelope).
const grpcOverhead = 512 * 1024

func (s *Server) grpcOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.opts.MaxRequestBytes + grpcOverhead),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Hour, Timeout: 20 * time.Second}),
		// Stop waits for handlers, which use the node's storage, before
		// the node closes it.
		grpc.WaitForHandlers(true),
		grpc.ChainUnaryInterceptor(s.unaryInterceptors()...),
		grpc.ChainStreamInterceptor(s.streamInterceptors()...),
	}
}

// unaryInterceptors and streamInterceptors are the chains, outermost
// first: the metrics' (when measured), which see the code the client gets,
// then the server's own.
func (s *Server) unaryInterceptors() []grpc.UnaryServerInterceptor {
	if s.http == nil {
		return []grpc.UnaryServerInterceptor{s.unaryInterceptor}
	}
	return []grpc.UnaryServerInterceptor{s.http.m.UnaryServerInterceptor(), s.unaryInterceptor}
}

func (s *Server) streamInterceptors() []grpc.StreamServerInterceptor {
	if s.http == nil {
		return []grpc.StreamServerInterceptor{s.streamInterceptor}
	}
	return []grpc.StreamServerInterceptor{s.http.m.StreamServerInterceptor(), s.streamInterceptor}
}

// register adds the etcd v3 services to g.
func (s *Server) register(g *grpc.Server) {
	pb.RegisterKVServer(g, &kvServer{s: s})
	pb.RegisterWatchServer(g, &watchServer{s: s})
	pb.RegisterLeaseServer(g, &leaseServer{s: s})
	pb.RegisterClusterServer(g, &clusterServer{s: s})
	pb.RegisterMaintenanceServer(g, &maintenanceServer{s: s})
}

// leaderLost returns a channel closed when the stream whose context is
// sctx asked for a leader (WithRequireLeader) and this member has had none
// for an election timeout; it never closes for other streams. It stops
// watching when ctx ends.
func (s *Server) leaderLost(ctx, sctx context.Context) <-chan struct{} {
	lost := make(chan struct{})
	md, _ := metadata.FromIncomingContext(sctx)
	if v := md.Get(rpctypes.MetadataRequireLeaderKey); len(v) == 0 || v[0] != rpctypes.MetadataHasLeader {
		return lost
	}
	go func() {
		for {
			leader, _, changed := s.db.Engine().Leader()
			if leader == 0 {
				select {
				case <-changed:
					continue
				case <-time.After(s.electionTimeout()):
					close(lost)
					return
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return lost
}

// requireLeader reports whether the client asked to fail fast when the
// cluster has no leader (clientv3.WithRequireLeader), and checks it.
func (s *Server) requireLeader(ctx context.Context) error {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	if v := md.Get(rpctypes.MetadataRequireLeaderKey); len(v) > 0 && v[0] == rpctypes.MetadataHasLeader {
		if leader, _, _ := s.db.Engine().Leader(); leader == 0 {
			return rpctypes.ErrGRPCNoLeader
		}
	}
	return nil
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.requireLeader(ctx); err != nil {
		return nil, err
	}
	if s.opts.CompressResponses {
		grpc.SetSendCompressor(ctx, gzip.Name) //nolint:errcheck // a client without gzip gets plain responses
	}
	resp, err := handler(ctx, req)
	return resp, toGRPC(err)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.requireLeader(ss.Context()); err != nil {
		return err
	}
	return toGRPC(handler(srv, ss))
}

// header completes a response header with this member's identity and term.
func (s *Server) header(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{Revision: s.db.Revision()}
	}
	e := s.db.Engine()
	_, term, _ := e.Leader()
	h.ClusterId = s.clusterID
	h.MemberId = e.ID()
	h.RaftTerm = term
	return h
}

func (s *Server) requestTimeout() time.Duration {
	e := s.opts.DB.Engine
	tick := time.Duration(e.Raft.TickMs) * time.Millisecond
	if tick == 0 {
		tick = 100 * time.Millisecond
	}
	election := max(e.Raft.ElectionTick, 10)
	return 5*time.Second + 2*time.Duration(election)*tick
}
