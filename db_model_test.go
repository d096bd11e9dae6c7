package cairn_test

// A reference model of etcd's v3 key-value data model, and a randomized test
// that drives the same operations through a DB (so through raft, the apply
// loop and Pebble) and through the model, step by step, with restarts.
//
// The model is written the simplest way and shares no code with package
// mvcc: every version of every key is kept in a slice, compaction only moves
// the point below which reads are refused, every read scans every key.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/mvcc"
)

// refModel is the reference.
type refModel struct {
	rev, compact int64
	vers         map[string][]refVer // per key, in the order written
	revs         []refRev            // every revision created, in order
	leases       map[int64]int64     // lease id → granted TTL
	maxOps       int
	maxKey       int
	maxValue     int
}

// refVer is one version of a key; a nil kv is a deletion.
type refVer struct {
	rev int64
	kv  *mvccpb.KeyValue
}

// refRev is one revision as a watcher sees it.
type refRev struct {
	rev    int64
	events []*mvccpb.Event
}

func newRefModel() *refModel {
	return &refModel{
		rev: 1, vers: map[string][]refVer{}, leases: map[int64]int64{},
		maxOps: mvcc.DefaultMaxTxnOps, maxKey: mvcc.DefaultMaxKeyBytes, maxValue: mvcc.DefaultMaxValueBytes,
	}
}

func refCloneKV(kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	if kv == nil {
		return nil
	}
	return &mvccpb.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
}

// at is key's KeyValue at rev (the last version written at or below it), or
// nil.
func (m *refModel) at(key string, rev int64) *mvccpb.KeyValue {
	vs := m.vers[key]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].rev <= rev {
			return vs[i].kv
		}
	}
	return nil
}

// refInRange is etcd's range membership: an empty end is key alone, "\x00"
// every key >= key.
func refInRange(k, key, end string) bool {
	switch end {
	case "":
		return k == key
	case "\x00":
		return k >= key
	}
	return k >= key && k < end
}

// live returns copies of the key-values of [key, end) at rev, in key order.
func (m *refModel) live(key, end string, rev int64) []*mvccpb.KeyValue {
	var out []*mvccpb.KeyValue
	for _, k := range slices.Sorted(maps.Keys(m.vers)) {
		if refInRange(k, key, end) {
			if kv := m.at(k, rev); kv != nil {
				out = append(out, refCloneKV(kv))
			}
		}
	}
	return out
}

// refPrefixEnd is clientv3's GetPrefixRangeEnd.
func refPrefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// --- validation: every error that applies, so the DB may report any of them ---

func (m *refModel) keyErrs(key, end []byte) []error {
	var errs []error
	if len(key) == 0 {
		errs = append(errs, mvcc.ErrEmptyKey)
	}
	if len(key) > m.maxKey {
		errs = append(errs, mvcc.ErrKeyTooLarge)
	}
	if len(end) == 0 || string(end) == "\x00" {
		return errs
	}
	if len(end) > m.maxKey {
		errs = append(errs, mvcc.ErrKeyTooLarge)
	}
	if string(end) < string(key) {
		errs = append(errs, mvcc.ErrInvalidRange)
	}
	return errs
}

func (m *refModel) rangeErrs(r *pb.RangeRequest) []error {
	errs := m.keyErrs(r.Key, r.RangeEnd)
	if r.Revision < 0 {
		errs = append(errs, mvcc.ErrInvalidRevision)
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		errs = append(errs, mvcc.ErrInvalidSortOption)
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		errs = append(errs, mvcc.ErrInvalidSortOption)
	}
	return errs
}

func (m *refModel) putErrs(r *pb.PutRequest) []error {
	errs := m.keyErrs(r.Key, nil)
	if len(r.Value) > m.maxValue {
		errs = append(errs, mvcc.ErrValueTooLarge)
	}
	if r.IgnoreValue && len(r.Value) > 0 {
		errs = append(errs, mvcc.ErrValueProvided)
	}
	if r.IgnoreLease && r.Lease != 0 {
		errs = append(errs, mvcc.ErrLeaseProvided)
	}
	return errs
}

// txnErrs is etcd's checkTxnRequest (with cairn's stricter key checks),
// collecting every error.
func (m *refModel) txnErrs(r *pb.TxnRequest, budget int) []error {
	var errs []error
	n := max(len(r.Compare), len(r.Success), len(r.Failure))
	if n > budget {
		errs = append(errs, mvcc.ErrTooManyOps)
	}
	for _, c := range r.Compare {
		errs = append(errs, m.keyErrs(c.Key, c.RangeEnd)...)
		if _, ok := pb.Compare_CompareTarget_name[int32(c.Target)]; !ok {
			errs = append(errs, mvcc.ErrInvalidCompare)
		}
		if _, ok := pb.Compare_CompareResult_name[int32(c.Result)]; !ok {
			errs = append(errs, mvcc.ErrInvalidCompare)
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			switch {
			case op.GetRequestRange() != nil:
				errs = append(errs, m.rangeErrs(op.GetRequestRange())...)
			case op.GetRequestPut() != nil:
				errs = append(errs, m.putErrs(op.GetRequestPut())...)
			case op.GetRequestDeleteRange() != nil:
				d := op.GetRequestDeleteRange()
				errs = append(errs, m.keyErrs(d.Key, d.RangeEnd)...)
			case op.GetRequestTxn() != nil:
				errs = append(errs, m.txnErrs(op.GetRequestTxn(), budget-n)...)
			default:
				errs = append(errs, mvcc.ErrKeyNotFound)
			}
		}
	}
	return errs
}

