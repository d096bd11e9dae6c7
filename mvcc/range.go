package mvcc

import (
	"bytes"
	"fmt"
	"math"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// rangeReq answers a validated RangeRequest from v, following etcd's
// executeRange step by step (the quirks are etcd's, kept on purpose):
//
//   - count is the number of keys in the range at the revision, before the
//     min/max filters and the limit;
//   - with a sort order or a filter everything is fetched, filtered, sorted
//     and then cut to the limit; otherwise limit+1 keys are fetched in key
//     order (so a sort target other than KEY with order NONE sorts only
//     those), and more says whether there were more than limit;
//   - the header carries the view's revision, whatever revision was read.
func (v *view) rangeReq(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	rev, err := v.resolveRev(r.GetRevision())
	if err != nil {
		return nil, fmt.Errorf("range: %w", err)
	}
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: v.rev}}
	if r.GetCountOnly() {
		resp.Count, err = v.scan(r.GetKey(), r.GetRangeEnd(), rev, 0, nil)
		if err != nil {
			return nil, err
		}
		return resp, nil
	}

	limit := r.GetLimit()
	filtered := r.GetMinModRevision() != 0 || r.GetMaxModRevision() != 0 ||
		r.GetMinCreateRevision() != 0 || r.GetMaxCreateRevision() != 0
	if r.GetSortOrder() != pb.RangeRequest_NONE || filtered {
		limit = 0
	}
	want := -1 // every key
	if limit > 0 && limit < math.MaxInt64 {
		want = int(limit + 1) // one more than asked, to know whether there is more
	}
	var kvs []*mvccpb.KeyValue
	resp.Count, err = v.scan(r.GetKey(), r.GetRangeEnd(), rev, want, func(kv *mvccpb.KeyValue) bool {
		kvs = append(kvs, kv)
		return true
	})
	if err != nil {
		return nil, err
	}

	if m := r.GetMaxModRevision(); m != 0 {
		kvs = prune(kvs, func(kv *mvccpb.KeyValue) bool { return kv.ModRevision > m })
	}
	if m := r.GetMinModRevision(); m != 0 {
		kvs = prune(kvs, func(kv *mvccpb.KeyValue) bool { return kv.ModRevision < m })
	}
	if m := r.GetMaxCreateRevision(); m != 0 {
		kvs = prune(kvs, func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision > m })
	}
	if m := r.GetMinCreateRevision(); m != 0 {
		kvs = prune(kvs, func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision < m })
	}
	sortKVs(kvs, r.GetSortOrder(), r.GetSortTarget())

	if r.GetLimit() > 0 && int64(len(kvs)) > r.GetLimit() {
		kvs = kvs[:r.GetLimit()]
		resp.More = true
	}
	if r.GetKeysOnly() {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

// prune removes, in place, the key-values drop says to remove.
func prune(kvs []*mvccpb.KeyValue, drop func(*mvccpb.KeyValue) bool) []*mvccpb.KeyValue {
	j := 0
	for _, kv := range kvs {
		if !drop(kv) {
			kvs[j] = kv
			j++
		}
	}
	clear(kvs[j:])
	return kvs[:j]
}

// sortKVs sorts kvs (which arrive in key order) as etcd does: a target other
// than KEY with no order means ascending, KEY ascending is already done. It
// uses sort.Sort, like etcd, so that even the order of ties is etcd's.
func sortKVs(kvs []*mvccpb.KeyValue, order pb.RangeRequest_SortOrder, target pb.RangeRequest_SortTarget) {
	if target != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	} else if target == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND {
		order = pb.RangeRequest_NONE
	}
	if order == pb.RangeRequest_NONE {
		return
	}
	var s sort.Interface = kvSorter{kvs: kvs, target: target}
	if order == pb.RangeRequest_DESCEND {
		s = sort.Reverse(s)
	}
	sort.Sort(s)
}

type kvSorter struct {
	kvs    []*mvccpb.KeyValue
	target pb.RangeRequest_SortTarget
}

func (s kvSorter) Len() int      { return len(s.kvs) }
func (s kvSorter) Swap(i, j int) { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s kvSorter) Less(i, j int) bool {
	a, b := s.kvs[i], s.kvs[j]
	switch s.target {
	case pb.RangeRequest_VERSION:
		return a.Version < b.Version
	case pb.RangeRequest_CREATE:
		return a.CreateRevision < b.CreateRevision
	case pb.RangeRequest_MOD:
		return a.ModRevision < b.ModRevision
	case pb.RangeRequest_VALUE:
		return bytes.Compare(a.Value, b.Value) < 0
	default: // KEY; validation refused unknown targets
		return bytes.Compare(a.Key, b.Key) < 0
	}
}
