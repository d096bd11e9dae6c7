package server

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// waitLeader returns the current leader, waiting for one to be known.
func (s *Server) waitLeader(ctx context.Context) (uint64, error) {
	for {
		leader, _, changed := s.db.Engine().Leader()
		if leader != 0 {
			return leader, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, errNoLeader
		case <-s.ctx.Done():
			return 0, errStopping
		}
	}
}

func (s *Server) electionTimeout() time.Duration {
	r := s.opts.DB.Engine.Raft
	return time.Duration(max(r.ElectionTick, 10)*max(r.TickMs, 1)) * time.Millisecond
}

// peerConn returns a connection to member id's client endpoint, as it
// published it. Connections are kept until the server stops.
func (s *Server) peerConn(id uint64) (*grpc.ClientConn, error) {
	attrs, ok := s.db.MemberAttributes()[id]
	if !ok || len(attrs.ClientURLs) == 0 {
		return nil, fmt.Errorf("%w: member %x has not published a client URL yet", errNoLeader, id)
	}
	target, err := hostPort(attrs.ClientURLs[0])
	if err != nil {
		return nil, fmt.Errorf("server: member %x client URL %q: %w", id, attrs.ClientURLs[0], err)
	}
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	if c, ok := s.peers[target]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("server: connect to member %x at %s: %w", id, target, err)
	}
	if s.peers == nil {
		s.peers = map[string]*grpc.ClientConn{}
	}
	s.peers[target] = c
	return c, nil
}

func (s *Server) peerLeaseClient(id uint64) (pb.LeaseClient, error) {
	c, err := s.peerConn(id)
	if err != nil {
		return nil, err
	}
	return pb.NewLeaseClient(c), nil
}

func (s *Server) closePeers() {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	for _, c := range s.peers {
		c.Close()
	}
	s.peers = nil
}