// refIntervals is etcd's checkIntervals: a put may not meet a put of the
// same list (then/else of one nested txn excepted) nor a delete of this
// list or of an earlier nested txn. Deletes are [key, end) taken literally.
func refIntervals(ops []*pb.RequestOp) (puts map[string]bool, dels [][2]string, ok bool) {
	deleted := func(k string) bool {
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
		thenPuts, thenDels, ok1 := refIntervals(t.Success)
		elsePuts, elseDels, ok2 := refIntervals(t.Failure)
		if !ok1 || !ok2 {
			return nil, nil, false
		}
		for k := range thenPuts {
			if puts[k] || deleted(k) {
				return nil, nil, false
			}
			puts[k] = true
		}
		for k := range elsePuts {
			if (puts[k] && !thenPuts[k]) || deleted(k) {
				return nil, nil, false
			}
			puts[k] = true
		}
		dels = append(append(dels, thenDels...), elseDels...)
	}
	for _, op := range ops {
		if p := op.GetRequestPut(); p != nil {
			if puts[string(p.Key)] || deleted(string(p.Key)) {
				return nil, nil, false
			}
			puts[string(p.Key)] = true
		}
	}
	return puts, dels, true
}

// --- one request ---

// refReq applies one request: every write gets revision rev; on error it
// is rolled back.
type refReq struct {
	m      *refModel
	begin  int64
	rev    int64
	events []*mvccpb.Event
	undo   map[string]int // key → its number of versions before the request
	errs   []error
}

func (m *refModel) begin() *refReq {
	return &refReq{m: m, begin: m.rev, rev: m.rev + 1, undo: map[string]int{}}
}

// readRev is the revision reads see at this point of the request.
func (q *refReq) readRev() int64 {
	if len(q.events) > 0 {
		return q.rev
	}
	return q.begin
}

func (q *refReq) write(key string, kv *mvccpb.KeyValue, ev *mvccpb.Event) {
	if _, ok := q.undo[key]; !ok {
		q.undo[key] = len(q.m.vers[key])
	}
	q.m.vers[key] = append(q.m.vers[key], refVer{rev: q.rev, kv: kv})
	q.events = append(q.events, ev)
}

// end commits the request, or rolls it back if it failed, and returns its
// errors.
func (q *refReq) end() []error {
	if len(q.errs) > 0 {
		for k, n := range q.undo {
			q.m.vers[k] = q.m.vers[k][:n]
		}
		return q.errs
	}
	if len(q.events) > 0 {
		q.m.rev = q.rev
		q.m.revs = append(q.m.revs, refRev{rev: q.rev, events: q.events})
	}
	return nil
}

func (q *refReq) put(r *pb.PutRequest) *pb.PutResponse {
	key := string(r.Key)
	prev := q.m.at(key, q.rev)
	if (r.IgnoreValue || r.IgnoreLease) && prev == nil {
		q.errs = append(q.errs, mvcc.ErrKeyNotFound)
		return nil
	}
	kv := &mvccpb.KeyValue{Key: []byte(key), Value: r.Value, CreateRevision: q.rev, ModRevision: q.rev, Version: 1, Lease: r.Lease}
	if prev != nil {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
		if r.IgnoreValue {
			kv.Value = prev.Value
		}
		if r.IgnoreLease {
			kv.Lease = prev.Lease
		}
	}
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: q.rev}}
	if r.PrevKv && prev != nil {
		resp.PrevKv = refCloneKV(prev)
	}
	q.write(key, kv, &mvccpb.Event{Type: mvccpb.PUT, Kv: refCloneKV(kv), PrevKv: refCloneKV(prev)})
	return resp
}

func (q *refReq) deleteKVs(prevs []*mvccpb.KeyValue) {
	for _, prev := range prevs {
		q.write(string(prev.Key), nil, &mvccpb.Event{
			Type:   mvccpb.DELETE,
			Kv:     &mvccpb.KeyValue{Key: prev.Key, ModRevision: q.rev},
			PrevKv: refCloneKV(prev),
		})
	}
}

func (q *refReq) del(r *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	prevs := q.m.live(string(r.Key), string(r.RangeEnd), q.rev)
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}, Deleted: int64(len(prevs))}
	if r.PrevKv {
		for _, kv := range prevs {
			resp.PrevKvs = append(resp.PrevKvs, refCloneKV(kv))
		}
	}
	q.deleteKVs(prevs)
	resp.Header.Revision = q.readRev()
	return resp
}

