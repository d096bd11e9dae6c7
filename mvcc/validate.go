package mvcc

import (
	"bytes"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Request validation: everything that can be decided from the request alone,
// checked before anything is read or written, so that bad input changes
// nothing. The order of the checks within a request is fixed (tests rely on
// it): key, range end, then the request's own fields, as etcd's v3rpc checks.

func (s *Store) checkKey(key []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > s.opts.MaxKeyBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(key), s.opts.MaxKeyBytes)
	}
	return nil
}

// checkKeyRange checks a key and its range end: empty (one key), "\x00"
// (every key >= key) or a key not before key.
func (s *Store) checkKeyRange(key, end []byte) error {
	if err := s.checkKey(key); err != nil {
		return err
	}
	if len(end) == 0 || isFromKey(end) {
		return nil
	}
	if len(end) > s.opts.MaxKeyBytes {
		return fmt.Errorf("%w: range end of %d bytes, limit %d", ErrKeyTooLarge, len(end), s.opts.MaxKeyBytes)
	}
	if bytes.Compare(end, key) < 0 {
		return fmt.Errorf("%w: [%q, %q)", ErrInvalidRange, key, end)
	}
	return nil
}

func (s *Store) checkRange(r *pb.RangeRequest) error {
	if err := s.checkKeyRange(r.GetKey(), r.GetRangeEnd()); err != nil {
		return fmt.Errorf("range: %w", err)
	}
	if r.GetRevision() < 0 {
		return fmt.Errorf("range: %w: %d is negative", ErrInvalidRevision, r.GetRevision())
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.GetSortOrder())]; !ok {
		return fmt.Errorf("range: %w: sort order %d", ErrInvalidSortOption, r.GetSortOrder())
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.GetSortTarget())]; !ok {
		return fmt.Errorf("range: %w: sort target %d", ErrInvalidSortOption, r.GetSortTarget())
	}
	return nil
}

func (s *Store) checkPut(r *pb.PutRequest) error {
	if err := s.checkKey(r.GetKey()); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if len(r.GetValue()) > s.opts.MaxValueBytes {
		return fmt.Errorf("put %q: %w: %d bytes, limit %d", r.GetKey(), ErrValueTooLarge, len(r.GetValue()), s.opts.MaxValueBytes)
	}
	if r.GetIgnoreValue() && len(r.GetValue()) != 0 {
		return fmt.Errorf("put %q: %w", r.GetKey(), ErrValueProvided)
	}
	if r.GetIgnoreLease() && r.GetLease() != 0 {
		return fmt.Errorf("put %q: %w", r.GetKey(), ErrLeaseProvided)
	}
	return nil
}

func (s *Store) checkDelete(r *pb.DeleteRangeRequest) error {
	if err := s.checkKeyRange(r.GetKey(), r.GetRangeEnd()); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// checkTxn is etcd's checkTxnRequest, with its accounting of nested txns
// (each nested txn may use what its parent's largest list left over), plus
// this package's checks of compares.
func (s *Store) checkTxn(r *pb.TxnRequest, maxOps int) error {
	opc := max(len(r.GetCompare()), len(r.GetSuccess()), len(r.GetFailure()))
	if opc > maxOps {
		return fmt.Errorf("%w: %d, limit %d", ErrTooManyOps, opc, maxOps)
	}
	for i, c := range r.GetCompare() {
		if err := s.checkCompare(c); err != nil {
			return fmt.Errorf("compare[%d]: %w", i, err)
		}
	}
	for i, op := range r.GetSuccess() {
		if err := s.checkOp(op, maxOps-opc); err != nil {
			return fmt.Errorf("success[%d]: %w", i, err)
		}
	}
	for i, op := range r.GetFailure() {
		if err := s.checkOp(op, maxOps-opc); err != nil {
			return fmt.Errorf("failure[%d]: %w", i, err)
		}
	}
	return nil
}

func (s *Store) checkCompare(c *pb.Compare) error {
	if err := s.checkKeyRange(c.GetKey(), c.GetRangeEnd()); err != nil {
		return err
	}
	if _, ok := pb.Compare_CompareTarget_name[int32(c.GetTarget())]; !ok {
		return fmt.Errorf("%w: target %d", ErrInvalidCompare, c.GetTarget())
	}
	if _, ok := pb.Compare_CompareResult_name[int32(c.GetResult())]; !ok {
		return fmt.Errorf("%w: result %d", ErrInvalidCompare, c.GetResult())
	}
	return nil
}

func (s *Store) checkOp(op *pb.RequestOp, maxOps int) error {
	switch r := op.GetRequest().(type) {
	case *pb.RequestOp_RequestRange:
		return s.checkRange(r.RequestRange)
	case *pb.RequestOp_RequestPut:
		return s.checkPut(r.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return s.checkDelete(r.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return s.checkTxn(r.RequestTxn, maxOps)
	default:
		// An empty operation: etcd answers "key not found".
		return fmt.Errorf("empty operation: %w", ErrKeyNotFound)
	}
}

// checkIntervals is etcd's rule against writing a key twice in one txn,
// applied to one list of operations: a put may not hit a key put elsewhere
// or a range deleted at this level or by an earlier nested txn; puts in the
// two branches of one nested txn may share keys (only one branch runs);
// deletes may overlap each other. A delete's range is [key, range_end)
// taken literally, so a "\x00" (from-key) delete overlaps nothing, as in
// etcd; execution handles whatever order of writes gets through.
func checkIntervals(reqs []*pb.RequestOp) (puts map[string]struct{}, dels []interval, err error) {
	for _, op := range reqs {
		if d := op.GetRequestDeleteRange(); d != nil {
			dels = append(dels, deleteInterval(d.GetKey(), d.GetRangeEnd()))
		}
	}
	puts = map[string]struct{}{}
	for _, op := range reqs {
		tv, ok := op.GetRequest().(*pb.RequestOp_RequestTxn)
		if !ok {
			continue
		}
		putsThen, delsThen, err := checkIntervals(tv.RequestTxn.GetSuccess())
		if err != nil {
			return nil, nil, err
		}
		putsElse, delsElse, err := checkIntervals(tv.RequestTxn.GetFailure())
		if err != nil {
			return nil, nil, err
		}
		for k := range putsThen {
			if _, dup := puts[k]; dup || intersects(dels, k) {
				return nil, nil, fmt.Errorf("%w: %q", ErrDuplicateKey, k)
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, dup := puts[k]; dup {
				if _, sameTxn := putsThen[k]; !sameTxn {
					return nil, nil, fmt.Errorf("%w: %q", ErrDuplicateKey, k)
				}
			}
			if intersects(dels, k) {
				return nil, nil, fmt.Errorf("%w: %q", ErrDuplicateKey, k)
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, op := range reqs {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.GetKey())
		if _, dup := puts[k]; dup || intersects(dels, k) {
			return nil, nil, fmt.Errorf("%w: %q", ErrDuplicateKey, k)
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}

// interval is a half-open range of keys [begin, end) compared as bytes.
type interval struct{ begin, end string }

// deleteInterval is the interval etcd's checkIntervals gives a delete: the
// point key (as [key, key+"\x00")) or [key, range_end) literally.
func deleteInterval(key, end []byte) interval {
	if len(end) == 0 {
		return interval{string(key), string(key) + "\x00"}
	}
	return interval{string(key), string(end)}
}

func intersects(dels []interval, k string) bool {
	for _, d := range dels {
		if d.begin <= k && k < d.end {
			return true
		}
	}
	return false
}
