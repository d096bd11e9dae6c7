package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/lease"
)

// leaseServer is etcd's Lease service. Grants and revocations go through
// raft; keep-alives and time-to-live need the leader's clock, so a follower
// forwards them to the leader's client endpoint.
type leaseServer struct {
	pb.UnimplementedLeaseServer
	s *Server
}

func (l *leaseServer) LeaseGrant(ctx context.Context, req *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if req.GetID() < 0 {
		return nil, fmt.Errorf("%w: lease id %d", lease.ErrInvalidID, req.GetID())
	}
	resp, err := do[*pb.LeaseGrantResponse](ctx, l.s, &pb.InternalRaftRequest{LeaseGrant: req})
	if err != nil {
		return nil, err
	}
	resp.Header = l.s.header(resp.Header)
	return resp, nil
}

func (l *leaseServer) LeaseRevoke(ctx context.Context, req *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := do[*pb.LeaseRevokeResponse](ctx, l.s, &pb.InternalRaftRequest{LeaseRevoke: req})
	if err != nil {
		return nil, err
	}
	resp.Header = l.s.header(resp.Header)
	return resp, nil
}

func (l *leaseServer) LeaseTimeToLive(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	for {
		leader, err := l.s.waitLeader(ctx)
		if err != nil {
			return nil, err
		}
		if leader == l.s.db.Engine().ID() {
			// As etcd: the leader answers once it applied everything
			// committed, so that the keys attached by an acknowledged put
			// (applied first on the member that proposed it) are listed.
			if err := l.s.db.Engine().Barrier(ctx); err != nil {
				return nil, err
			}
			resp, err := l.s.db.TimeToLive(ctx, req.GetID(), req.GetKeys())
			switch {
			case errors.Is(err, lease.ErrNotLeader):
				continue // lost leadership in between: ask the new leader
			case errors.Is(err, lease.ErrNotFound), errors.Is(err, kv.ErrLeaseNotFound):
				// As etcd: an unknown or expired lease has TTL -1.
				return &pb.LeaseTimeToLiveResponse{Header: l.s.header(nil), ID: req.GetID(), TTL: -1}, nil
			}
			if err != nil {
				return nil, err
			}
			resp.Header = l.s.header(resp.Header)
			return resp, nil
		}
		c, err := l.s.peerLeaseClient(leader)
		if err != nil {
			return nil, err
		}
		resp, err := c.LeaseTimeToLive(ctx, req)
		if err != nil && l.retryable(ctx, leader) {
			continue
		}
		return resp, err
	}
}

func (l *leaseServer) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp, err := l.s.db.Leases(ctx)
	if err != nil {
		return nil, err
	}
	resp.Header = l.s.header(resp.Header)
	return resp, nil
}

// retryable reports whether a forwarded request failed because leadership
// moved: then it is sent again to the new leader.
func (l *leaseServer) retryable(ctx context.Context, was uint64) bool {
	if ctx.Err() != nil {
		return false
	}
	now, _, changed := l.s.db.Engine().Leader()
	if now != was {
		return true
	}
	select {
	case <-changed:
		return true
	case <-time.After(l.s.electionTimeout()):
		return false
	case <-ctx.Done():
		return false
	}
}

// LeaseKeepAlive renews leases for as long as the client streams requests.
// Each request gets one response; an unknown or expired lease gets TTL 0,
// which clientv3 reads as "lease gone".
func (l *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	var fwd *keepAliveForwarder
	defer func() {
		if fwd != nil {
			fwd.close()
		}
	}()
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := l.keepAlive(ctx, req, &fwd)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (l *leaseServer) keepAlive(ctx context.Context, req *pb.LeaseKeepAliveRequest, fwd **keepAliveForwarder) (*pb.LeaseKeepAliveResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, l.s.requestTimeout())
	defer cancel()
	for {
		leader, err := l.s.waitLeader(ctx)
		if err != nil {
			return nil, err
		}
		if leader == l.s.db.Engine().ID() {
			resp, err := l.s.db.KeepAlive(ctx, req.GetID())
			switch {
			case errors.Is(err, lease.ErrNotLeader):
				continue
			case errors.Is(err, lease.ErrNotFound), errors.Is(err, kv.ErrLeaseNotFound):
				return &pb.LeaseKeepAliveResponse{Header: l.s.header(nil), ID: req.GetID()}, nil
			case err != nil:
				return nil, err
			}
			resp.Header = l.s.header(resp.Header)
			return resp, nil
		}
		if *fwd != nil && (*fwd).leader != leader {
			(*fwd).close()
			*fwd = nil
		}
		if *fwd == nil {
			f, err := l.s.newKeepAliveForwarder(leader)
			if err != nil {
				return nil, err
			}
			*fwd = f
		}
		stop := context.AfterFunc(ctx, (*fwd).close) // a leader that does not answer
		resp, err := (*fwd).renew(req)
		if stop() && err == nil {
			return resp, nil
		}
		(*fwd).close()
		*fwd = nil
		if !l.retryable(ctx, leader) {
			return nil, err
		}
	}
}

// keepAliveForwarder relays keep-alives to the leader on one stream.
type keepAliveForwarder struct {
	leader uint64
	stream pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc
}

func (s *Server) newKeepAliveForwarder(leader uint64) (*keepAliveForwarder, error) {
	c, err := s.peerLeaseClient(leader)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	stream, err := c.LeaseKeepAlive(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &keepAliveForwarder{leader: leader, stream: stream, cancel: cancel}, nil
}

func (f *keepAliveForwarder) renew(req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
	if err := f.stream.Send(req); err != nil {
		return nil, err
	}
	return f.stream.Recv()
}

func (f *keepAliveForwarder) close() { f.cancel() }