// rangeAt is etcd's executeRange with cur as the header's revision.
func (m *refModel) rangeAt(r *pb.RangeRequest, cur int64) (*pb.RangeResponse, error) {
	rev := r.Revision
	switch {
	case rev > cur:
		return nil, mvcc.ErrFutureRev
	case rev <= 0:
		rev = cur
	}
	if rev < m.compact {
		return nil, mvcc.ErrCompacted
	}
	all := m.live(string(r.Key), string(r.RangeEnd), rev)
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: cur}, Count: int64(len(all))}
	if r.CountOnly {
		return resp, nil
	}
	kvs := all
	filtered := r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	if r.SortOrder == pb.RangeRequest_NONE && !filtered && r.Limit > 0 && int64(len(kvs)) > r.Limit+1 {
		kvs = kvs[:r.Limit+1] // etcd fetches one more than the limit, in key order
	}
	kvs = slices.DeleteFunc(kvs, func(kv *mvccpb.KeyValue) bool {
		return (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
			(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
			(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
			(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision)
	})
	order := r.SortOrder
	switch {
	case r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE:
		order = pb.RangeRequest_ASCEND
	case r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND:
		order = pb.RangeRequest_NONE
	}
	if order != pb.RangeRequest_NONE {
		// sort.Sort as etcd: even the order of ties is that algorithm's.
		var s sort.Interface = refSorter{kvs, r.SortTarget}
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

type refSorter struct {
	kvs    []*mvccpb.KeyValue
	target pb.RangeRequest_SortTarget
}

func (s refSorter) Len() int      { return len(s.kvs) }
func (s refSorter) Swap(i, j int) { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s refSorter) Less(i, j int) bool {
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
	}
	return bytes.Compare(a.Key, b.Key) < 0
}

func refCmp(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compare is etcd's applyCompare at revision rev: it must hold for every key
// of the range; on no key a value compare fails and the others compare
// with zero.
func (m *refModel) compare(c *pb.Compare, rev int64) bool {
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
			d = refCmp(kv.Version, c.GetVersion())
		case pb.Compare_CREATE:
			d = refCmp(kv.CreateRevision, c.GetCreateRevision())
		case pb.Compare_MOD:
			d = refCmp(kv.ModRevision, c.GetModRevision())
		case pb.Compare_LEASE:
			d = refCmp(kv.Lease, c.GetLease())
		}
		var ok bool
		switch c.Result {
		case pb.Compare_EQUAL:
			ok = d == 0
		case pb.Compare_NOT_EQUAL:
			ok = d != 0
		case pb.Compare_GREATER:
			ok = d > 0
		case pb.Compare_LESS:
			ok = d < 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// txn runs one level of a txn. Compares, nested ones included, read the
// state before the txn. Preconditions (a range at a future or compacted
// revision, an ignore_* put on a key missing at that point of the txn, a
// put with an unknown lease) are checked on the path taken only, as etcd
// does; a failed one fails the whole request.
func (q *refReq) txn(t *pb.TxnRequest) *pb.TxnResponse {
	ok := true
	for _, c := range t.Compare {
		if !q.m.compare(c, q.begin) {
			ok = false
			break
		}
	}
	ops := t.Success
	if !ok {
		ops = t.Failure
	}
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: ok}
	for _, op := range ops {
		out := &pb.ResponseOp{}
		switch {
		case op.GetRequestRange() != nil:
			r := op.GetRequestRange()
			if r.Revision > q.begin {
				q.errs = append(q.errs, mvcc.ErrFutureRev)
				continue
			}
			rr, err := q.m.rangeAt(r, q.readRev())
			if err != nil {
				q.errs = append(q.errs, err)
				continue
			}
			out.Response = &pb.ResponseOp_ResponseRange{ResponseRange: rr}
		case op.GetRequestPut() != nil:
			p := op.GetRequestPut()
			if _, known := q.m.leases[p.Lease]; p.Lease != 0 && !known {
				q.errs = append(q.errs, kv.ErrLeaseNotFound)
			}
			pr := q.put(p)
			if pr == nil {
				continue
			}
			out.Response = &pb.ResponseOp_ResponsePut{ResponsePut: pr}
		case op.GetRequestDeleteRange() != nil:
			out.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: q.del(op.GetRequestDeleteRange())}
		case op.GetRequestTxn() != nil:
			out.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: q.txn(op.GetRequestTxn())}
		}
		resp.Responses = append(resp.Responses, out)
	}
	return resp
}

// --- the model's operations: a response, or every error that applies (and
// then nothing changed) ---

func (m *refModel) Put(r *pb.PutRequest) (*pb.PutResponse, []error) {
	errs := m.putErrs(r)
	if _, known := m.leases[r.Lease]; r.Lease != 0 && !known {
		errs = append(errs, kv.ErrLeaseNotFound)
	}
	q := m.begin()
	resp := q.put(r)
	q.errs = append(q.errs, errs...)
	if errs := q.end(); errs != nil {
		return nil, errs
	}
	return resp, nil
}

func (m *refModel) Delete(r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, []error) {
	if errs := m.keyErrs(r.Key, r.RangeEnd); len(errs) > 0 {
		return nil, errs
	}
	q := m.begin()
	resp := q.del(r)
	q.end()
	return resp, nil
}

func (m *refModel) Range(r *pb.RangeRequest) (*pb.RangeResponse, []error) {
	if errs := m.rangeErrs(r); len(errs) > 0 {
		return nil, errs
	}
	resp, err := m.rangeAt(r, m.rev)
	if err != nil {
		return nil, []error{err}
	}
	return resp, nil
}

func (m *refModel) Txn(r *pb.TxnRequest) (*pb.TxnResponse, []error) {
	errs := m.txnErrs(r, m.maxOps)
	if _, _, ok := refIntervals(r.Success); !ok {
		errs = append(errs, mvcc.ErrDuplicateKey)
	}
	if _, _, ok := refIntervals(r.Failure); !ok {
		errs = append(errs, mvcc.ErrDuplicateKey)
	}
	q := m.begin()
	resp := q.txn(r)
	q.errs = append(q.errs, errs...)
	if errs := q.end(); errs != nil {
		return nil, errs
	}
	resp.Header.Revision = m.rev
	return resp, nil
}

func (m *refModel) Compact(rev int64) (*pb.CompactionResponse, []error) {
	switch {
	case rev < 0:
		return nil, []error{mvcc.ErrInvalidRevision}
	case rev > m.rev:
		return nil, []error{mvcc.ErrFutureRev}
	case rev <= m.compact:
		return nil, []error{mvcc.ErrCompacted}
	}
	m.compact = rev
	return &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: m.rev}}, nil
}

