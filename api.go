package cairn

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn/watch"
)

// KV is cairn's key-value API: keys, transactions, watches and leases. *DB
// implements it in-process and *client.Client over the network, so a
// program moves between embedded and remote by changing the line that opens
// one.
type KV interface {
	// Put sets key to value.
	Put(ctx context.Context, key, value string, opts ...OpOption) (*pb.PutResponse, error)
	// Get reads key, or a range of keys with WithPrefix, WithRange or
	// WithFromKey. It is linearizable unless WithSerializable.
	Get(ctx context.Context, key string, opts ...OpOption) (*pb.RangeResponse, error)
	// Delete removes key, or a range of keys.
	Delete(ctx context.Context, key string, opts ...OpOption) (*pb.DeleteRangeResponse, error)
	// Txn applies a transaction atomically, as one revision.
	Txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error)
	// Compact discards the history below rev.
	Compact(ctx context.Context, rev int64) (*pb.CompactionResponse, error)
	// Watch streams the changes to key (or a range), from WithRev's
	// revision or from the next one.
	Watch(ctx context.Context, key string, opts ...OpOption) (Watcher, error)
	// Grant creates a lease of ttl seconds.
	Grant(ctx context.Context, ttl int64) (*pb.LeaseGrantResponse, error)
	// Revoke ends lease id and deletes its keys, in one revision.
	Revoke(ctx context.Context, id int64) (*pb.LeaseRevokeResponse, error)
	// KeepAlive renews lease id once.
	KeepAlive(ctx context.Context, id int64) (*pb.LeaseKeepAliveResponse, error)
	// TimeToLive tells lease id's granted and remaining TTL, and with keys
	// its attached keys.
	TimeToLive(ctx context.Context, id int64, keys bool) (*pb.LeaseTimeToLiveResponse, error)
	// Leases lists every lease.
	Leases(ctx context.Context) (*pb.LeaseLeasesResponse, error)
	// Close releases the node (embedded) or the connection (remote).
	Close() error
}

// Watcher is one watch. Its responses arrive on C, in revision order; C is
// closed when the watch ends, and Err then says why: an error wrapping
// watch.ErrCompacted (watch.CompactRevision tells where to resync from),
// watch.ErrClosed after Close, or the context's error.
type Watcher interface {
	// ID identifies the watch among its client's watches; every response
	// carries it as WatchID.
	ID() int64
	C() <-chan watch.Response
	Err() error
	// RequestProgress asks for a progress notification: a response with no
	// events whose Revision says how far the watch has seen.
	RequestProgress()
	// Close ends the watch.
	Close()
}

var _ KV = (*DB)(nil)

// RangeRequest is the etcd request Get sends for key and opts.
func RangeRequest(key string, opts ...OpOption) *pb.RangeRequest {
	return buildOp(key, opts).rangeRequest()
}

// PutRequest is the etcd request Put sends for key, value and opts; with
// DeleteRequest and RangeRequest it builds the operations of a Txn.
func PutRequest(key, value string, opts ...OpOption) *pb.PutRequest {
	o := buildOp(key, opts)
	return &pb.PutRequest{
		Key: []byte(key), Value: []byte(value), Lease: o.lease, PrevKv: o.prevKV,
		IgnoreValue: o.ignoreValue, IgnoreLease: o.ignoreLease,
	}
}

// DeleteRequest is the etcd request Delete sends for key and opts.
func DeleteRequest(key string, opts ...OpOption) *pb.DeleteRangeRequest {
	o := buildOp(key, opts)
	return &pb.DeleteRangeRequest{Key: o.key, RangeEnd: o.end, PrevKv: o.prevKV}
}

// WatchRequest is the etcd request Watch sends for key and opts.
func WatchRequest(key string, opts ...OpOption) *pb.WatchCreateRequest {
	o := buildOp(key, opts)
	req := &pb.WatchCreateRequest{
		Key: o.key, RangeEnd: o.end, StartRevision: o.rev, ProgressNotify: o.progress,
		PrevKv: o.prevKV, Fragment: o.fragment,
	}
	if o.filterPut {
		req.Filters = append(req.Filters, pb.WatchCreateRequest_NOPUT)
	}
	if o.filterDelete {
		req.Filters = append(req.Filters, pb.WatchCreateRequest_NODELETE)
	}
	return req
}

// WatchOptions turns an etcd watch request into the watch hub's options.
func WatchOptions(req *pb.WatchCreateRequest) []watch.Option {
	var w []watch.Option
	if len(req.GetRangeEnd()) > 0 {
		w = append(w, watch.WithRange(req.GetRangeEnd()))
	}
	if req.GetStartRevision() != 0 {
		w = append(w, watch.WithRev(req.GetStartRevision()))
	}
	if req.GetPrevKv() {
		w = append(w, watch.WithPrevKV())
	}
	for _, f := range req.GetFilters() {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w = append(w, watch.WithFilterPut())
		case pb.WatchCreateRequest_NODELETE:
			w = append(w, watch.WithFilterDelete())
		}
	}
	if req.GetProgressNotify() {
		w = append(w, watch.WithProgressNotify())
	}
	if req.GetFragment() {
		w = append(w, watch.WithFragment())
	}
	return w
}
