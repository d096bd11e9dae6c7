package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/engine"

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

// ReadConsistencyKey is the gRPC metadata key through which a request
// chooses its read policy: "linearizable", "lease" or "eventual" (or the
// full names). Absent: the member's raft.read_consistency.default_policy.
// etcd's serializable=true always means eventual.
const ReadConsistencyKey = "cairn-read-consistency"

// readPolicy is the policy the request's metadata asks for, "" for none.
func readPolicy(ctx context.Context) (engine.ReadPolicy, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(ReadConsistencyKey)
	if len(v) == 0 {
		return "", nil
	}
	if len(v) > 1 {
		return "", status.Errorf(codes.InvalidArgument, "%s: %d values, want one", ReadConsistencyKey, len(v))
	}
	p, err := engine.ParseReadPolicy(v[0])
	if err != nil {
		return "", status.Errorf(codes.InvalidArgument, "%s: %v", ReadConsistencyKey, err)
	}
	return p, nil
}

func (k *kvServer) Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	p, err := readPolicy(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := k.s.db.RangeWithPolicy(ctx, req, p)
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
	size := proto.Size(req)
	if size > s.opts.MaxRequestBytes {
		return zero, errTooLarge
	}
	if err := s.checkQuota(ctx, req, size); err != nil {
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