func (m *refModel) Grant(id, ttl int64) *pb.LeaseGrantResponse {
	m.leases[id] = ttl
	return &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: m.rev}, ID: id, TTL: ttl}
}

// Revoke deletes the lease's keys, in key order, as one revision.
func (m *refModel) Revoke(id int64) (*pb.LeaseRevokeResponse, []error) {
	if _, ok := m.leases[id]; !ok {
		return nil, []error{kv.ErrLeaseNotFound}
	}
	q := m.begin()
	q.deleteKVs(m.keysWithLease(id))
	q.end()
	delete(m.leases, id)
	return &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: m.rev}}, nil
}

func (m *refModel) keysWithLease(id int64) []*mvccpb.KeyValue {
	var out []*mvccpb.KeyValue
	for _, kv := range m.live("\x00", "\x00", m.rev) {
		if kv.Lease == id {
			out = append(out, kv)
		}
	}
	return out
}

// events returns the events of revisions [from, to] matching watch options
// w, as a watcher should receive them.
func (m *refModel) events(from, to int64, key, end string, prevKV, noPut, noDelete bool) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, r := range m.revs {
		if r.rev < from || r.rev > to {
			continue
		}
		for _, ev := range r.events {
			if !refInRange(string(ev.Kv.Key), key, end) ||
				(noPut && ev.Type == mvccpb.PUT) || (noDelete && ev.Type == mvccpb.DELETE) {
				continue
			}
			e := &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
			if prevKV {
				e.PrevKv = ev.PrevKv
			}
			out = append(out, e)
		}
	}
	return out
}

// --- the harness: one DB and one model, compared step by step ---

// errIn reports whether err matches one of want.
func refErrIn(err error, want []error) bool {
	for _, w := range want {
		if errors.Is(err, w) {
			return true
		}
	}
	return false
}

func refText(m proto.Message) string {
	if m == nil || !m.ProtoReflect().IsValid() {
		return "<nil>"
	}
	return prototext.Format(m)
}

type refHarness struct {
	t      testing.TB
	base   context.Context
	cancel context.CancelFunc // the last operation's context
	dir    string
	db     *cairn.DB
	m      *refModel
	rng    *rand.Rand
	step   int
	log    []string // the last operations, for failure messages
	dead   []int64  // revoked leases, to use as unknown ones
	vals   int
	opts   refHarnessOpts
	stats  map[string]int
}

type refHarnessOpts struct {
	restarts bool // Close and Open the DB at random points
	bad      bool // generate some invalid requests
	// txnUnknownLeases lets txn puts name revoked leases (on any branch).
	txnUnknownLeases bool
}

func newRefHarness(t testing.TB, ctx context.Context, dir string, db *cairn.DB, seed uint64, o refHarnessOpts) *refHarness {
	h := &refHarness{t: t, base: ctx, dir: dir, db: db, m: newRefModel(), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		opts: o, stats: map[string]int{}}
	t.Cleanup(func() {
		if h.cancel != nil {
			h.cancel()
		}
	})
	return h
}

