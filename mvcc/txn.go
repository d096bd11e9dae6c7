package mvcc

import (
	"bytes"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Txn applies req atomically: all of it as one revision (with a sub revision
// per write), or nothing if it writes nothing. It follows etcd's txn.go:
//
//  1. the request is validated (sizes, ranges, MaxTxnOps, duplicate keys);
//  2. the compares of the txn and of every nested txn on the chosen branches
//     are evaluated on the store as it was before the txn, giving the path;
//  3. the preconditions of the path are checked on that same state: ranges
//     at a future or compacted revision, puts with ignore_value or
//     ignore_lease on a missing key (a key deleted earlier in the txn counts
//     as missing: etcd would crash on that one, cairn refuses the txn);
//  4. the operations run in order, each seeing the writes of the ones
//     before it.
//
// So a txn that fails fails before writing anything.
func (b *Batch) Txn(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	return b.TxnChecked(req, nil)
}

// TxnChecked is Txn with checkPut run, in step 3, on every put of the path
// taken (and only there, as etcd's checkTxn does): the state machine checks
// that a put's lease exists. An error from it refuses the txn.
func (b *Batch) TxnChecked(req *pb.TxnRequest, checkPut func(*pb.PutRequest) error) (*pb.TxnResponse, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if err := b.s.checkTxn(req, b.s.opts.MaxTxnOps); err != nil {
		return nil, fmt.Errorf("txn: %w", err)
	}
	if _, _, err := checkIntervals(req.GetSuccess()); err != nil {
		return nil, fmt.Errorf("txn success: %w", err)
	}
	if _, _, err := checkIntervals(req.GetFailure()); err != nil {
		return nil, fmt.Errorf("txn failure: %w", err)
	}
	var resp *pb.TxnResponse
	err := b.apply(func(w *writer) error {
		v := b.openView(w.readRev())
		path, err := compareToPath(v, req)
		if err == nil {
			c := pathChecker{v: v, checkPut: checkPut}
			_, err = c.check(req, path)
		}
		v.close()
		if err != nil {
			return fmt.Errorf("txn: %w", err)
		}
		resp, _, err = w.execTxn(req, path)
		if err != nil {
			return fmt.Errorf("txn: %w", err)
		}
		resp.Header.Revision = w.readRev()
		return nil
	})
	return resp, err
}

// branch returns the operations of the branch taken.
func branch(rt *pb.TxnRequest, succeeded bool) []*pb.RequestOp {
	if succeeded {
		return rt.GetSuccess()
	}
	return rt.GetFailure()
}

// compareToPath evaluates the compares of rt and, depth first, of the txns
// nested in the branch taken: path[0] is rt's outcome, followed by the
// paths of its nested txns in order.
func compareToPath(v *view, rt *pb.TxnRequest) ([]bool, error) {
	ok, err := applyCompares(v, rt.GetCompare())
	if err != nil {
		return nil, err
	}
	path := []bool{ok}
	for _, op := range branch(rt, ok) {
		if t, isTxn := op.GetRequest().(*pb.RequestOp_RequestTxn); isTxn {
			sub, err := compareToPath(v, t.RequestTxn)
			if err != nil {
				return nil, err
			}
			path = append(path, sub...)
		}
	}
	return path, nil
}

func applyCompares(v *view, cmps []*pb.Compare) (bool, error) {
	for _, c := range cmps {
		ok, err := applyCompare(v, c)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// applyCompare holds if it holds for every key of its range. On an empty
// range a value compare fails (a missing value is not the empty value) and
// the other targets compare against zero, as in etcd.
func applyCompare(v *view, c *pb.Compare) (bool, error) {
	n, holds := 0, true
	_, err := v.scan(c.GetKey(), c.GetRangeEnd(), v.rev, -1, func(kv *mvccpb.KeyValue) bool {
		n++
		holds = compareKV(c, kv)
		return holds
	})
	if err != nil {
		return false, err
	}
	if n == 0 {
		if c.GetTarget() == pb.Compare_VALUE {
			return false, nil
		}
		return compareKV(c, &mvccpb.KeyValue{}), nil
	}
	return holds, nil
}

// compareKV is etcd's compareKV: a target union that does not match the
// target compares against the zero value.
func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.GetTarget() {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmpInt(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmpInt(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmpInt(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmpInt(kv.Lease, c.GetLease())
	}
	switch c.GetResult() {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true // unreachable: validation refused unknown results
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pathChecker checks the preconditions of the operations on a txn's path,
// in execution order, against the state before the txn (v) and the writes
// of the path so far.
type pathChecker struct {
	v        *view
	writes   []txnWrite
	checkPut func(*pb.PutRequest) error // may be nil
}

// txnWrite is a write seen on the path: a put of key, or a delete of
// [key, end) with etcd's conventions for end.
type txnWrite struct {
	put      bool
	key, end []byte
}

// check checks rt along path and returns how many path entries rt and its
// nested txns used.
func (c *pathChecker) check(rt *pb.TxnRequest, path []bool) (int, error) {
	used := 1
	name := "success"
	if !path[0] {
		name = "failure"
	}
	for i, op := range branch(rt, path[0]) {
		var err error
		switch r := op.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			err = c.checkRangeRev(r.RequestRange.GetRevision())
		case *pb.RequestOp_RequestPut:
			p := r.RequestPut
			if p.GetIgnoreValue() || p.GetIgnoreLease() {
				var exists bool
				if exists, err = c.exists(p.GetKey()); err == nil && !exists {
					err = fmt.Errorf("put %q with ignore_value or ignore_lease: %w", p.GetKey(), ErrKeyNotFound)
				}
			}
			if err == nil && c.checkPut != nil {
				err = c.checkPut(p)
			}
			c.writes = append(c.writes, txnWrite{put: true, key: p.GetKey()})
		case *pb.RequestOp_RequestDeleteRange:
			d := r.RequestDeleteRange
			c.writes = append(c.writes, txnWrite{key: d.GetKey(), end: d.GetRangeEnd()})
		case *pb.RequestOp_RequestTxn:
			var n int
			n, err = c.check(r.RequestTxn, path[used:])
			used += n
		}
		if err != nil {
			return 0, fmt.Errorf("%s[%d]: %w", name, i, err)
		}
	}
	return used, nil
}

// checkRangeRev is etcd's checkRange: a range in a txn may not read the
// future or below the compacted revision.
func (c *pathChecker) checkRangeRev(rev int64) error {
	switch {
	case rev == 0:
		return nil
	case rev > c.v.rev:
		return &FutureRevError{Requested: rev, Rev: c.v.rev}
	case rev < c.v.compactRev:
		return &CompactedError{Requested: rev, CompactRev: c.v.compactRev}
	}
	return nil
}

// exists reports whether key will exist when the next operation of the
// path runs.
func (c *pathChecker) exists(key []byte) (bool, error) {
	kv, err := c.v.get(key, c.v.rev)
	if err != nil {
		return false, err
	}
	exists := kv != nil
	for _, w := range c.writes {
		switch {
		case w.put && bytes.Equal(w.key, key):
			exists = true
		case !w.put && covers(w.key, w.end, key):
			exists = false
		}
	}
	return exists, nil
}

// covers reports whether the range [key, end), with etcd's conventions for
// end, holds k.
func covers(key, end, k []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(key, k)
	case isFromKey(end):
		return bytes.Compare(k, key) >= 0
	}
	return bytes.Compare(k, key) >= 0 && bytes.Compare(k, end) < 0
}

// execTxn runs the operations of rt's branch on path and returns rt's
// response and how many path entries it used. A nested txn's response header
// is left empty, as etcd leaves it; only the outer txn's carries a revision.
func (w *writer) execTxn(rt *pb.TxnRequest, path []bool) (*pb.TxnResponse, int, error) {
	ops := branch(rt, path[0])
	resp := &pb.TxnResponse{
		Header:    &pb.ResponseHeader{},
		Succeeded: path[0],
		Responses: make([]*pb.ResponseOp, len(ops)),
	}
	used := 1
	for i, op := range ops {
		out := &pb.ResponseOp{}
		switch r := op.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			rev := w.readRev()
			v := w.b.openView(rev)
			rr, err := v.rangeReq(r.RequestRange)
			v.close()
			if err != nil {
				return nil, 0, err
			}
			out.Response = &pb.ResponseOp_ResponseRange{ResponseRange: rr}
		case *pb.RequestOp_RequestPut:
			prev, err := w.b.current(r.RequestPut.GetKey())
			if err != nil {
				return nil, 0, err
			}
			pr, err := w.execPut(r.RequestPut, prev)
			if err != nil {
				return nil, 0, err
			}
			out.Response = &pb.ResponseOp_ResponsePut{ResponsePut: pr}
		case *pb.RequestOp_RequestDeleteRange:
			dr, err := w.execDelete(r.RequestDeleteRange)
			if err != nil {
				return nil, 0, err
			}
			out.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}
		case *pb.RequestOp_RequestTxn:
			tr, n, err := w.execTxn(r.RequestTxn, path[used:])
			if err != nil {
				return nil, 0, err
			}
			used += n
			out.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: tr}
		}
		resp.Responses[i] = out
	}
	return resp, used, nil
}
