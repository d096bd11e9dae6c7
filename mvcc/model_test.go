package mvcc

import (
	"bytes"
	"maps"
	"slices"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// model is the reference the store is compared with: etcd's data model
// written the simplest way, with no storage layout at all. Every version of
// every key is kept forever in a slice; compaction only moves the point
// below which reads are refused; every read is a scan over all keys. A txn
// runs on a copy of the model, which is adopted only if it succeeds.
type model struct {
	opts    Options
	rev     int64
	compact int64
	applied uint64
	vers    map[string][]mver // per key, in revision order
	revs    []Revision        // every revision ever created
}

// mver is one version of a key: nil kv is a deletion.
type mver struct {
	rev int64
	kv  *mvccpb.KeyValue
}

func newModel(opts Options) *model {
	o, err := opts.withDefaults()
	if err != nil {
		panic(err)
	}
	return &model{opts: o, rev: 1, vers: map[string][]mver{}}
}

// clone is a deep enough copy: version slices are copied, messages are
// never modified once stored.
func (m *model) clone() *model {
	c := *m
	c.vers = make(map[string][]mver, len(m.vers))
	for k, v := range m.vers {
		c.vers[k] = slices.Clone(v)
	}
	c.revs = slices.Clone(m.revs)
	return &c
}

// at is key's KeyValue at rev, or nil.
func (m *model) at(key string, rev int64) *mvccpb.KeyValue {
	vs := m.vers[key]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].rev <= rev {
			return vs[i].kv
		}
	}
	return nil
}

// inRange is etcd's range membership: empty end is one key, "\x00" is every
// key >= key.
func inRange(k, key, end string) bool {
	switch {
	case end == "":
		return k == key
	case end == "\x00":
		return k >= key
	}
	return k >= key && k < end
}

// live returns copies of the key-values in [key, end) at rev, in key order.
func (m *model) live(key, end string, rev int64) []*mvccpb.KeyValue {
	var out []*mvccpb.KeyValue
	for _, k := range slices.Sorted(maps.Keys(m.vers)) {
		if !inRange(k, key, end) {
			continue
		}
		if kv := m.at(k, rev); kv != nil {
			out = append(out, cloneKV(kv))
		}
	}
	return out
}

// --- validation, written out again from etcd's v3rpc checks ---

func (m *model) validKey(key, end []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > m.opts.MaxKeyBytes {
		return ErrKeyTooLarge
	}
	if len(end) == 0 || string(end) == "\x00" {
		return nil
	}
	if len(end) > m.opts.MaxKeyBytes {
		return ErrKeyTooLarge
	}
	if string(end) < string(key) {
		return ErrInvalidRange
	}
	return nil
}

func (m *model) validRange(r *pb.RangeRequest) error {
	if err := m.validKey(r.Key, r.RangeEnd); err != nil {
		return err
	}
	if r.Revision < 0 {
		return ErrInvalidRevision
	}
	if r.SortOrder < 0 || r.SortOrder > pb.RangeRequest_DESCEND || r.SortTarget < 0 || r.SortTarget > pb.RangeRequest_VALUE {
		return ErrInvalidSortOption
	}
	return nil
}

func (m *model) validPut(r *pb.PutRequest) error {
	if err := m.validKey(r.Key, nil); err != nil {
		return err
	}
	switch {
	case len(r.Value) > m.opts.MaxValueBytes:
		return ErrValueTooLarge
	case r.IgnoreValue && len(r.Value) > 0:
		return ErrValueProvided
	case r.IgnoreLease && r.Lease != 0:
		return ErrLeaseProvided
	}
	return nil
}

