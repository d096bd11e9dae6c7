package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// kvServer is etcd's KV service. Reads are served here (linearizable ones
// after a read index from the leader); writes go through raft from any
// member.
type kvServer struct {
	pb.UnimplementedKVServer
	s *Server
}

func (k *kvServer) Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	resp, err := k.s.db.Range(ctx, req)
	if err != nil {
		return nil, err
	}
	resp.Header = k.s.header(resp.Header)
	return resp, nil
}

func (k *kvServer) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	resp, err := do[*pb.PutResponse](ctx, k.s, &pb.InternalRaftRequest{Put: req})
	if err != nil {
		return nil, err
	}
	resp.Header = k.s.header(resp.Header)
	return resp, nil
}

func (k *kvServer) DeleteRange(ctx context.Context, req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp, err := do[*pb.DeleteRangeResponse](ctx, k.s, &pb.InternalRaftRequest{DeleteRange: req})
	if err != nil {
		return nil, err
	}
	resp.Header = k.s.header(resp.Header)
	return resp, nil
}

func (k *kvServer) Txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	resp, err := do[*pb.TxnResponse](ctx, k.s, &pb.InternalRaftRequest{Txn: req})
	if err != nil {
		return nil, err
	}
	resp.Header = k.s.header(resp.Header)
	return resp, nil
}

func (k *kvServer) Compact(ctx context.Context, req *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := do[*pb.CompactionResponse](ctx, k.s, &pb.InternalRaftRequest{Compaction: req})
	if err != nil {
		return nil, err
	}
	resp.Header = k.s.header(resp.Header)
	return resp, nil
}

// do replicates a write and returns its typed response. A cluster without a
// leader fails fast rather than holding the request until it times out.
func do[T proto.Message](ctx context.Context, s *Server, req *pb.InternalRaftRequest) (T, error) {
	var zero T
	if proto.Size(req) > s.opts.MaxRequestBytes {
		return zero, errTooLarge
	}
	if err := s.checkQuota(ctx, req); err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	resp, err := s.db.Do(ctx, req)
	if err != nil {
		if leader, _, _ := s.db.Engine().Leader(); leader == 0 {
			return zero, errNoLeader
		}
		return zero, err
	}
	return resp.(T), nil
}