// ctx is the context of one operation: each gets 10 s.
func (h *refHarness) ctx() context.Context {
	if h.cancel != nil {
		h.cancel()
	}
	ctx, cancel := context.WithTimeout(h.base, 10*time.Second)
	h.cancel = cancel
	return ctx
}

func (h *refHarness) logf(format string, args ...any) {
	h.log = append(h.log, fmt.Sprintf("step %d: ", h.step)+fmt.Sprintf(format, args...))
	if len(h.log) > 12 {
		h.log = h.log[1:]
	}
}

func (h *refHarness) fatalf(format string, args ...any) {
	h.t.Helper()
	var b bytes.Buffer
	for _, l := range h.log {
		b.WriteString("  " + l + "\n")
	}
	h.t.Fatalf("model mismatch at step %d (rev %d, compact %d): %s\nrecent operations:\n%s",
		h.step, h.m.rev, h.m.compact, fmt.Sprintf(format, args...), b.String())
}

// check compares one operation's outcome with the model's.
func (h *refHarness) check(op string, got proto.Message, err error, want proto.Message, wantErrs []error) {
	h.t.Helper()
	switch {
	case len(wantErrs) > 0 && err == nil:
		h.fatalf("%s succeeded, want one of %v\ngot %s", op, wantErrs, refText(got))
	case len(wantErrs) > 0 && !refErrIn(err, wantErrs):
		h.fatalf("%s failed with %v, want one of %v", op, err, wantErrs)
	case len(wantErrs) > 0:
		h.stats[op+" refused"]++
	case err != nil:
		h.fatalf("%s failed: %v\nwant %s", op, err, refText(want))
	case !proto.Equal(got, want):
		h.fatalf("%s:\ngot  %s\nwant %s", op, refText(got), refText(want))
	}
}

var refKeys = []string{"a", "a/1", "a/2", "a/3", "b", "b/1", "b/2", "c", "c/1", "d", "e\xff", "f"}
var refEnds = []string{"a/", "a0", "b/", "b0", "c0", "d", "e", "f0", "z"}

func (h *refHarness) key() string { return refKeys[h.rng.IntN(len(refKeys))] }

// keyRange picks a range: a key alone, a prefix, from a key, or [key, end).
// bad ranges (end before key) come only if h.opts.bad.
func (h *refHarness) keyRange() (key, end string, kind string) {
	key = h.key()
	switch n := h.rng.IntN(10); {
	case n < 3:
		return key, "", "key"
	case n < 5:
		return key[:1+h.rng.IntN(len(key))], "", "prefix"
	case n < 6:
		return key, "\x00", "fromkey"
	default:
		end = refEnds[h.rng.IntN(len(refEnds))]
		if end < key && !(h.opts.bad && h.rng.IntN(8) == 0) {
			key, end = end, key
		}
		return key, end, "range"
	}
}

func (h *refHarness) value() string {
	h.vals++
	if h.rng.IntN(15) == 0 {
		return ""
	}
	return "v" + strconv.Itoa(h.vals%50)
}

// lease returns 0, a live lease or, with unknown, sometimes a revoked one.
func (h *refHarness) lease(unknown bool) int64 {
	n := h.rng.IntN(10)
	if unknown && n == 0 && len(h.dead) > 0 {
		return h.dead[h.rng.IntN(len(h.dead))]
	}
	if n < 5 && len(h.m.leases) > 0 {
		ids := slices.Sorted(maps.Keys(h.m.leases))
		return ids[h.rng.IntN(len(ids))]
	}
	return 0
}

// rev picks a revision to read: mostly recent and valid, sometimes
// compacted or future.
func (h *refHarness) rev() int64 {
	switch n := h.rng.IntN(20); {
	case n < 9:
		return 0
	case n < 18:
		lo := max(h.m.compact, 1)
		return lo + h.rng.Int64N(h.m.rev-lo+1)
	case n < 19:
		return h.m.rev + 1 + h.rng.Int64N(2)
	default:
		if h.m.compact > 1 {
			return 1 + h.rng.Int64N(h.m.compact-1)
		}
		return 0
	}
}

func (h *refHarness) putRequest(inTxn bool) *pb.PutRequest {
	r := &pb.PutRequest{Key: []byte(h.key()), PrevKv: h.rng.IntN(2) == 0}
	r.Lease = h.lease(!inTxn || h.opts.txnUnknownLeases)
	ignore := h.rng.IntN(8)
	if ignore < 2 && h.rng.IntN(5) != 0 {
		// Mostly on a key that exists.
		if live := h.m.live("\x00", "\x00", h.m.rev); len(live) > 0 {
			r.Key = live[h.rng.IntN(len(live))].Key
		}
	}
	switch ignore {
	case 0:
		r.IgnoreValue = true
		if h.opts.bad && h.rng.IntN(6) == 0 {
			r.Value = []byte("provided")
		}
	case 1:
		r.IgnoreLease = true
		r.Value = []byte(h.value())
		if !(h.opts.bad && h.rng.IntN(6) == 0) {
			r.Lease = 0
		}
	default:
		r.Value = []byte(h.value())
	}
	return r
}

