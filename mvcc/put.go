package mvcc

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Put applies req as one new revision. With ignore_value or ignore_lease
// the key must exist (ErrKeyNotFound otherwise, and nothing changes); the
// key keeps its current value or lease. A put without a lease detaches the
// key from its lease unless ignore_lease is set. Whether the lease exists is
// the caller's business.
func (b *Batch) Put(req *pb.PutRequest) (*pb.PutResponse, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if err := b.s.checkPut(req); err != nil {
		return nil, err
	}
	var resp *pb.PutResponse
	err := b.apply(func(w *writer) error {
		prev, err := b.current(req.GetKey())
		if err != nil {
			return err
		}
		resp, err = w.execPut(req, prev)
		return err
	})
	return resp, err
}

// execPut is etcd's put over prev, the key's current KeyValue (or nil).
func (w *writer) execPut(r *pb.PutRequest, prev *mvccpb.KeyValue) (*pb.PutResponse, error) {
	if (r.GetIgnoreValue() || r.GetIgnoreLease()) && prev == nil {
		return nil, fmt.Errorf("put %q with ignore_value or ignore_lease: %w", r.GetKey(), ErrKeyNotFound)
	}
	value, lease := r.GetValue(), r.GetLease()
	if r.GetIgnoreValue() {
		value = prev.Value
	}
	if r.GetIgnoreLease() {
		lease = prev.Lease
	}
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	if r.GetPrevKv() && prev != nil {
		resp.PrevKv = prev
	}
	if _, err := w.put(r.GetKey(), value, lease, prev); err != nil {
		return nil, err
	}
	resp.Header.Revision = w.rev
	return resp, nil
}
