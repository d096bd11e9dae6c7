package cairn

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/watch"
)

// OpOption shapes a request, like clientv3's options of the same names.
type OpOption func(*op)

type op struct {
	key          []byte // the key of a range or delete
	end          []byte
	rev          int64
	limit        int64
	sortTarget   pb.RangeRequest_SortTarget
	sortOrder    pb.RangeRequest_SortOrder
	serializable bool
	consistency  engine.ReadPolicy
	keysOnly     bool
	countOnly    bool
	prevKV       bool
	lease        int64
	ignoreValue  bool
	ignoreLease  bool
	minModRev    int64
	maxModRev    int64
	minCreateRev int64
	maxCreateRev int64
	filterPut    bool
	filterDelete bool
	progress     bool
	fragment     bool
	prefix       bool
	fromKey      bool
}

func buildOp(key string, opts []OpOption) op {
	o := op{key: []byte(key)}
	for _, f := range opts {
		f(&o)
	}
	switch {
	case (o.prefix || o.fromKey) && len(key) == 0:
		// As clientv3: an empty key with WithPrefix or WithFromKey is every key.
		o.key, o.end = []byte{0}, []byte{0}
	case o.prefix:
		o.end = prefixEnd([]byte(key))
	case o.fromKey:
		o.end = []byte{0}
	}
	return o
}

// prefixEnd is the range end that covers every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0} // all keys
}

// WithPrefix applies to every key with the given key as prefix.
func WithPrefix() OpOption { return func(o *op) { o.prefix = true } }

// WithRange applies to [key, end).
func WithRange(end string) OpOption { return func(o *op) { o.end = []byte(end) } }

// WithFromKey applies to every key >= key.
func WithFromKey() OpOption { return func(o *op) { o.fromKey = true } }

// WithRev reads at revision rev, or watches from it (inclusive).
func WithRev(rev int64) OpOption { return func(o *op) { o.rev = rev } }

// WithLimit returns at most n keys (Get).
func WithLimit(n int64) OpOption { return func(o *op) { o.limit = n } }

// WithSort orders a Get's keys.
func WithSort(target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder) OpOption {
	return func(o *op) { o.sortTarget, o.sortOrder = target, order }
}

// WithSerializable reads this node's local state without asking the leader:
// fast, possibly stale.
func WithSerializable() OpOption { return func(o *op) { o.serializable = true } }

// WithConsistency reads with policy p instead of the node's default
// ([raft.read_consistency] default_policy): engine.LinearizableRead,
// engine.LeaseRead or engine.EventualConsistency (see engine.ReadPolicy for
// what each guarantees). A policy other than the default fails with
// engine.ErrOverrideNotAllowed when raft.read_consistency.allow_client_override
// is false. WithSerializable, etcd's own flag, wins over it and is always
// honoured.
func WithConsistency(p engine.ReadPolicy) OpOption { return func(o *op) { o.consistency = p } }

// ReadPolicyOf returns the policy opts ask for with WithConsistency ("" for
// none; engine.EventualConsistency with WithSerializable), for clients that
// send it along with a range request.
func ReadPolicyOf(opts ...OpOption) engine.ReadPolicy {
	o := buildOp("", opts)
	if o.serializable {
		return engine.EventualConsistency
	}
	return o.consistency
}

// WithKeysOnly returns keys without values (Get).
func WithKeysOnly() OpOption { return func(o *op) { o.keysOnly = true } }

// WithCountOnly returns only the number of keys (Get).
func WithCountOnly() OpOption { return func(o *op) { o.countOnly = true } }

// WithPrevKV returns the previous key-value (Put, Delete, Watch).
func WithPrevKV() OpOption { return func(o *op) { o.prevKV = true } }

// WithLease attaches the key to lease id (Put).
func WithLease(id int64) OpOption { return func(o *op) { o.lease = id } }

// WithIgnoreValue keeps the key's current value (Put).
func WithIgnoreValue() OpOption { return func(o *op) { o.ignoreValue = true } }

// WithIgnoreLease keeps the key's current lease (Put).
func WithIgnoreLease() OpOption { return func(o *op) { o.ignoreLease = true } }

// WithMinModRev, WithMaxModRev, WithMinCreateRev and WithMaxCreateRev filter
// a Get's keys by revision.
func WithMinModRev(rev int64) OpOption    { return func(o *op) { o.minModRev = rev } }
func WithMaxModRev(rev int64) OpOption    { return func(o *op) { o.maxModRev = rev } }
func WithMinCreateRev(rev int64) OpOption { return func(o *op) { o.minCreateRev = rev } }
func WithMaxCreateRev(rev int64) OpOption { return func(o *op) { o.maxCreateRev = rev } }

// WithFilterPut and WithFilterDelete drop puts or deletes from a watch.
func WithFilterPut() OpOption    { return func(o *op) { o.filterPut = true } }
func WithFilterDelete() OpOption { return func(o *op) { o.filterDelete = true } }

// WithProgressNotify asks a watch for periodic progress notifications.
func WithProgressNotify() OpOption { return func(o *op) { o.progress = true } }

// WithFragment lets a watch split a revision too large for one response.
func WithFragment() OpOption { return func(o *op) { o.fragment = true } }

func (o op) rangeRequest() *pb.RangeRequest {
	return &pb.RangeRequest{
		Key: o.key, RangeEnd: o.end, Revision: o.rev, Limit: o.limit,
		SortOrder: o.sortOrder, SortTarget: o.sortTarget, Serializable: o.serializable,
		KeysOnly: o.keysOnly, CountOnly: o.countOnly,
		MinModRevision: o.minModRev, MaxModRevision: o.maxModRev,
		MinCreateRevision: o.minCreateRev, MaxCreateRevision: o.maxCreateRev,
	}
}

func (o op) watchOptions() []watch.Option {
	var w []watch.Option
	switch {
	case o.prefix:
		w = append(w, watch.WithPrefix())
	case o.fromKey:
		w = append(w, watch.WithFromKey())
	case o.end != nil:
		w = append(w, watch.WithRange(o.end))
	}
	if o.rev != 0 {
		w = append(w, watch.WithRev(o.rev))
	}
	if o.prevKV {
		w = append(w, watch.WithPrevKV())
	}
	if o.filterPut {
		w = append(w, watch.WithFilterPut())
	}
	if o.filterDelete {
		w = append(w, watch.WithFilterDelete())
	}
	if o.progress {
		w = append(w, watch.WithProgressNotify())
	}
	if o.fragment {
		w = append(w, watch.WithFragment())
	}
	return w
}