func (m *model) validTxn(r *pb.TxnRequest, budget int) error {
	n := max(len(r.GetCompare()), len(r.GetSuccess()), len(r.GetFailure()))
	if n > budget {
		return ErrTooManyOps
	}
	for _, c := range r.GetCompare() {
		if err := m.validKey(c.Key, c.RangeEnd); err != nil {
			return err
		}
		if c.Target < 0 || c.Target > pb.Compare_LEASE || c.Result < 0 || c.Result > pb.Compare_NOT_EQUAL {
			return ErrInvalidCompare
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		for _, op := range ops {
			var err error
			switch {
			case op.GetRequestRange() != nil:
				err = m.validRange(op.GetRequestRange())
			case op.GetRequestPut() != nil:
				err = m.validPut(op.GetRequestPut())
			case op.GetRequestDeleteRange() != nil:
				d := op.GetRequestDeleteRange()
				err = m.validKey(d.Key, d.RangeEnd)
			case op.GetRequestTxn() != nil:
				err = m.validTxn(op.GetRequestTxn(), budget-n)
			default:
				err = ErrKeyNotFound
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// noDuplicates is etcd's checkIntervals, phrased as: collect what each list
// puts and deletes, children first, then refuse a put that meets an earlier
// put (except then/else of one child) or a delete seen so far.
func noDuplicates(ops []*pb.RequestOp) (puts map[string]bool, dels [][2]string, ok bool) {
	hits := func(k string) bool {
		for _, d := range dels {
			if k >= d[0] && k < d[1] {
				return true
			}
		}
		return false
	}
	for _, op := range ops {
		if d := op.GetRequestDeleteRange(); d != nil {
			end := string(d.RangeEnd)
			if end == "" {
				end = string(d.Key) + "\x00"
			}
			dels = append(dels, [2]string{string(d.Key), end})
		}
	}
	puts = map[string]bool{}
	for _, op := range ops {
		t := op.GetRequestTxn()
		if t == nil {
			continue
		}
		thenPuts, thenDels, ok1 := noDuplicates(t.Success)
		elsePuts, elseDels, ok2 := noDuplicates(t.Failure)
		if !ok1 || !ok2 {
			return nil, nil, false
		}
		for k := range thenPuts {
			if puts[k] || hits(k) {
				return nil, nil, false
			}
			puts[k] = true
		}
		for k := range elsePuts {
			if (puts[k] && !thenPuts[k]) || hits(k) {
				return nil, nil, false
			}
			puts[k] = true
		}
		dels = append(append(dels, thenDels...), elseDels...)
	}
	for _, op := range ops {
		if p := op.GetRequestPut(); p != nil {
			k := string(p.Key)
			if puts[k] || hits(k) {
				return nil, nil, false
			}
			puts[k] = true
		}
	}
	return puts, dels, true
}

// --- requests ---

// req is one request being applied: its revision and what it changed.
type req struct {
	m      *model
	rev    int64 // the revision it creates if it changes anything
	begin  int64 // the revision before it
	events []*mvccpb.Event
}

func (m *model) begin() *req { return &req{m: m, rev: m.rev + 1, begin: m.rev} }

func (q *req) readRev() int64 {
	if len(q.events) > 0 {
		return q.rev
	}
	return q.begin
}

func (q *req) end() {
	if len(q.events) > 0 {
		q.m.rev = q.rev
		q.m.revs = append(q.m.revs, Revision{Rev: q.rev, Events: q.events})
	}
}

func (q *req) write(key string, kv *mvccpb.KeyValue, ev *mvccpb.Event) {
	q.m.vers[key] = append(q.m.vers[key], mver{rev: q.rev, kv: kv})
	q.events = append(q.events, ev)
}

func (q *req) put(r *pb.PutRequest) (*pb.PutResponse, error) {
	key := string(r.Key)
	prev := q.m.at(key, q.rev) // the newest version, this request's included
	if (r.IgnoreValue || r.IgnoreLease) && prev == nil {
		return nil, ErrKeyNotFound
	}
	kv := &mvccpb.KeyValue{Key: []byte(key), Value: r.Value, CreateRevision: q.rev, ModRevision: q.rev, Version: 1, Lease: r.Lease}
	if prev != nil {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
	}
	if r.IgnoreValue {
		kv.Value = prev.Value
	}
	if r.IgnoreLease {
		kv.Lease = prev.Lease
	}
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: q.rev}}
	if r.PrevKv && prev != nil {
		resp.PrevKv = cloneKV(prev)
	}
	q.write(key, kv, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: cloneKV(kv), PrevKv: cloneKV(prev)})
	return resp, nil
}

func (q *req) deleteKeys(prevs []*mvccpb.KeyValue) {
	for _, prev := range prevs {
		q.write(string(prev.Key), nil, &mvccpb.Event{
			Type:   mvccpb.Event_DELETE,
			Kv:     &mvccpb.KeyValue{Key: prev.Key, ModRevision: q.rev},
			PrevKv: cloneKV(prev),
		})
	}
}

func (q *req) del(r *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	prevs := q.m.live(string(r.Key), string(r.RangeEnd), q.rev)
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}, Deleted: int64(len(prevs))}
	if r.PrevKv {
		resp.PrevKvs = prevs
	}
	q.deleteKeys(prevs)
	resp.Header.Revision = q.readRev()
	return resp
}

