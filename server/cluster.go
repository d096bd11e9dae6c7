package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/url"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-db/cairn/engine"
)

// clusterServer is etcd's Cluster service on the engine's membership. A
// member's id and peer URL are raft's; its name and client URLs are what
// it published when it started (empty until then, as in etcd).
type clusterServer struct {
	pb.UnimplementedClusterServer
	s *Server
}

// MemberID is the id of the member called name in cluster: initial members
// and members started with --join derive theirs from their names.
func MemberID(cluster, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(cluster))
	h.Write([]byte{0})
	h.Write([]byte(name))
	if id := h.Sum64(); id != 0 {
		return id
	}
	return 1
}

// peerURL is how a peer address is shown to etcd clients.
func peerURL(addr string) string { return "http://" + addr }

func (c *clusterServer) members() []*pb.Member {
	attrs := c.s.db.MemberAttributes()
	var out []*pb.Member
	for _, m := range c.s.db.Engine().Membership() {
		a := attrs[m.ID]
		out = append(out, &pb.Member{
			ID: m.ID, Name: a.Name, PeerURLs: []string{peerURL(m.Addr)},
			ClientURLs: a.ClientURLs, IsLearner: m.Learner,
		})
	}
	return out
}

func (c *clusterServer) MemberList(ctx context.Context, req *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if req.GetLinearizable() {
		if err := c.s.db.Engine().Barrier(ctx); err != nil {
			return nil, err
		}
	}
	return &pb.MemberListResponse{Header: c.s.header(nil), Members: c.members()}, nil
}

// peerAddr checks a member's peer URLs (one is used) and returns its
// host:port. It compares with the membership as of a read index, so that a
// change just made through another member is seen.
func (c *clusterServer) peerAddr(ctx context.Context, urls []string) (string, error) {
	if len(urls) != 1 {
		return "", rpctypes.ErrGRPCMemberBadURLs // cairn peers have one address
	}
	u := urls[0]
	if p, err := url.Parse(u); err == nil && p.Scheme != "" && p.Scheme != "http" {
		return "", rpctypes.ErrGRPCMemberBadURLs
	}
	addr, err := hostPort(u)
	if err != nil {
		return "", rpctypes.ErrGRPCMemberBadURLs
	}
	if err := c.s.db.Engine().Barrier(ctx); err != nil {
		return "", err
	}
	for _, m := range c.s.db.Engine().Membership() {
		if m.Addr == addr {
			return "", rpctypes.ErrGRPCPeerURLExist
		}
	}
	return addr, nil
}

func (c *clusterServer) MemberAdd(ctx context.Context, req *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	addr, err := c.peerAddr(ctx, req.GetPeerURLs())
	if err != nil {
		return nil, err
	}
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.requestTimeout())
	defer cancel()
	if req.GetIsLearner() {
		err = c.s.db.Engine().AddLearner(ctx, id, addr)
	} else {
		err = c.s.db.Engine().AddVoter(ctx, id, addr)
	}
	if err != nil {
		return nil, err
	}
	return &pb.MemberAddResponse{
		Header:  c.s.header(nil),
		Member:  &pb.Member{ID: id, PeerURLs: []string{peerURL(addr)}, IsLearner: req.GetIsLearner()},
		Members: c.members(),
	}, nil
}

func (c *clusterServer) MemberRemove(ctx context.Context, req *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if !c.isMember(req.GetID()) {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.requestTimeout())
	defer cancel()
	if err := c.s.db.Engine().RemoveNode(ctx, req.GetID()); err != nil {
		return nil, err
	}
	if err := c.s.db.ForgetMember(ctx, req.GetID()); err != nil {
		c.s.log.Warn("forgetting a removed member's attributes", "member", fmt.Sprintf("%x", req.GetID()), "err", err)
	}
	return &pb.MemberRemoveResponse{Header: c.s.header(nil), Members: c.members()}, nil
}

func (c *clusterServer) MemberUpdate(ctx context.Context, req *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if !c.isMember(req.GetID()) {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	addr, err := c.peerAddr(ctx, req.GetPeerURLs())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.requestTimeout())
	defer cancel()
	if err := c.s.db.Engine().ChangeMembership(ctx, engine.Change{Type: engine.UpdateAddr, ID: req.GetID(), Addr: addr}); err != nil {
		return nil, err
	}
	return &pb.MemberUpdateResponse{Header: c.s.header(nil), Members: c.members()}, nil
}

func (c *clusterServer) MemberPromote(ctx context.Context, req *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if !c.isMember(req.GetID()) {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.requestTimeout())
	defer cancel()
	e := c.s.db.Engine()
	leader, err := c.s.waitLeader(ctx)
	if err != nil {
		return nil, err
	}
	if leader != e.ID() {
		// Only the leader knows how far the learner is: it decides.
		conn, err := c.s.peerConn(leader)
		if err != nil {
			return nil, err
		}
		return pb.NewClusterClient(conn).MemberPromote(ctx, req)
	}
	if !learnerReady(e.Status(), req.GetID()) {
		return nil, rpctypes.ErrGRPCLearnerNotReady
	}
	if err := e.PromoteLearner(ctx, req.GetID()); err != nil {
		return nil, err
	}
	return &pb.MemberPromoteResponse{Header: c.s.header(nil), Members: c.members()}, nil
}

func (c *clusterServer) isMember(id uint64) bool {
	for _, m := range c.s.db.Engine().Membership() {
		if m.ID == id {
			return true
		}
	}
	return false
}

// randomID picks the id of a member added through MemberAdd: random, as
// ids are never reused.
func randomID() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("server: member id: %w", err)
		}
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id, nil
		}
	}
}

// learnerReady reports whether learner id has caught up enough to vote
// (etcd's rule: its log matches at least 90% of the leader's). A learner
// promoted before that could cost the cluster its quorum.
func learnerReady(st engine.Status, id uint64) bool {
	if !slices.Contains(st.Learners, id) {
		return true // not a learner: PromoteLearner says so
	}
	pr, ok := st.Progress[id]
	return ok && float64(pr.Match) >= 0.9*float64(st.Commit)
}