func (h *refHarness) deleteRequest() *pb.DeleteRangeRequest {
	key, end, kind := h.keyRange()
	if kind == "prefix" {
		end = refPrefixEnd(key)
	}
	return &pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end), PrevKv: h.rng.IntN(2) == 0}
}

func (h *refHarness) rangeRequest() (*pb.RangeRequest, []cairn.OpOption) {
	key, end, kind := h.keyRange()
	r := &pb.RangeRequest{Key: []byte(key)}
	var opts []cairn.OpOption
	switch kind {
	case "prefix":
		r.RangeEnd = []byte(refPrefixEnd(key))
		opts = append(opts, cairn.WithPrefix())
	case "fromkey":
		r.RangeEnd = []byte{0}
		opts = append(opts, cairn.WithFromKey())
	case "range":
		r.RangeEnd = []byte(end)
		opts = append(opts, cairn.WithRange(end))
	}
	if r.Revision = h.rev(); r.Revision != 0 {
		opts = append(opts, cairn.WithRev(r.Revision))
	}
	if h.rng.IntN(3) == 0 {
		r.Limit = 1 + h.rng.Int64N(4)
		opts = append(opts, cairn.WithLimit(r.Limit))
	}
	if h.rng.IntN(3) == 0 {
		r.SortTarget = pb.RangeRequest_SortTarget(h.rng.IntN(5))
		r.SortOrder = pb.RangeRequest_SortOrder(h.rng.IntN(3))
		opts = append(opts, cairn.WithSort(r.SortTarget, r.SortOrder))
	}
	switch h.rng.IntN(8) {
	case 0:
		r.CountOnly = true
		opts = append(opts, cairn.WithCountOnly())
	case 1:
		r.KeysOnly = true
		opts = append(opts, cairn.WithKeysOnly())
	}
	if h.rng.IntN(4) == 0 {
		pick := func() int64 { return h.rng.Int64N(h.m.rev + 2) }
		switch h.rng.IntN(4) {
		case 0:
			r.MinModRevision = pick()
			opts = append(opts, cairn.WithMinModRev(r.MinModRevision))
		case 1:
			r.MaxModRevision = pick()
			opts = append(opts, cairn.WithMaxModRev(r.MaxModRevision))
		case 2:
			r.MinCreateRevision = pick()
			opts = append(opts, cairn.WithMinCreateRev(r.MinCreateRevision))
		case 3:
			r.MaxCreateRevision = pick()
			opts = append(opts, cairn.WithMaxCreateRev(r.MaxCreateRevision))
		}
	}
	if h.rng.IntN(2) == 0 {
		opts = append(opts, cairn.WithSerializable())
	}
	return r, opts
}

func (h *refHarness) compareRequest() *pb.Compare {
	c := &pb.Compare{Key: []byte(h.key()), Target: pb.Compare_CompareTarget(h.rng.IntN(5)),
		Result: pb.Compare_CompareResult(h.rng.IntN(4))}
	if h.rng.IntN(5) == 0 {
		c.RangeEnd = []byte(refPrefixEnd(string(c.Key[:1])))
		c.Key = c.Key[:1]
	}
	cur := h.m.at(string(c.Key), h.m.rev)
	if cur == nil {
		cur = &mvccpb.KeyValue{}
	}
	exact := h.rng.IntN(2) == 0 // compare with the key's current field
	switch c.Target {
	case pb.Compare_VALUE:
		v := []byte(h.value())
		if exact {
			v = cur.Value
		}
		c.TargetUnion = &pb.Compare_Value{Value: v}
	case pb.Compare_VERSION:
		v := h.rng.Int64N(4)
		if exact {
			v = cur.Version
		}
		c.TargetUnion = &pb.Compare_Version{Version: v}
	case pb.Compare_CREATE:
		v := h.rng.Int64N(h.m.rev + 2)
		if exact {
			v = cur.CreateRevision
		}
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: v}
	case pb.Compare_MOD:
		v := h.rng.Int64N(h.m.rev + 2)
		if exact {
			v = cur.ModRevision
		}
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: v}
	case pb.Compare_LEASE:
		v := h.lease(false)
		if exact {
			v = cur.Lease
		}
		c.TargetUnion = &pb.Compare_Lease{Lease: v}
	}
	return c
}