// rangeAt answers r with the current revision cur (the header's).
func (m *model) rangeAt(r *pb.RangeRequest, cur int64) (*pb.RangeResponse, error) {
	rev := r.Revision
	if rev > cur {
		return nil, ErrFutureRev
	}
	if rev == 0 {
		rev = cur
	}
	if rev < m.compact {
		return nil, ErrCompacted
	}
	all := m.live(string(r.Key), string(r.RangeEnd), rev)
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: cur}, Count: int64(len(all))}
	if r.CountOnly {
		return resp, nil
	}
	kvs := all
	fetchAll := r.SortOrder != pb.RangeRequest_NONE || r.MinModRevision != 0 || r.MaxModRevision != 0 ||
		r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	if !fetchAll && r.Limit > 0 && int64(len(kvs)) > r.Limit+1 {
		kvs = kvs[:r.Limit+1]
	}
	kvs = slices.DeleteFunc(kvs, func(kv *mvccpb.KeyValue) bool {
		return (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
			(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
			(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
			(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision)
	})
	order := r.SortOrder
	if order == pb.RangeRequest_NONE && r.SortTarget != pb.RangeRequest_KEY {
		order = pb.RangeRequest_ASCEND
	}
	if !(order == pb.RangeRequest_NONE || (order == pb.RangeRequest_ASCEND && r.SortTarget == pb.RangeRequest_KEY)) {
		field := func(kv *mvccpb.KeyValue) int64 {
			switch r.SortTarget {
			case pb.RangeRequest_VERSION:
				return kv.Version
			case pb.RangeRequest_CREATE:
				return kv.CreateRevision
			case pb.RangeRequest_MOD:
				return kv.ModRevision
			}
			return 0
		}
		less := func(a, b *mvccpb.KeyValue) bool {
			switch r.SortTarget {
			case pb.RangeRequest_KEY:
				return bytes.Compare(a.Key, b.Key) < 0
			case pb.RangeRequest_VALUE:
				return bytes.Compare(a.Value, b.Value) < 0
			}
			return field(a) < field(b)
		}
		// sort.Sort, as etcd: the order of ties is that algorithm's.
		var s sort.Interface = modelSorter{kvs, less}
		if order == pb.RangeRequest_DESCEND {
			s = sort.Reverse(s)
		}
		sort.Sort(s)
	}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs, resp.More = kvs[:r.Limit], true
	}
	if r.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

type modelSorter struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (s modelSorter) Len() int           { return len(s.kvs) }
func (s modelSorter) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s modelSorter) Less(i, j int) bool { return s.less(s.kvs[i], s.kvs[j]) }

func (m *model) compare(c *pb.Compare, rev int64) bool {
	kvs := m.live(string(c.Key), string(c.RangeEnd), rev)
	if len(kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		kvs = []*mvccpb.KeyValue{{}}
	}
	for _, kv := range kvs {
		var d int
		switch c.Target {
		case pb.Compare_VALUE:
			d = bytes.Compare(kv.Value, c.GetValue())
		case pb.Compare_VERSION:
			d = cmpInt(kv.Version, c.GetVersion())
		case pb.Compare_CREATE:
			d = cmpInt(kv.CreateRevision, c.GetCreateRevision())
		case pb.Compare_MOD:
			d = cmpInt(kv.ModRevision, c.GetModRevision())
		case pb.Compare_LEASE:
			d = cmpInt(kv.Lease, c.GetLease())
		}
		ok := map[pb.Compare_CompareResult]bool{
			pb.Compare_EQUAL: d == 0, pb.Compare_NOT_EQUAL: d != 0, pb.Compare_GREATER: d > 0, pb.Compare_LESS: d < 0,
		}[c.Result]
		if !ok {
			return false
		}
	}
	return true
}

// txnRun executes one txn level. Compares, including nested ones, read the
// state before the txn (begin); preconditions that etcd checks up front
// (ranges at a future or compacted revision, ignore_* puts on a missing
// key) are found here during execution, which is why the txn runs on a copy.
func (q *req) txnRun(t *pb.TxnRequest) (*pb.TxnResponse, error) {
	ok := true
	for _, c := range t.GetCompare() {
		if !q.m.compare(c, q.begin) {
			ok = false
			break
		}
	}
	ops := t.GetSuccess()
	if !ok {
		ops = t.GetFailure()
	}
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: ok}
	for _, op := range ops {
		out := &pb.ResponseOp{}
		switch {
		case op.GetRequestRange() != nil:
			r := op.GetRequestRange()
			if r.Revision > q.begin {
				return nil, ErrFutureRev
			}
			rr, err := q.m.rangeAt(r, q.readRev())
			if err != nil {
				return nil, err
			}
			out.Response = &pb.ResponseOp_ResponseRange{ResponseRange: rr}
		case op.GetRequestPut() != nil:
			pr, err := q.put(op.GetRequestPut())
			if err != nil {
				return nil, err
			}
			out.Response = &pb.ResponseOp_ResponsePut{ResponsePut: pr}
		case op.GetRequestDeleteRange() != nil:
			out.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: q.del(op.GetRequestDeleteRange())}
		case op.GetRequestTxn() != nil:
			tr, err := q.txnRun(op.GetRequestTxn())
			if err != nil {
				return nil, err
			}
			out.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: tr}
		}
		resp.Responses = append(resp.Responses, out)
	}
	return resp, nil
}

