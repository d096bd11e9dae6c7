package mvcc

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// DeleteRange deletes the keys of req's range as one new revision, or
// changes nothing (and keeps the revision) if the range holds no key.
func (b *Batch) DeleteRange(req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if err := b.s.checkDelete(req); err != nil {
		return nil, err
	}
	var resp *pb.DeleteRangeResponse
	err := b.apply(func(w *writer) error {
		var err error
		resp, err = w.execDelete(req)
		return err
	})
	return resp, err
}

// execDelete is etcd's deleteRange. The header carries the new revision if
// this request (a txn) has changed anything by now, else the current one.
func (w *writer) execDelete(r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	prevs, err := w.live(r.GetKey(), r.GetRangeEnd())
	if err != nil {
		return nil, err
	}
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	if r.GetPrevKv() {
		resp.PrevKvs = make([]*mvccpb.KeyValue, len(prevs))
		for i, kv := range prevs {
			resp.PrevKvs[i] = cloneKV(kv)
		}
	}
	for _, kv := range prevs {
		if err := w.del(kv); err != nil {
			return nil, err
		}
	}
	resp.Deleted = int64(len(prevs))
	resp.Header.Revision = w.readRev()
	return resp, nil
}

// live returns the current KeyValues of the range [key, end) (etcd's
// conventions for end) as the batch has left it, in key order.
func (w *writer) live(key, end []byte) ([]*mvccpb.KeyValue, error) {
	if len(end) == 0 {
		kv, err := w.b.current(key)
		if err != nil || kv == nil {
			return nil, err
		}
		return []*mvccpb.KeyValue{kv}, nil
	}
	rev := w.readRev()
	v := w.b.openView(rev)
	defer v.close()
	var kvs []*mvccpb.KeyValue
	_, err := v.scan(key, end, rev, -1, func(kv *mvccpb.KeyValue) bool {
		kvs = append(kvs, kv)
		return true
	})
	return kvs, err
}

// RevokeLease deletes every key attached to lease, in key order, as one
// revision (etcd's lessor does the same when a lease is revoked or expires),
// or changes nothing if no key is attached. The response carries the new
// revision and the number of keys deleted.
func (b *Batch) RevokeLease(lease int64) (*pb.DeleteRangeResponse, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	var resp *pb.DeleteRangeResponse
	err := b.apply(func(w *writer) error {
		v := b.openView(b.st.rev)
		keys, err := v.keysWithLease(lease)
		v.close()
		if err != nil {
			return err
		}
		for _, k := range keys {
			prev, err := b.current(k)
			if err != nil {
				return err
			}
			if prev == nil || prev.Lease != lease {
				return corrupt(leaseKey(lease, k), "lease index entry of a key not attached to the lease")
			}
			if err := w.del(prev); err != nil {
				return err
			}
		}
		resp = &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: w.readRev()}, Deleted: int64(len(keys))}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("revoke lease %d: %w", lease, err)
	}
	return resp, nil
}