// txnRequest builds a txn; used tracks the keys written so far, so that
// most txns avoid etcd's duplicate key rule.
func (h *refHarness) txnRequest(depth int, used map[string]bool) *pb.TxnRequest {
	t := &pb.TxnRequest{}
	for range h.rng.IntN(4) {
		t.Compare = append(t.Compare, h.compareRequest())
	}
	branch := func() []*pb.RequestOp {
		var ops []*pb.RequestOp
		for range h.rng.IntN(5) {
			switch n := h.rng.IntN(10); {
			case n < 3:
				r, _ := h.rangeRequest()
				r.Serializable = false
				ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}})
			case n < 7:
				p := h.putRequest(true)
				if used[string(p.Key)] && h.rng.IntN(10) != 0 {
					continue
				}
				used[string(p.Key)] = true
				ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: p}})
			case n < 9:
				d := h.deleteRequest()
				clash := false
				for k := range used {
					if refInRange(k, string(d.Key), string(d.RangeEnd)) {
						clash = true
					}
				}
				if clash && h.rng.IntN(10) != 0 {
					continue
				}
				if len(d.RangeEnd) == 0 {
					used[string(d.Key)] = true
				}
				ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: d}})
			default:
				if depth < 2 {
					ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: h.txnRequest(depth+1, used)}})
				}
			}
		}
		return ops
	}
	t.Success = branch()
	t.Failure = branch()
	return t
}

// --- steps ---

func (h *refHarness) doPut() {
	r := h.putRequest(false)
	var opts []cairn.OpOption
	if r.Lease != 0 {
		opts = append(opts, cairn.WithLease(r.Lease))
	}
	if r.PrevKv {
		opts = append(opts, cairn.WithPrevKV())
	}
	if r.IgnoreValue {
		opts = append(opts, cairn.WithIgnoreValue())
	}
	if r.IgnoreLease {
		opts = append(opts, cairn.WithIgnoreLease())
	}
	h.logf("put %s", refText(r))
	got, err := h.db.Put(h.ctx(), string(r.Key), string(r.Value), opts...)
	want, errs := h.m.Put(r)
	h.check("put", got, err, want, errs)
	h.afterWrite(errs)
}

func (h *refHarness) doDelete() {
	r := h.deleteRequest()
	var opts []cairn.OpOption
	if len(r.RangeEnd) > 0 {
		opts = append(opts, cairn.WithRange(string(r.RangeEnd)))
	}
	if r.PrevKv {
		opts = append(opts, cairn.WithPrevKV())
	}
	h.logf("delete %s", refText(r))
	got, err := h.db.Delete(h.ctx(), string(r.Key), opts...)
	want, errs := h.m.Delete(r)
	h.check("delete", got, err, want, errs)
	h.afterWrite(errs)
}

func (h *refHarness) doGet() {
	r, opts := h.rangeRequest()
	h.logf("get %s", refText(r))
	got, err := h.db.Get(h.ctx(), string(r.Key), opts...)
	want, errs := h.m.Range(r)
	h.check("get", got, err, want, errs)
}

func (h *refHarness) doTxn() {
	r := h.txnRequest(0, map[string]bool{})
	h.logf("txn %s", refText(r))
	got, err := h.db.Txn(h.ctx(), r)
	want, errs := h.m.Txn(r)
	h.check("txn", got, err, want, errs)
	h.afterWrite(errs)
	if errs == nil {
		h.stats[fmt.Sprintf("txn succeeded=%v", want.Succeeded)]++
	}
}

func (h *refHarness) doCompact() {
	var rev int64
	switch n := h.rng.IntN(6); {
	case n == 0:
		rev = h.m.compact - h.rng.Int64N(2) // already compacted
	case n == 1:
		rev = h.m.rev + 1 // future
	default:
		if h.m.rev <= h.m.compact {
			return
		}
		// Mostly a little below the current revision, so that history stays.
		lo := max(h.m.compact+1, h.m.rev-20)
		rev = lo + h.rng.Int64N(h.m.rev-lo+1)
	}
	if rev < 0 {
		rev = 0
	}
	h.logf("compact %d", rev)
	got, err := h.db.Compact(h.ctx(), rev)
	want, errs := h.m.Compact(rev)
	h.check("compact", got, err, want, errs)
	h.afterWrite(errs)
}

func (h *refHarness) doGrant() {
	ttl := int64(3600 + 3600*h.rng.IntN(2))
	got, err := h.db.Grant(h.ctx(), ttl)
	if err != nil {
		h.fatalf("grant: %v", err)
	}
	h.logf("grant %d ttl %d", got.ID, ttl)
	if _, dup := h.m.leases[got.ID]; dup {
		h.fatalf("grant returned the id of a live lease: %d", got.ID)
	}
	h.check("grant", got, nil, h.m.Grant(got.ID, ttl), nil)
}

func (h *refHarness) doRevoke() {
	id := h.lease(true)
	if id == 0 || h.rng.IntN(10) == 0 {
		id = 1 + h.rng.Int64N(1<<40) // never granted
	}
	h.logf("revoke %d", id)
	got, err := h.db.Revoke(h.ctx(), id)
	want, errs := h.m.Revoke(id)
	h.check("revoke", got, err, want, errs)
	if errs == nil {
		h.dead = append(h.dead, id)
	}
	h.afterWrite(errs)
}