// The model's operations. Each returns what the store should return; an
// error leaves the model unchanged.

func (m *model) Put(r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := m.validPut(r); err != nil {
		return nil, err
	}
	q := m.begin()
	resp, err := q.put(r)
	if err != nil {
		return nil, err
	}
	q.end()
	return resp, nil
}

func (m *model) DeleteRange(r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := m.validKey(r.Key, r.RangeEnd); err != nil {
		return nil, err
	}
	q := m.begin()
	resp := q.del(r)
	q.end()
	return resp, nil
}

func (m *model) Range(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := m.validRange(r); err != nil {
		return nil, err
	}
	return m.rangeAt(r, m.rev)
}

// Txn returns the model that results (m itself on error).
func (m *model) Txn(r *pb.TxnRequest) (*pb.TxnResponse, *model, error) {
	if err := m.validTxn(r, m.opts.MaxTxnOps); err != nil {
		return nil, m, err
	}
	if _, _, ok := noDuplicates(r.Success); !ok {
		return nil, m, ErrDuplicateKey
	}
	if _, _, ok := noDuplicates(r.Failure); !ok {
		return nil, m, ErrDuplicateKey
	}
	c := m.clone()
	q := c.begin()
	resp, err := q.txnRun(r)
	if err != nil {
		return nil, m, err
	}
	resp.Header.Revision = q.readRev()
	q.end()
	return resp, c, nil
}

func (m *model) Compact(rev int64) (*pb.CompactionResponse, error) {
	switch {
	case rev < 0:
		return nil, ErrInvalidRevision
	case rev > m.rev:
		return nil, ErrFutureRev
	case rev <= m.compact:
		return nil, ErrCompacted
	}
	m.compact = rev
	return &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: m.rev}}, nil
}

func (m *model) KeysWithLease(lease int64) [][]byte {
	var keys [][]byte
	for _, kv := range m.live("\x00", "\x00", m.rev) {
		if lease != 0 && kv.Lease == lease {
			keys = append(keys, kv.Key)
		}
	}
	return keys
}

func (m *model) RevokeLease(lease int64) *pb.DeleteRangeResponse {
	var prevs []*mvccpb.KeyValue
	for _, kv := range m.live("\x00", "\x00", m.rev) {
		if lease != 0 && kv.Lease == lease {
			prevs = append(prevs, kv)
		}
	}
	q := m.begin()
	q.deleteKeys(prevs)
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: q.readRev()}, Deleted: int64(len(prevs))}
	q.end()
	return resp
}

func (m *model) History(from int64, maxEvents int) ([]Revision, error) {
	if from < 1 {
		return nil, ErrInvalidRevision
	}
	if from < m.compact {
		return nil, ErrCompacted
	}
	var out []Revision
	n := 0
	for _, r := range m.revs {
		if r.Rev < from {
			continue
		}
		if maxEvents > 0 && n >= maxEvents {
			break
		}
		out = append(out, r)
		n += len(r.Events)
	}
	return out, nil
}