func (h *refHarness) restart() {
	h.logf("restart")
	if err := h.db.Close(); err != nil {
		h.t.Fatalf("close: %v", err)
	}
	db, err := cairn.Open(h.dir)
	if err != nil {
		h.t.Fatalf("reopen: %v", err)
	}
	h.t.Cleanup(func() { db.Close() })
	h.db = db
	h.stats["restart"]++
	h.checkAll()
}

// afterWrite checks, after a refused write, that nothing was applied.
func (h *refHarness) afterWrite(errs []error) {
	if errs != nil {
		h.checkState(0)
	}
}

// checkState compares every key at rev (0: current) with the model.
func (h *refHarness) checkState(rev int64) {
	h.t.Helper()
	r := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev}
	got, err := h.db.Get(h.ctx(), "\x00", cairn.WithFromKey(), cairn.WithRev(rev), cairn.WithSerializable())
	want, errs := h.m.Range(r)
	h.check(fmt.Sprintf("full read at revision %d", rev), got, err, want, errs)
}

// checkAll compares the data now and at a past revision, and the leases.
func (h *refHarness) checkAll() {
	h.t.Helper()
	h.checkState(0)
	if lo := max(h.m.compact, 1); h.m.rev > lo {
		h.checkState(lo + h.rng.Int64N(h.m.rev-lo))
	}
	ls, err := h.db.Leases(h.ctx())
	if err != nil {
		h.fatalf("leases: %v", err)
	}
	var ids []int64
	for _, l := range ls.Leases {
		ids = append(ids, l.ID)
	}
	slices.Sort(ids)
	if want := slices.Sorted(maps.Keys(h.m.leases)); !slices.Equal(ids, want) {
		h.fatalf("leases %v, want %v", ids, want)
	}
	for id, ttl := range h.m.leases {
		got, err := h.db.TimeToLive(h.ctx(), id, true)
		if err != nil {
			h.fatalf("time to live of %d: %v", id, err)
		}
		var keys []string
		for _, kv := range h.m.keysWithLease(id) {
			keys = append(keys, string(kv.Key))
		}
		var gotKeys []string
		for _, k := range got.Keys {
			gotKeys = append(gotKeys, string(k))
		}
		if got.ID != id || got.GrantedTTL != ttl || got.TTL <= 0 || got.TTL > ttl+2 || !slices.Equal(gotKeys, keys) {
			h.fatalf("time to live of %d: %s, want granted %d, keys %q", id, refText(got), ttl, keys)
		}
	}
}

// run applies n random operations.
func (h *refHarness) run(n int, deadline time.Time) {
	restartAt := -1
	if h.opts.restarts {
		restartAt = h.rng.IntN(n) // at least one restart per run
	}
	for h.step = 0; h.step < n; h.step++ {
		if time.Now().After(deadline) {
			h.t.Logf("time budget spent after %d of %d steps", h.step, n)
			break
		}
		switch x := h.rng.IntN(100); {
		case h.step == restartAt, h.opts.restarts && x == 0:
			h.restart()
		case x < 25:
			h.doPut()
		case x < 35:
			h.doDelete()
		case x < 60:
			h.doGet()
		case x < 82:
			h.doTxn()
		case x < 86:
			h.doCompact()
		case x < 91:
			h.doGrant()
		case x < 94:
			h.doRevoke()
		default:
			h.checkAll()
		}
		h.stats["steps"]++
	}
	h.checkAll()
}

// refModelSteps is the number of steps per seed: CAIRN_MODEL_STEPS, or def.
func refModelSteps(t *testing.T, def int) int {
	if s := os.Getenv("CAIRN_MODEL_STEPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CAIRN_MODEL_STEPS=%q: want a positive number", s)
		}
		return n
	}
	if testing.Short() {
		return def / 4
	}
	return def
}

// TestDBModel drives random operation sequences (put with and without
// lease, prev_kv, ignore_value and ignore_lease; deletes of keys and ranges;
// gets with every option at current and past revisions; txns with every
// kind of compare and nested txns; compaction; lease grant and revoke;
// restarts) through a single-node DB and through the reference model, and
// compares every response, revision and error. A refused request must
// leave the data exactly as it was. CAIRN_MODEL_STEPS=N runs N steps per
// seed (the default keeps the test around ten seconds under -race).
func TestDBModel(t *testing.T) {
	steps := refModelSteps(t, 250)
	long := os.Getenv("CAIRN_MODEL_STEPS") != ""
	seeds := []uint64{1, 2, 3, 4}
	per := 10 * time.Second / time.Duration(len(seeds))
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			deadline := time.Now().Add(per)
			if long {
				deadline = time.Now().Add(24 * time.Hour) // every step runs
			}
			dir := t.TempDir()
			h := newRefHarness(t, context.Background(), dir, open(t, dir), seed, refHarnessOpts{restarts: true, bad: true, txnUnknownLeases: true})
			h.run(steps, deadline)
			t.Logf("seed %d: rev %d, compact %d, %d leases; %v", seed, h.m.rev, h.m.compact, len(h.m.leases), h.stats)
		})
	}
}
